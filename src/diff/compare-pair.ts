/**
 * The compare step: one mirrored pair in, one outcome per shadow target out
 * (an event when it really differs, and the counts to add). It reads only
 * the pair, the settings and the learned noise, touches no shared state, and
 * its output is plain JSON: a worker process can run it and send the result
 * to the process that serves /diffs.
 *
 *   status, headers, body (decoded, lifted, compared)   primary vs shadow
 *   the same                                             primary vs baseline → noise mask
 *   differences under the mask, or on learned-noisy paths, count as noise
 */
import { callDifferences, type CallRef } from '../egress/call-diff.js';
import type { CapturedResponse, MirroredPair } from '../shadow/pair.js';
import { compareBodies, type RawDifference, type WalkLimits } from './compare.js';
import { emptyCounts, observeLatency } from './counts.js';
import { compareHeaders, ignoredHeaders } from './headers.js';
import { lift, type Lifted } from './lift.js';
import { NoiseMask } from './noise.js';
import { ignoreRulesFor, type IgnoreRules } from './paths.js';
import { redactTarget } from './secrets.js';
import { round } from './stats.js';
import { clipString, keepValue } from './values.js';
import type { CompareOutcome, Difference, DifferenceKind, PathCounts, ShadowCounts, SideView } from './types.js';

export interface CompareSettings extends WalkLimits {
  /** Differences listed per event (all are counted). */
  readonly maxListed: number;
  /** JSON characters kept per stored value. */
  readonly maxValueChars: number;
  /** JSON characters kept for all values of one event together. */
  readonly maxEventChars: number;
  /** Distinct paths counted per pair. */
  readonly maxPathsPerPair: number;
  /** Longest pointer or request path kept. */
  readonly maxPathChars: number;
}

export const DEFAULT_COMPARE_SETTINGS: CompareSettings = {
  maxNodes: 50_000,
  maxDepth: 128,
  maxListed: 50,
  maxValueChars: 256,
  maxEventChars: 8192,
  maxPathsPerPair: 256,
  maxPathChars: 1024,
};

/** Learned per-path noise (noise.ts), read-only here. */
export interface NoiseModel {
  isNoisy(route: string, kind: DifferenceKind, template: string): boolean;
}

export interface PairResult {
  readonly outcomes: CompareOutcome[];
  /** With a baseline answer or failure: the template paths it showed as noisy. */
  readonly noise: readonly { kind: DifferenceKind; template: string }[] | undefined;
}

interface Found extends RawDifference {
  readonly kind: DifferenceKind;
  readonly call?: CallRef;
}

interface ResponseComparison {
  readonly found: Found[];
  readonly limited?: string;
}

/** Decoded bodies may grow to this multiple of the capture limit. */
const DECODE_FACTOR = 4;
const MAX_DECODED = 16 * 1024 * 1024;

/** Calls are told apart by their template (dependency, method, path, pointer), the rest by pointer. */
const maskPath = (d: Found) => (d.kind === 'call' ? d.template : d.pointer);

const contentEncoding = (r: CapturedResponse) => String(r.headers['content-encoding'] ?? '');

class PairComparison {
  readonly rules: IgnoreRules;
  private readonly headerIgnores: ReadonlySet<string>;
  private readonly maxDecoded: number;
  private primaryLifted: Lifted | undefined;

  constructor(
    readonly pair: MirroredPair,
    readonly settings: CompareSettings,
  ) {
    this.rules = ignoreRulesFor(pair.diff.ignorePaths);
    this.headerIgnores = ignoredHeaders(pair.diff.ignoreHeaders);
    this.maxDecoded = Math.min(MAX_DECODED, Math.max(1024 * 1024, pair.diff.maxBodyBytes * DECODE_FACTOR));
  }

  private primaryBody(): Lifted {
    return (this.primaryLifted ??= lift(this.pair.primary, this.maxDecoded));
  }

