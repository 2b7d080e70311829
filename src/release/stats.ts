/**
 * The statistics release gates are judged with: Wilson intervals for rates,
 * a two-proportion test for "worse than stable", a Mann-Whitney rank test on
 * binned latencies (ties corrected), and quantiles from histogram buckets.
 * Small samples give wide intervals, so a handful of requests can neither
 * pass nor fail a gate by luck.
 */
import { wilson as wilsonInterval } from '../diff/stats.js';

/** Standard normal CDF (Abramowitz and Stegun 7.1.26, error < 1.5e-7). */
export function normalCdf(z: number): number {
  const t = 1 / (1 + 0.3275911 * (Math.abs(z) / Math.SQRT2));
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

export interface Interval {
  readonly low: number;
  readonly high: number;
}

/** Wilson score interval of a rate (the diff summary's), as {low, high}. */
export function wilson(successes: number, trials: number, z = 1.96): Interval {
  const [low, high] = wilsonInterval(successes, trials, z);
  return { low, high };
}

/**
 * One-sided lower confidence bound (z = 1.645: 95 %) of rate(a) - rate(b),
 * from a normal approximation with a Wilson-like floor on small counts.
 */
export function differenceLowerBound(aHits: number, aTrials: number, bHits: number, bTrials: number, z = 1.645): number {
  if (aTrials <= 0 || bTrials <= 0) return -1;
  const pa = aHits / aTrials;
  const pb = bHits / bTrials;
  // Add-one smoothing keeps the variance honest when a rate is 0.
  const va = ((aHits + 1) / (aTrials + 2)) * (1 - (aHits + 1) / (aTrials + 2));
  const vb = ((bHits + 1) / (bTrials + 2)) * (1 - (bHits + 1) / (bTrials + 2));
  return pa - pb - z * Math.sqrt(va / aTrials + vb / bTrials);
}

/**
 * Mann-Whitney U test on binned samples (each bucket a group of ties):
 * the one-sided p-value that `a` tends to be larger than `b`.
 */
export function mannWhitneyGreater(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n1 = 0;
  let n2 = 0;
  for (let i = 0; i < a.length; i++) n1 += a[i]!;
  for (let i = 0; i < b.length; i++) n2 += b[i]!;
  if (n1 === 0 || n2 === 0) return 1;
  const n = n1 + n2;
  let below = 0;
  let rankSumA = 0;
  let tieTerm = 0;
  const bins = Math.max(a.length, b.length);
  for (let k = 0; k < bins; k++) {
    const t = (a[k] ?? 0) + (b[k] ?? 0);
    if (t === 0) continue;
    const averageRank = below + (t + 1) / 2;
    rankSumA += (a[k] ?? 0) * averageRank;
    tieTerm += t * t * t - t;
    below += t;
  }
  const u = rankSumA - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (variance <= 0) return 1;
  const z = (u - mean - 0.5) / Math.sqrt(variance);
  return 1 - normalCdf(z);
}

/**
 * Quantile from non-cumulative bucket counts (the last count is +Inf), by
 * linear interpolation inside the bucket, as Prometheus' histogram_quantile.
 */
export function histogramQuantile(q: number, bounds: ArrayLike<number>, counts: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return NaN;
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (cumulative + c >= rank && c > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1]!;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      const upper = bounds[i]!;
      return lower + (upper - lower) * ((rank - cumulative) / c);
    }
    cumulative += c;
  }
  return bounds[bounds.length - 1]!;
}

/**
 * Distribution-free confidence bounds of a quantile from binned samples:
 * the values at the order statistics n·q ∓ z·√(n·q·(1−q)). With few
 * samples the bounds are wide, so a tail judged from them is judged fairly.
 */
export function quantileBounds(q: number, bounds: ArrayLike<number>, counts: ArrayLike<number>, z = 1.96): Interval {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i]!;
  if (n === 0) return { low: NaN, high: NaN };
  const spread = z * Math.sqrt(n * q * (1 - q));
  const lowRank = Math.max(1, Math.floor(n * q - spread));
  const highRank = Math.min(n, Math.ceil(n * q + spread));
  return {
    low: histogramQuantile(lowRank / n, bounds, counts),
    high: histogramQuantile(highRank / n, bounds, counts),
  };
}

/**
 * Samples scaled by `factor`, re-binned: each bucket's count moves to the
 * bucket holding its midpoint times the factor. Used to ask "is the
 * candidate slower than the stable version with a tolerance" (Kayenta's
 * effect size) of a rank test on binned data.
 */
export function scaleBinned(bounds: ArrayLike<number>, counts: ArrayLike<number>, factor: number): number[] {
  const out = new Array<number>(counts.length).fill(0);
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c === 0) continue;
    const lower = i === 0 ? 0 : bounds[i - 1]!;
    const mid = i < bounds.length ? (lower + bounds[i]!) / 2 : lower * 1.5;
    const scaled = mid * factor;
    let j = 0;
    while (j < bounds.length && bounds[j]! < scaled) j++;
    out[j]! += c;
  }
  return out;
}
