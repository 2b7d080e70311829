/**
 * Noise: what differs between two answers of the same version (the primary
 * and the baseline, or, without a baseline, the primary's answers to the
 * same repeated request) is not a regression.
 *
 * Per request (as Diferencia does), a primary/shadow difference at a path
 * where primary and baseline also differ, or below one, is noise. Across
 * requests, per endpoint and path, the model learns how often the path is
 * noisy and, for numbers, how large the noise is, and judges each
 * difference against that:
 * - a number farther apart than the noise ever was is real, even where the
 *   baseline jittered on the same request;
 * - an array the baseline only ever reorders is a set: reordering is noise,
 *   other contents are not;
 * - a path the shadow differs on clearly more often than the noise does (a
 *   field noisy on 35% of requests that v2 changes on all of them) is real,
 *   even on the requests where the baseline happened to differ too;
 * - otherwise a path with noise evidence is noise.
 */
import { wilson } from '../stats/rates.js';
import type { ChangeKind, DifferenceKind, Evidence } from './types.js';

export type { Evidence } from './types.js';

const key = (kind: DifferenceKind, path: string) => kind + '\u0000' + path;

/** The paths where one request's primary and baseline answers differ. */
export class NoiseMask {
  private readonly paths = new Set<string>();
  /** Body pointers, for the ancestor check (reorderings excluded: they say nothing of the elements). */
  private readonly body = new Set<string>();

  add(kind: DifferenceKind, path: string, change?: ChangeKind): void {
    this.paths.add(key(kind, path));
    if (kind === 'body' && change !== 'order') this.body.add(path);
  }

  get size(): number {
    return this.paths.size;
  }

  /** Masked: the same path is noisy, or (for JSON bodies) one of its ancestors is. */
  covers(kind: DifferenceKind, path: string): boolean {
    if (this.paths.size === 0) return false;
    if (this.paths.has(key(kind, path))) return true;
    if (kind !== 'body' || this.body.size === 0 || !path.startsWith('/')) return false;
    if (this.body.has('')) return true;
    for (let cut = path.lastIndexOf('/'); cut > 0; cut = path.lastIndexOf('/', cut - 1)) {
      if (this.body.has(path.slice(0, cut))) return true;
    }
    return false;
  }
}

/** One noisy path seen between two answers of the same version. */
export interface NoiseObservation {
  readonly kind: DifferenceKind;
  readonly template: string;
  readonly change: ChangeKind;
  /** For number-to-number value changes: |a - b| / max(|a|, |b|). */
  readonly relative?: number;
}

/** A difference to judge. */
export interface Judged {
  readonly kind: DifferenceKind;
  readonly template: string;
  readonly change: ChangeKind;
  readonly primary: unknown;
  readonly shadow: unknown;
}

/**
 * - `noise`: explained by the noise;
 * - `tolerated`: a number within the learned size of its noise (noise);
 * - `reordered`: an array the noise only ever reorders, reordered (noise);
 * - `real`: not explained;
 * - `beyond`: a number that moved farther than its noise ever did (real).
 */
export type Judgement = 'noise' | 'tolerated' | 'reordered' | 'real' | 'beyond';

/** What comparison reads of the learned noise; plain lookups, no I/O. */
export interface NoiseModel {
  judge(route: string, endpoint: string, d: Judged, noisyHere: boolean, evidence: Evidence): Judgement;
  /** Templates of arrays the noise only ever reordered on this endpoint (compared as sets). */
  reordered(route: string, endpoint: string): ReadonlySet<string> | undefined;
  /** Without a baseline: `repeat` once repeated requests taught something about this endpoint. */
  evidenceFor(route: string, endpoint: string): Evidence;
}

export interface LearnedNoiseOptions {
  /** Noise observations before a path is judged noisy across requests. */
  readonly minNoisy: number;
  /** Shadow differences at a path before its rate can outweigh the noise. */
  readonly minRaw: number;
  /** A number is noise while within this multiple of the largest relative noise seen. */
  readonly sizeSlack: number;
  /** Tracked paths, over all endpoints; beyond it new paths are not learned. */
  readonly maxPaths: number;
}

/** Numeric noise up to this relative size is jitter, judged by size; larger noise is just noise. */
const MAX_JITTER = 0.05;

/** Repeats compared on every pair of an endpoint until this many were seen. */
const REPEATS_ALWAYS = 200;

export const DEFAULT_LEARNED_NOISE: LearnedNoiseOptions = { minNoisy: 2, minRaw: 5, sizeSlack: 4, maxPaths: 20_000 };

interface PathStats {
  /** Observations as noise, per evidence. */
  noise: number;
  repeat: number;
  /** Of those, number-to-number changes, with the largest relative size. */
  numeric: number;
  maxRelative: number;
  /** Of those, reorderings only. */
  orders: number;
  /** Pairs where the shadow differed here (noise or not). */
  raw: number;
}

