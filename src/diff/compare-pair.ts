/**
 * The compare step: one mirrored pair in, one outcome per shadow target out
 * (an event when it really differs, and the counts to add). It reads only
 * plain data (the pair's bytes, headers and latencies, the settings) and
 * looks up the learned noise; it holds no sockets and keeps no state, and
 * its output is plain JSON: a worker can run it and send the result to the
 * process that serves /diffs.
 *
 *   status, headers, body (decoded, lifted, compared)   primary vs shadow
 *   the same                                             primary vs baseline (or, without
 *                                                        one, vs its own earlier answer to
 *                                                        the same request) → noise
 *   each difference judged against the noise (noise.ts), per endpoint and path
 *
 * gRPC answers (grpc.ts) compare their metadata (headers and trailers,
 * grpc-status as the status) and their decoded messages instead.
 */
import { callDifferences, type CallRef } from '../egress/call-diff.js';
import type { CapturedResponse, MirroredPair } from './pair.js';
import { compareBodies, valueRulesFor, type RawDifference, type ValueRules, type WalkLimits } from './compare.js';
import { emptyCounts, emptyEndpoint, observeLatency } from './counts.js';
import { exampleSide, MarkList, packExample } from './examples.js';
import { commonMessages, compareGrpcMetadata, grpcMetadata, isProtobufGrpc, type GrpcContext } from './grpc.js';
import { compareHeaders, ignoredHeaders } from './headers.js';
import { lift, wholeBody, type Lifted } from './lift.js';
import { NoiseMask, relativeDifference, type NoiseModel, type NoiseObservation } from './noise.js';
import { ignoreRulesFor, type IgnoreRules } from './paths.js';
import type { ProtoSchema } from '../protobuf/descriptors.js';
import { redactTarget } from './secrets.js';
import { round } from './stats.js';
import { clipString, keepValue } from './values.js';
import type {
  CompareOutcome,
  Difference,
  DifferenceKind,
  EndpointCounts,
  Evidence,
  ExampleMark,
  PathCounts,
  ShadowCounts,
  SideView,
} from './types.js';

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

export type { NoiseModel } from './noise.js';

/** Where a pair stands: its endpoint, and (without a baseline) the primary's earlier answer to the same request. */
export interface PairContext {
  readonly endpoint: string;
  readonly previous?: CapturedResponse;
  /** The route's diff.protoDescriptors, loaded (gRPC answers are then decoded with field names). */
  readonly protoSchema?: ProtoSchema;
  /** Why the route's descriptor set could not be loaded. */
  readonly protoSchemaProblem?: string;
  /** Whether a differing pair with these marks gets its example made; without it, every one does. */
  readonly wantsExample?: (route: string, shadow: string, marks: readonly ExampleMark[]) => boolean;
}

export interface PairResult {
  readonly outcomes: CompareOutcome[];
  readonly endpoint: string;
  /** What the noise was learned from on this pair: its baseline, a repeat, or nothing. */
  readonly evidence: Evidence;
  /** The template paths the baseline (or the repeat) showed as noisy. */
  readonly noise: readonly NoiseObservation[];
  /** The template paths any shadow differed on, noise or not. */
  readonly shadowPaths: readonly { kind: DifferenceKind; template: string }[];
}

interface Found extends RawDifference {
  readonly kind: DifferenceKind;
  readonly call?: CallRef;
}

interface ResponseComparison {
  readonly found: Found[];
  readonly limited?: string;
  /** The other body, when it was lifted to be compared. */
  readonly lifted?: Lifted;
}

/** Decoded bodies may grow to this multiple of the capture limit. */
const DECODE_FACTOR = 4;
const MAX_DECODED = 16 * 1024 * 1024;

/** Calls are told apart by their template (dependency, method, path, pointer), the rest by pointer. */
const maskPath = (d: Found) => (d.kind === 'call' ? d.template : d.pointer);

const contentEncoding = (r: CapturedResponse) => String(r.headers['content-encoding'] ?? '');

/** Bytes compared at each end of two bodies to guess whether they share their layout. */
const LAYOUT_PROBE = 64;

