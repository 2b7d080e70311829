/**
 * Quantiles of bucketed samples (Prometheus histograms, the diff's fixed
 * latency buckets): which bucket a quantile falls in, its value
 * interpolated inside that bucket, and distribution-free bounds from the
 * ranks of the order statistics.
 */
import { Z95, type Interval } from './normal.js';

const total = (counts: ArrayLike<number>): number => {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i]!;
  return n;
};

/**
 * Index of the bucket holding quantile `q` of non-cumulative counts (the
 * first bucket whose cumulative count reaches q·n; -1 past them all), the
 * count below it and q·n; null for no samples.
 */
export function quantileBucket(q: number, counts: ArrayLike<number>): { index: number; below: number; rank: number } | null {
  const n = total(counts);
  if (n === 0) return null;
  const rank = q * n;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (below + c >= rank && c > 0) return { index: i, below, rank };
    below += c;
  }
  return { index: -1, below, rank };
}

/**
 * Quantile from non-cumulative bucket counts (the last count is +Inf), by
 * linear interpolation inside the bucket, as Prometheus' histogram_quantile.
 * NaN for no samples; past the last bound, the last bound.
 */
export function histogramQuantile(q: number, bounds: ArrayLike<number>, counts: ArrayLike<number>): number {
  const at = quantileBucket(q, counts);
  if (!at) return NaN;
  const { index, below, rank } = at;
  if (index < 0 || index >= bounds.length) return bounds[bounds.length - 1]!;
  const lower = index === 0 ? 0 : bounds[index - 1]!;
  const upper = bounds[index]!;
  return lower + (upper - lower) * ((rank - below) / counts[index]!);
}

/**
 * 1-based ranks of the order statistics that bound quantile `q` of `n`
 * samples: n·q ∓ z·√(n·q·(1−q)), clamped to [1, n]. Distribution-free: the
 * count of samples below the true quantile is binomial.
 */
export function orderStatisticRanks(n: number, q: number, z = Z95): { low: number; high: number } {
  const spread = z * Math.sqrt(n * q * (1 - q));
  return { low: Math.max(1, Math.floor(n * q - spread)), high: Math.min(n, Math.ceil(n * q + spread)) };
}

/**
 * Confidence bounds of a quantile from binned samples: the values at the
 * order statistics' ranks. With few samples the bounds are wide, so a
 * tail judged from them is judged fairly.
 */
export function quantileBounds(q: number, bounds: ArrayLike<number>, counts: ArrayLike<number>, z = Z95): Interval {
  const n = total(counts);
  if (n === 0) return { low: NaN, high: NaN };
  const ranks = orderStatisticRanks(n, q, z);
  return { low: histogramQuantile(ranks.low / n, bounds, counts), high: histogramQuantile(ranks.high / n, bounds, counts) };
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