  /** Status, headers and body of the primary against another answer. */
  against(other: CapturedResponse): ResponseComparison {
    const primary = this.pair.primary;
    const found: Found[] = [];
    if (primary.status !== other.status) {
      found.push({ kind: 'status', pointer: 'status', template: 'status', change: 'value', primary: primary.status, shadow: other.status });
    }
    for (const d of compareHeaders(primary.headers, other.headers, this.headerIgnores)) found.push({ ...d, kind: 'header' });
    // Same bytes under the same encoding: same body, nothing to parse.
    if (primary.body.equals(other.body) && contentEncoding(primary) === contentEncoding(other)) return { found };
    const body = compareBodies(this.primaryBody(), lift(other, this.maxDecoded), this.rules, this.settings);
    for (const d of body.differences) found.push({ ...d, kind: 'body' });
    return body.limited ? { found, limited: body.limited } : { found };
  }
}

const side = (upstream: string, r: CapturedResponse): SideView => ({
  upstream,
  status: r.status,
  latencyMs: round(r.latencyMs, 1),
  bytes: r.bodyBytes,
  ...(r.truncated ? { truncated: true as const } : {}),
});

/** Per-pair path counts: each path counts once per pair. */
class PairPaths {
  private readonly index = new Map<string, PathCounts>();
  omitted = 0;
  constructor(private readonly max: number) {}
  mark(kind: DifferenceKind, path: string, field: 'differing' | 'noise' | 'masked'): void {
    const key = kind + '\u0000' + path;
    let entry = this.index.get(key);
    if (!entry) {
      if (this.index.size >= this.max) {
        this.omitted++;
        return;
      }
      entry = { kind, path, differing: 0, noise: 0, masked: 0 };
      this.index.set(key, entry);
    }
    entry[field] = 1;
  }
  list(): PathCounts[] {
    return [...this.index.values()];
  }
}

/** Stored form of one difference: values redacted and clipped within the event's budget. */
class Lister {
  readonly listed: Difference[] = [];
  private budget: number;
  constructor(
    private readonly comparison: PairComparison,
    private readonly settings: CompareSettings,
  ) {
    this.budget = settings.maxEventChars;
  }

  add(d: Found): void {
    if (this.listed.length >= this.settings.maxListed) return;
    const max = Math.max(32, Math.min(this.settings.maxValueChars, this.budget));
    const keep = (v: unknown) => keepValue(v, d.kind === 'body' ? d.pointer : '', this.comparison.rules, max);
    const a = keep(d.primary);
    const b = keep(d.shadow);
    this.budget -= size(a.value) + size(b.value);
    const path = clipString(d.pointer, this.settings.maxPathChars);
    const clipped = a.clipped || b.clipped || path !== d.pointer;
    this.listed.push({
      kind: d.kind,
      path,
      template: clipString(d.template, this.settings.maxPathChars),
      change: d.change,
      primary: a.value,
      shadow: b.value,
      ...(clipped ? { clipped: true as const } : {}),
      ...(d.note !== undefined ? { note: d.note } : {}),
      ...(d.call ? { call: d.call } : {}),
    });
  }
}

function size(v: unknown): number {
  return typeof v === 'string' ? v.length : JSON.stringify(v).length;
}