interface Scope {
  compared: number;
  baselined: number;
  repeated: number;
  readonly paths: Map<string, PathStats>;
  readonly reordered: Set<string>;
}

export function relativeDifference(a: unknown, b: unknown): number | undefined {
  if (typeof a !== 'number' || typeof b !== 'number') return undefined;
  const scale = Math.max(Math.abs(a), Math.abs(b));
  return scale === 0 ? 0 : Math.abs(a - b) / scale;
}

/**
 * Per (route, endpoint, path): the learned noise. Local to the process that
 * compares; bounded by maxPaths (and endpoints by EndpointBook).
 */
export class LearnedNoise implements NoiseModel {
  private readonly scopes = new Map<string, Scope>();
  private tracked = 0;

  constructor(private readonly options: LearnedNoiseOptions = DEFAULT_LEARNED_NOISE) {}

  private scope(route: string, endpoint: string, create: boolean): Scope | undefined {
    const k = route + '\u0000' + endpoint;
    let s = this.scopes.get(k);
    if (!s && create) this.scopes.set(k, (s = { compared: 0, baselined: 0, repeated: 0, paths: new Map(), reordered: new Set() }));
    return s;
  }

  private stats(scope: Scope, kind: DifferenceKind, template: string): PathStats | undefined {
    const k = key(kind, template);
    let p = scope.paths.get(k);
    if (!p && this.tracked < this.options.maxPaths) {
      scope.paths.set(k, (p = { noise: 0, repeat: 0, numeric: 0, maxRelative: 0, orders: 0, raw: 0 }));
      this.tracked++;
    }
    return p;
  }

  /** One pair compared: its noise (from the baseline or a repeat) and the shadow's differing paths. */
  observe(
    route: string,
    endpoint: string,
    evidence: Evidence,
    noise: readonly NoiseObservation[],
    shadowPaths: Iterable<{ kind: DifferenceKind; template: string }>,
  ): void {
    const scope = this.scope(route, endpoint, true)!;
    scope.compared++;
    if (evidence === 'baseline') scope.baselined++;
    else if (evidence === 'repeat') scope.repeated++;
    for (const n of noise) {
      const p = this.stats(scope, n.kind, n.template);
      if (!p) continue;
      if (evidence === 'baseline') p.noise++;
      else p.repeat++;
      if (n.relative !== undefined) {
        p.numeric++;
        if (n.relative > p.maxRelative) p.maxRelative = n.relative;
      }
      if (n.change === 'order') p.orders++;
      const all = p.noise + p.repeat;
      if (p.orders === all && all >= this.options.minNoisy) scope.reordered.add(n.template);
      else scope.reordered.delete(n.template);
    }
    for (const d of shadowPaths) {
      const p = this.stats(scope, d.kind, d.template);
      if (p) p.raw++;
    }
  }

  reordered(route: string, endpoint: string): ReadonlySet<string> | undefined {
    const s = this.scope(route, endpoint, false);
    return s && s.reordered.size > 0 ? s.reordered : undefined;
  }

  /**
   * Whether to compare this pair's primary with its earlier answer: always
   * while an endpoint has few repeats, then one pair in ten (the cost of a
   * second comparison is kept for what it still teaches).
   */
  wantsRepeat(route: string, endpoint: string): boolean {
    const s = this.scope(route, endpoint, false);
    return !s || s.repeated < REPEATS_ALWAYS || s.compared % 10 === 0;
  }

  evidenceFor(route: string, endpoint: string): Evidence {
    return (this.scope(route, endpoint, false)?.repeated ?? 0) > 0 ? 'repeat' : 'none';
  }

  judge(route: string, endpoint: string, d: Judged, noisyHere: boolean, evidence: Evidence): Judgement {
    const scope = this.scope(route, endpoint, false);
    const p = scope?.paths.get(key(d.kind, d.template));
    if (!scope || !p) return noisyHere ? 'noise' : 'real';
    const noisy = p.noise + p.repeat;
    const trials = evidence === 'baseline' ? scope.baselined : scope.repeated;
    const relative = d.change === 'value' ? relativeDifference(d.primary, d.shadow) : undefined;
    // Only small jitter has a size worth learning: a random number's noise spans its whole range.
    if (relative !== undefined && p.numeric >= this.options.minNoisy && p.numeric === noisy && p.maxRelative <= MAX_JITTER) {
      return relative <= p.maxRelative * this.options.sizeSlack ? 'tolerated' : 'beyond';
    }
    if (d.change === 'order' && p.orders >= this.options.minNoisy && p.orders === noisy) return 'reordered';
    const evidenceNoise = evidence === 'baseline' ? p.noise : p.repeat;
    if (p.raw >= this.options.minRaw && trials > 0 && wilson(p.raw, scope.compared).low > wilson(evidenceNoise, trials).high) return 'real';
    if (noisyHere) return 'noise';
    return evidenceNoise >= this.options.minNoisy ? 'noise' : 'real';
  }
}