/**
 * Whether two bodies likely share most of their bytes: the same first or
 * last LAYOUT_PROBE bytes (a changed timestamp at one end leaves the
 * other), or other encodings, which hide it. Deferring the primary's parts
 * saves when they are shared (a 150 KB pair with one difference: 0.75-0.85x
 * the CPU) and costs when nothing is (re-indented: 1.12-1.18x); with this
 * guess a re-indented pair is parsed as before.
 */
function laidOutAlike(a: CapturedResponse, b: CapturedResponse): boolean {
  if (contentEncoding(a) !== contentEncoding(b)) return true;
  const x = a.body;
  const y = b.body;
  const n = Math.min(LAYOUT_PROBE, x.length, y.length);
  return x.compare(y, 0, n, 0, n) === 0 || x.compare(y, y.length - n, y.length, x.length - n, x.length) === 0;
}

class PairComparison {
  readonly rules: IgnoreRules;
  private readonly values: ValueRules;
  private readonly headerIgnores: ReadonlySet<string>;
  private readonly maxDecoded: number;
  private primaryLifted: Lifted | undefined;
  /** Set when the primary answered gRPC. */
  readonly grpc: GrpcContext | undefined;

  constructor(
    readonly pair: MirroredPair,
    readonly settings: CompareSettings,
    learnedUnordered: ReadonlySet<string> | undefined,
    context: PairContext,
  ) {
    this.rules = ignoreRulesFor(pair.diff.ignorePaths);
    const values = valueRulesFor(pair.diff);
    this.values = learnedUnordered ? { ...values, learnedUnordered } : values;
    this.headerIgnores = ignoredHeaders(pair.diff.ignoreHeaders);
    this.maxDecoded = Math.min(MAX_DECODED, Math.max(1024 * 1024, pair.diff.maxBodyBytes * DECODE_FACTOR));
    this.grpc = isProtobufGrpc(pair.primary.headers)
      ? {
          method: pair.path.split('?')[0] ?? '/',
          ...(context.protoSchema ? { schema: context.protoSchema } : {}),
          ...(context.protoSchemaProblem ? { schemaProblem: context.protoSchemaProblem } : {}),
        }
      : undefined;
  }

  /**
   * A truncated prefix is never parsed as if it were the body: it is taken by
   * length and whole-body hash. gRPC is the exception: its framing says where
   * each message ends, so the whole messages before the cut are decoded and
   * the cut is noted (grpc.ts); against() compares only those both sides
   * have, and the rest by length and hash.
   */
  private lift(r: CapturedResponse, reference?: Lifted, deferChildren = false): Lifted {
    if (r.truncated && !this.grpc) return wholeBody(r);
    return lift(r, this.maxDecoded, this.settings.maxNodes, this.grpc, reference, deferChildren);
  }
  /**
   * The primary's body. When lifted for comparison with `other` and their
   * bytes look laid out alike, its parts are deferred: the other shares
   * them, and what it shares is never parsed (json-bytes.ts).
   */
  primaryBody(other?: CapturedResponse): Lifted {
    return (this.primaryLifted ??= this.lift(this.pair.primary, undefined, other !== undefined && laidOutAlike(this.pair.primary, other)));
  }
  /** The other answer's body, lifted as for comparison. */
  lifted(other: CapturedResponse, compared: ResponseComparison): Lifted {
    return compared.lifted ?? this.lift(other);
  }
  /** An answer as examples show it: a gRPC answer's trailers among its headers. */
  shown(r: CapturedResponse): CapturedResponse {
    return this.grpc && r.trailers ? { ...r, headers: grpcMetadata(r) } : r;
  }