/** Compares a pair against each of its shadow targets. Never throws for bad bodies. */
export function comparePair(pair: MirroredPair, settings: CompareSettings = DEFAULT_COMPARE_SETTINGS, learned?: NoiseModel): PairResult {
  const comparison = new PairComparison(pair, settings);
  const maxTemplate = settings.maxPathChars;

  let mask: NoiseMask | undefined;
  let noise: { kind: DifferenceKind; template: string }[] | undefined;
  let baselineView: SideView | undefined;
  if (pair.baseline) {
    const b = pair.baseline.result;
    mask = new NoiseMask();
    const seen = new Set<string>();
    noise = [];
    const found: Found[] = b.response
      ? comparison.against(b.response).found
      : [{ kind: 'error', pointer: 'error', template: 'error', change: 'value', primary: pair.primary.status, shadow: null }];
    // The baseline's dependency calls against the live ones: call noise (src/egress/).
    const calls = pair.calls;
    if (calls && calls.baseline.length > 0) {
      for (const d of callDifferences({ ...calls, dark: calls.baseline }, settings)) found.push({ ...d, kind: 'call' });
    }
    for (const d of found) {
      mask.add(d.kind, maskPath(d));
      const template = clipString(d.template, maxTemplate);
      const key = d.kind + '\u0000' + template;
      if (!seen.has(key) && seen.size < settings.maxPathsPerPair) {
        seen.add(key);
        noise.push({ kind: d.kind, template });
      }
    }
    baselineView = b.response
      ? side(pair.baseline.upstream, b.response)
      : { upstream: pair.baseline.upstream, status: null, latencyMs: round(b.latencyMs, 1), ...(b.error ? { error: b.error } : {}) };
  }

  const outcomes: CompareOutcome[] = [];
  for (const target of pair.shadows) {
    const result = target.result;
    const counts: ShadowCounts = emptyCounts(pair.route, target.upstream, pair.baseline?.upstream);
    counts.compared = 1;
    counts.baselined = pair.baseline ? 1 : 0;
    observeLatency(counts, pair.primary.latencyMs, result.latencyMs);
    const paths = new PairPaths(settings.maxPathsPerPair);
    for (const n of noise ?? []) paths.mark(n.kind, n.template, 'noise');

    let compared: ResponseComparison;
    if (result.response) compared = comparison.against(result.response);
    else {
      const what = result.error ?? (result.outcome === 'timeout' ? 'timed out' : 'failed');
      compared = {
        found: [{ kind: 'error', pointer: 'error', template: 'error', change: 'value', primary: pair.primary.status, shadow: what }],
      };
    }

    // What the dark version would have sent to its dependencies (src/egress/).
    if (pair.calls) for (const d of callDifferences(pair.calls, settings)) compared.found.push({ ...d, kind: 'call' });

    const lister = new Lister(comparison, settings);
    let real = 0;
    for (const d of compared.found) {
      const template = clipString(d.template, maxTemplate);
      const masked = mask !== undefined && (mask.covers(d.kind, maskPath(d)) || (learned?.isNoisy(pair.route, d.kind, template) ?? false));
      if (masked) {
        counts.noiseMasked++;
        paths.mark(d.kind, template, 'masked');
        continue;
      }
      real++;
      counts.kinds[d.kind] = 1;
      paths.mark(d.kind, template, 'differing');
      lister.add(d);
    }
    counts.differing = real > 0 ? 1 : 0;
    counts.paths.push(...paths.list());
    counts.pathsOmitted = paths.omitted;

    if (real === 0) {
      outcomes.push({ counts });
      continue;
    }
    const shadowView: SideView = result.response
      ? side(target.upstream, result.response)
      : { upstream: target.upstream, status: null, latencyMs: round(result.latencyMs, 1), ...(result.error ? { error: result.error } : {}) };
    const truncated = pair.primary.truncated || (result.response?.truncated ?? false);
    outcomes.push({
      counts,
      event: {
        time: pair.time.toISOString(),
        route: pair.route,
        method: pair.method,
        path: clipString(redactTarget(pair.path), settings.maxPathChars),
        requestId: pair.requestId,
        primary: side(pair.primaryUpstream, pair.primary),
        shadow: shadowView,
        ...(baselineView ? { baseline: baselineView } : {}),
        differences: lister.listed,
        differenceCount: real,
        noise: counts.noiseMasked,
        truncated,
        ...(compared.limited ? { limited: compared.limited } : {}),
      },
    });
  }
  return { outcomes, noise };
}
