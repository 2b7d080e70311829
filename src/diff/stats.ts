/**
 * Small statistics for the summary: Wilson score intervals for rates, a
 * verdict per path from the intervals of its difference and noise rates,
 * and latency histograms with fixed bounds (additive across replicas).
 */

/** 95% two-sided. */
const Z = 1.959964;

/**
 * Wilson score interval for k successes in n trials: sound for small n and
 * for rates near 0 or 1, where the normal approximation is not.
 */
export function wilson(k: number, n: number, z = Z): [number, number] {
  if (n <= 0) return [0, 1];
  const p = Math.min(1, Math.max(0, k / n));
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denominator;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/**
 * What a path's counts say:
 * - `regression`: it differs more often than the baseline's noise can explain
 *   (the intervals do not overlap);
 * - `noise`: the baseline shows it as noisy and the shadow does not clearly
 *   differ more often;
 * - `uncertain`: it differs, but there are too few samples to tell;
 * - `unverified`: it differs, and there is no baseline to tell noise apart.
 */
export type Verdict = 'regression' | 'noise' | 'uncertain' | 'unverified';

export function verdict(
  path: { readonly differing: number; readonly noise: number; readonly masked: number },
  compared: number,
  baselined: number,
): Verdict {
  if (baselined === 0) return path.differing > 0 ? 'unverified' : 'noise';
  const [low] = wilson(path.differing, compared);
  const [, noiseHigh] = wilson(path.noise, baselined);
  if (path.differing > 0 && low > noiseHigh) return 'regression';
  if (path.noise > 0 || path.masked > 0) return 'noise';
  return 'uncertain';
}

/** Upper bounds in ms; one more bucket above the last for anything slower. */
export const LATENCY_BOUNDS_MS: readonly number[] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000];

export function latencyBucket(ms: number): number {
  let i = 0;
  while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]!) i++;
  return i;
}

/**
 * The bucket bound under which a quantile of the observations fell; null
 * for no observations. Past the last bound it is the last bound ("or more").
 */
export function quantileMs(buckets: readonly number[], q: number): number | null {
  let total = 0;
  for (const c of buckets) total += c;
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  let i = 0;
  for (; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= rank) break;
  }
  return LATENCY_BOUNDS_MS[Math.min(i, LATENCY_BOUNDS_MS.length - 1)]!;
}

export function round(value: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