  /** Status, headers and body of the primary against another answer. */
  against(other: CapturedResponse): ResponseComparison {
    const primary = this.pair.primary;
    const found: Found[] = [];
    if (primary.status !== other.status) {
      found.push({ kind: 'status', pointer: 'status', template: 'status', change: 'value', primary: primary.status, shadow: other.status });
    }
    if (this.grpc) found.push(...compareGrpcMetadata(primary, other, this.headerIgnores));
    else for (const d of compareHeaders(primary.headers, other.headers, this.headerIgnores)) found.push({ ...d, kind: 'header' });
    const sameEncoding = contentEncoding(primary) === contentEncoding(other);
    let mine: Lifted;
    let lifted: Lifted;
    const cut = primary.truncated || other.truncated;
    const common = cut && this.grpc ? commonMessages(this.primaryBody(), this.lift(other)) : undefined;
    if (common) {
      // A stream past the capture limit: the messages both captured whole, then the rest by length and whole-body hash.
      [mine, lifted] = common;
      for (const d of compareBodies(wholeBody(primary), wholeBody(other), this.rules, this.settings, this.values).differences) found.push({ ...d, kind: 'body' });
    } else if (cut) {
      // Past the capture limit on either side: both by length and whole-body hash.
      mine = wholeBody(primary);
      lifted = wholeBody(other);
      if (sameEncoding && mine.format === 'binary' && lifted.format === 'binary' && mine.bytes === lifted.bytes && mine.sha256 === lifted.sha256) return { found };
    } else {
      // Same bytes under the same encoding: same body, nothing to parse.
      if (sameEncoding && primary.body.equals(other.body)) return { found };
      mine = this.primaryBody(other);
      // What the other answer has byte for byte as the primary's is not parsed again (json-bytes.ts).
      lifted = this.lift(other, mine);
    }
    const body = compareBodies(mine, lifted, this.rules, this.settings, this.values);
    for (const d of body.differences) found.push({ ...d, kind: 'body' });
    return body.limited ? { found, limited: body.limited, lifted } : { found, lifted };
  }
}

const side = (upstream: string, r: CapturedResponse): SideView => ({
  upstream,
  status: r.status,
  latencyMs: round(r.latencyMs, 1),
  bytes: r.bodyBytes,
  ...(r.truncated ? { truncated: true as const } : {}),
});

type PathField = 'differing' | 'noise' | 'masked' | 'raw' | 'beyond' | 'withStatus' | 'repeatNoise' | 'tolerated' | 'reordered';

