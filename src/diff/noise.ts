/**
 * Noise: what differs between the primary and a second instance of the
 * same version (the baseline) is not a regression.
 *
 * Per request (as Diferencia does), a primary/shadow difference at a path
 * where primary and baseline also differ, or below one, is masked. Across
 * requests (as Diffy does, with an interval instead of fixed thresholds), a
 * path the baseline shows as noisy on a clear share of requests is masked
 * even when primary and baseline happen to agree on one request: a
 * timestamp that ticked in step, a random value that repeated.
 */
import { wilson } from './stats.js';
import type { DifferenceKind } from './types.js';

const key = (kind: DifferenceKind, path: string) => kind + '\u0000' + path;

/** The paths where one request's primary and baseline answers differ. */
export class NoiseMask {
  private readonly paths = new Set<string>();
  /** Body pointers, for the ancestor check. */
  private readonly body = new Set<string>();

  add(kind: DifferenceKind, path: string): void {
    this.paths.add(key(kind, path));
    if (kind === 'body') this.body.add(path);
  }

  get size(): number {
    return this.paths.size;
  }

  /** Masked: the same path is noisy, or (for bodies) one of its ancestors is. */
  covers(kind: DifferenceKind, path: string): boolean {
    if (this.paths.size === 0) return false;
    if (this.paths.has(key(kind, path))) return true;
    if (kind !== 'body' || this.body.size === 0) return false;
    if (this.body.has('')) return true;
    for (let cut = path.lastIndexOf('/'); cut > 0; cut = path.lastIndexOf('/', cut - 1)) {
      if (this.body.has(path.slice(0, cut))) return true;
    }
    return false;
  }
}

export interface LearnedNoiseOptions {
  /** Masked once the interval's lower bound of the noise rate reaches this. */
  readonly minRate: number;
  /** ...and at least this many requests showed the path as noise. */
  readonly minNoisy: number;
  /** Tracked paths, over all routes; beyond it new paths are not learned. */
  readonly maxPaths: number;
}

export const DEFAULT_LEARNED_NOISE: LearnedNoiseOptions = { minRate: 0.2, minNoisy: 2, maxPaths: 20_000 };

/**
 * Per route, how often each template path is noisy between primary and
 * baseline. Local to the process that compares; bounded.
 */
export class LearnedNoise {
  private readonly baselined = new Map<string, number>();
  private readonly noisy = new Map<string, number>();

  constructor(private readonly options: LearnedNoiseOptions = DEFAULT_LEARNED_NOISE) {}

  /** One request compared with its baseline: the templates that were noisy. */
  observe(route: string, noisy: Iterable<{ kind: DifferenceKind; template: string }>): void {
    this.baselined.set(route, (this.baselined.get(route) ?? 0) + 1);
    for (const n of noisy) {
      const k = route + '\u0000' + key(n.kind, n.template);
      const count = this.noisy.get(k);
      if (count !== undefined) this.noisy.set(k, count + 1);
      else if (this.noisy.size < this.options.maxPaths) this.noisy.set(k, 1);
    }
  }

  isNoisy(route: string, kind: DifferenceKind, template: string): boolean {
    const noisy = this.noisy.get(route + '\u0000' + key(kind, template));
    if (noisy === undefined || noisy < this.options.minNoisy) return false;
    const n = this.baselined.get(route) ?? 0;
    return wilson(noisy, n)[0] >= this.options.minRate;
  }
}