/** Per-pair path counts: each path counts once per pair. */
class PairPaths {
  private readonly index = new Map<string, PathCounts>();
  omitted = 0;
  constructor(private readonly max: number) {}
  entry(kind: DifferenceKind, path: string): PathCounts | undefined {
    const key = kind + '\u0000' + path;
    let entry = this.index.get(key);
    if (!entry) {
      if (this.index.size >= this.max) {
        this.omitted++;
        return undefined;
      }
      entry = { kind, path, differing: 0, noise: 0, masked: 0 };
      this.index.set(key, entry);
    }
    return entry;
  }
  mark(kind: DifferenceKind, path: string, field: PathField): PathCounts | undefined {
    const entry = this.entry(kind, path);
    if (entry) entry[field] = 1;
    return entry;
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
    private readonly endpoint: string,
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
      endpoint: this.endpoint,
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

/** Latencies below this are treated as this (ratios of near-zero times mean nothing). */
const MIN_LATENCY_MS = 0.05;

const describeDifference = (d: Found) => (d.kind === 'body' ? `body ${d.template === '' ? '(whole)' : d.template}` : d.kind === 'header' ? `header ${d.template}` : d.kind);

/**
 * Compares a pair against each of its shadow targets, judging differences
 * against the noise of this request and the noise learned for its endpoint.
 * Never throws for bad bodies.
 */
export function comparePair(
  pair: MirroredPair,
  settings: CompareSettings = DEFAULT_COMPARE_SETTINGS,
  learned?: NoiseModel,
  context: PairContext = { endpoint: pair.path.split('?')[0] ?? '/' },
): PairResult {
  const endpoint = context.endpoint;
  const comparison = new PairComparison(pair, settings, learned?.reordered(pair.route, endpoint), context);
  const maxTemplate = settings.maxPathChars;

  let mask: NoiseMask | undefined;
  const noise: NoiseObservation[] = [];
  let baselineView: SideView | undefined;
  // The noise reference: the baseline's answer, else the primary's own earlier answer to this request.
  const reference = pair.baseline ? pair.baseline.result.response : context.previous;
  const evidence: Evidence = pair.baseline ? 'baseline' : context.previous ? 'repeat' : 'none';
  if (pair.baseline || context.previous) {
    mask = new NoiseMask();
    const seen = new Set<string>();
    const found: Found[] = reference
      ? comparison.against(reference).found
      : [{ kind: 'error', pointer: 'error', template: 'error', change: 'value', primary: pair.primary.status, shadow: null }];
    // The baseline's dependency calls against the live ones: call noise (src/egress/).
    const calls = pair.calls;
    if (pair.baseline && calls && calls.baseline.length > 0) {
      for (const d of callDifferences({ ...calls, dark: calls.baseline }, settings)) found.push({ ...d, kind: 'call' });
    }
    for (const d of found) {
      if (pair.baseline) mask.add(d.kind, maskPath(d), d.change);
      const template = clipString(d.template, maxTemplate);
      const key = d.kind + '\u0000' + template;
      if (!seen.has(key) && seen.size < settings.maxPathsPerPair) {
        seen.add(key);
        const relative = d.change === 'value' ? relativeDifference(d.primary, d.shadow) : undefined;
        noise.push(relative === undefined ? { kind: d.kind, template, change: d.change } : { kind: d.kind, template, change: d.change, relative });
      }
    }
    if (pair.baseline) {
      const b = pair.baseline.result;
      baselineView = b.response
        ? side(pair.baseline.upstream, b.response)
        : { upstream: pair.baseline.upstream, status: null, latencyMs: round(b.latencyMs, 1), ...(b.error ? { error: b.error } : {}) };
    }
  }
  // Repeat evidence is learned, never masks one request by itself: the value may really have changed.
  if (!pair.baseline) mask = undefined;
  const judgedWith: Evidence = pair.baseline ? 'baseline' : (learned?.evidenceFor(pair.route, endpoint) ?? 'none');

  const outcomes: CompareOutcome[] = [];
  const shadowPaths = new Map<string, { kind: DifferenceKind; template: string }>();
  const primaryMs = Math.max(MIN_LATENCY_MS, pair.primary.latencyMs);
  for (const target of pair.shadows) {
    const result = target.result;
    const counts: ShadowCounts = emptyCounts(pair.route, target.upstream, pair.baseline?.upstream);
    const b = pair.baseline?.result.response;
    const sample = result.response && measuredLatency(result.response) && (!b || measuredLatency(b))
      ? {
          primaryMs,
          shadowMs: Math.max(MIN_LATENCY_MS, result.response.latencyMs),
          ...(b ? { baselineMs: Math.max(MIN_LATENCY_MS, b.latencyMs) } : {}),
        }
      : undefined;
    const ep: EndpointCounts = emptyEndpoint(endpoint, pair.diff.latency?.maxRatio ?? 1.5, sample);
    counts.endpoints!.push(ep);
    counts.compared = ep.compared = 1;
    counts.baselined = ep.baselined = pair.baseline ? 1 : 0;
    ep.repeated = evidence === 'repeat' ? 1 : 0;
    observeLatency(counts, pair.primary.latencyMs, result.latencyMs);
    const paths = new PairPaths(settings.maxPathsPerPair);
    for (const n of noise) {
      const entry = paths.mark(n.kind, n.template, evidence === 'baseline' ? 'noise' : 'repeatNoise');
      if (entry && n.relative !== undefined && n.relative > (entry.maxRelative ?? -1)) entry.maxRelative = n.relative;
    }

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

    const lister = new Lister(comparison, settings, endpoint);
    const real: Found[] = [];
    const differingMarks = new MarkList();
    const noiseMarks = new MarkList();
    let masked = 0;
    for (const d of compared.found) {
      const template = clipString(d.template, maxTemplate);
      if (shadowPaths.size < settings.maxPathsPerPair) shadowPaths.set(d.kind + '\u0000' + template, { kind: d.kind, template });
      paths.mark(d.kind, template, 'raw');
      const noisyHere = mask !== undefined && mask.covers(d.kind, maskPath(d));
      const mark = { kind: d.kind, path: clipString(d.pointer, settings.maxPathChars), template };
      const judged = { kind: d.kind, template, change: d.change, primary: d.primary, shadow: d.shadow };
      const judgement = learned ? learned.judge(pair.route, endpoint, judged, noisyHere, judgedWith) : noisyHere ? 'noise' : 'real';
      if (judgement === 'noise' || judgement === 'tolerated' || judgement === 'reordered') {
        masked++;
        paths.mark(d.kind, template, 'masked');
        if (judgement !== 'noise') paths.mark(d.kind, template, judgement);
        noiseMarks.add(mark);
        continue;
      }
      real.push(d);
      differingMarks.add(mark);
      const entry = paths.mark(d.kind, template, 'differing');
      if (entry) entry.example ??= pair.requestId;
      if (judgement === 'beyond') paths.mark(d.kind, template, 'beyond');
    }
    const cause = causeOf(real);
    if (cause) {
      for (const d of real) if (d !== cause.found) paths.mark(d.kind, clipString(d.template, maxTemplate), 'withStatus');
      ep.causes.push({ cause: cause.name, requests: 1, example: pair.requestId, with: cause.with });
    }
    for (const d of real) {
      counts.kinds[d.kind] = ep.kinds[d.kind] = 1;
      lister.add(d);
    }
    counts.noiseMasked = ep.noiseMasked = masked;
    counts.differing = ep.differing = real.length > 0 ? 1 : 0;
    counts.noiseOnly = ep.noiseOnly = real.length === 0 && masked > 0 ? 1 : 0;
    const list = paths.list();
    counts.paths.push(...list);
    ep.paths.push(...list);
    counts.pathsOmitted = ep.pathsOmitted = paths.omitted;

    if (real.length === 0) {
      outcomes.push({ counts });
      continue;
    }
    const shadowView: SideView = result.response
      ? side(target.upstream, result.response)
      : { upstream: target.upstream, status: null, latencyMs: round(result.latencyMs, 1), ...(result.error ? { error: result.error } : {}) };
    const truncated = pair.primary.truncated || (result.response?.truncated ?? false);
    const wanted = context.wantsExample?.(pair.route, target.upstream, [...differingMarks.marks, ...noiseMarks.marks]) ?? true;
    const example = wanted
      ? packExample({
          primary: exampleSide(pair.primaryUpstream, { response: comparison.shown(pair.primary), lifted: comparison.primaryBody() }, comparison.rules),
          shadow: exampleSide(
            target.upstream,
            result.response
              ? { response: comparison.shown(result.response), lifted: comparison.lifted(result.response, compared) }
              : { error: result.error ?? (result.outcome === 'timeout' ? 'timed out' : 'failed'), latencyMs: result.latencyMs },
            comparison.rules,
          ),
          differing: differingMarks.marks,
          noise: noiseMarks.marks,
        })
      : undefined;
    outcomes.push({
      counts,
      event: {
        time: pair.time.toISOString(),
        route: pair.route,
        endpoint,
        evidence: judgedWith,
        method: pair.method,
        path: clipString(redactTarget(pair.path), settings.maxPathChars),
        requestId: pair.requestId,
        primary: side(pair.primaryUpstream, pair.primary),
        shadow: shadowView,
        ...(baselineView ? { baseline: baselineView } : {}),
        differences: lister.listed,
        differenceCount: real.length,
        noise: masked,
        truncated,
        ...(compared.limited ? { limited: compared.limited } : {}),
      },
      ...(example ? { example } : {}),
    });
  }
  return { outcomes, endpoint, evidence, noise, shadowPaths: [...shadowPaths.values()] };
}

/**
 * Whether an answer's latency is its upstream's: not when the thread that
 * measured it was kept from running for more than a tenth of it (busy
 * cores, a long garbage collection), which would make a shadow look slower
 * than it was. Such a pair is compared, but gives no latency
 * sample.
 */
function measuredLatency(response: CapturedResponse): boolean {
  return (response.stalledMs ?? 0) <= Math.max(1, response.latencyMs / 10);
}

/** A real status change (or a failed shadow) explains the other differences of its request. */
function causeOf(real: readonly Found[]): { name: string; found: Found; with: string[] } | undefined {
  const found = real.find((d) => d.kind === 'status' || d.kind === 'error');
  if (!found) return undefined;
  const name = found.kind === 'status' ? `status ${String(found.primary)} → ${String(found.shadow)}` : `no answer: ${String(found.shadow)}`;
  const others: string[] = [];
  for (const d of real) if (d !== found && others.length < 8) others.push(describeDifference(d));
  return { name, found, with: others };
}
