/**
 * The diff's statistics over the shared ones (stats/): a verdict per path
 * from the Wilson intervals of its difference and noise rates, latency
 * histograms with fixed bounds (additive across replicas), and paired
 * latency comparisons over fine log-scale histograms.
 */
import { orderStatisticRanks, quantileBucket } from '../stats/histogram.js';
import { Z95 } from '../stats/normal.js';
import { wilson } from '../stats/rates.js';

/**
 * What a path's counts say, against the noise evidence (the baseline's, or
 * without one the repeated requests'):
 * - `regression`: the shadow differs here more often than the noise can
 *   explain (the intervals do not overlap), or its numbers move farther
 *   than the noise ever did on a clear share of requests;
 * - `noise`: the noise explains it;
 * - `uncertain`: it differs, the noise never does here, but too few
 *   samples to tell;
 * - `unverified`: it differs, and there is no evidence to tell noise apart.
 */
export type Verdict = 'regression' | 'noise' | 'uncertain' | 'unverified';

export interface VerdictCounts {
  readonly differing: number;
  readonly noise: number;
  readonly masked: number;
  readonly raw?: number;
  readonly beyond?: number;
  readonly repeatNoise?: number;
}

/** Real differences at a path the noise never showed, over at least MIN_NOISE_TRIALS pairs, that make it a regression. */
const MIN_UNEXPLAINED = 3;
const MIN_NOISE_TRIALS = 30;

export function verdict(path: VerdictCounts, compared: number, baselined: number, repeated = 0): Verdict {
  const trials = baselined > 0 ? baselined : repeated;
  const noise = baselined > 0 ? path.noise : (path.repeatNoise ?? 0);
  if (trials === 0) return path.differing > 0 ? 'unverified' : 'noise';
  const raw = Math.max(path.raw ?? 0, path.differing);
  const noiseHigh = wilson(noise, trials).high;
  if (path.differing > 0 && wilson(raw, compared).low > noiseHigh) return 'regression';
  // The noise never touched this path over enough pairs: no share of real differences is explained.
  if (noise === 0 && path.masked === 0 && path.differing >= MIN_UNEXPLAINED && trials >= MIN_NOISE_TRIALS) return 'regression';
  const beyond = path.beyond ?? 0;
  if (beyond >= 3 && wilson(beyond, compared).low > wilson(0, trials).high) return 'regression';
  if (noise > 0 || path.masked > 0) return 'noise';
  return baselined > 0 || path.differing === 0 ? 'uncertain' : 'unverified';
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
  const at = quantileBucket(q, buckets);
  if (!at) return null;
  const last = LATENCY_BOUNDS_MS.length - 1;
  return LATENCY_BOUNDS_MS[at.index < 0 ? last : Math.min(at.index, last)]!;
}

export function round(value: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

// ---- latency: log-scale histograms and confidence intervals --------------

/**
 * Fine log-scale bins (about 2% wide), stored sparse as {bin: count}: additive
 * across pairs, replicas and workers, and bounded (a few hundred bins at
 * most), so per-endpoint latency needs no per-request samples.
 */
const LOG_BIN_WIDTH = 0.02;
const LOG_BIN_LIMIT = 1200;

export type LogHistogram = Record<string, number>;

/** The bin of a positive value (ratios or milliseconds); clamped to the range. */
export function logBin(value: number): number {
  const v = Number.isFinite(value) && value > 0 ? value : 1e-6;
  return Math.max(-LOG_BIN_LIMIT, Math.min(LOG_BIN_LIMIT, Math.round(Math.log(v) / LOG_BIN_WIDTH)));
}

export const binValue = (bin: number): number => Math.exp(bin * LOG_BIN_WIDTH);

export function addLog(histogram: LogHistogram, value: number, count = 1): void {
  const bin = logBin(value);
  histogram[bin] = (histogram[bin] ?? 0) + count;
}

export function mergeLog(into: LogHistogram, from: Readonly<LogHistogram>): void {
  for (const bin in from) into[bin] = (into[bin] ?? 0) + (from[bin] ?? 0);
}

const byBin = (a: readonly [number, number], b: readonly [number, number]): number => a[0] - b[0];

// No callbacks made per call: V8 keeps a closure's optimized code only while
// one of its instances lives, so each full collection sent per-call closures
// on this path back to the compiler (bench/README.md, "Closures made per call").
function sortedBins(histogram: Readonly<LogHistogram>): [number, number][] {
  const bins: [number, number][] = [];
  for (const bin in histogram) {
    const count = histogram[bin]!;
    if (count > 0) bins.push([Number(bin), count]);
  }
  return bins.sort(byBin);
}

/** The value at 1-based rank `rank` (clamped) of a sorted histogram. */
function atRank(bins: readonly [number, number][], rank: number): number {
  let seen = 0;
  for (const [bin, count] of bins) {
    seen += count;
    if (seen >= rank) return binValue(bin);
  }
  return binValue(bins[bins.length - 1]![0]);
}

export interface QuantileEstimate {
  readonly value: number;
  /** 95% distribution-free interval, from the binomial ranks of the order statistics. */
  readonly ci: readonly [number, number];
  readonly n: number;
}

/** A quantile and its interval; null for an empty histogram. */
export function quantileInterval(histogram: Readonly<LogHistogram>, q: number, z = Z95): QuantileEstimate | null {
  return quantileOfSorted(sortedBins(histogram), q, z);
}

/** Quantiles of one histogram, sorted once: judging latency takes two of the same histograms. */
function quantilesOf(histogram: Readonly<LogHistogram>, ...qs: number[]): (QuantileEstimate | null)[] {
  const bins = sortedBins(histogram);
  return qs.map((q) => quantileOfSorted(bins, q));
}

function quantileOfSorted(bins: readonly [number, number][], q: number, z = Z95): QuantileEstimate | null {
  let n = 0;
  for (const [, c] of bins) n += c;
  if (n === 0) return null;
  const ranks = orderStatisticRanks(n, q, z);
  // One rank further up: the upper bound errs on the slow side.
  return { value: atRank(bins, Math.max(1, Math.ceil(n * q))), ci: [atRank(bins, ranks.low), atRank(bins, Math.min(n, ranks.high + 1))], n };
}

export interface LatencyComparison {
  /** Paired pairs (shadow and primary latency of the same request). */
  readonly pairs: number;
  /** Median of the per-request shadow/primary ratios, and its interval. */
  readonly ratio: number | null;
  readonly ratioCi: readonly [number, number] | null;
  /** Shadow p95 over primary p95, with a conservative interval from both p95s' intervals. */
  readonly p95Ratio: number | null;
  readonly p95RatioCi: readonly [number, number] | null;
  /** Median baseline/primary ratio: how far two instances of one version drift apart. */
  readonly baselineRatio: number | null;
  /** The shadow is slower than maxRatio (times the baseline's drift, when above 1) with confidence. */
  readonly slower: boolean;
}

export interface LatencyHistograms {
  /** ln(shadow/primary) per request. */
  readonly ratio: LogHistogram;
  /** ln(baseline/primary) per request that had a baseline answer. */
  readonly baselineRatio: LogHistogram;
  readonly primary: LogHistogram;
  readonly shadow: LogHistogram;
}

/** Fewer paired requests than this are never judged slower. */
export const MIN_LATENCY_PAIRS = 30;

/**
 * A shadow is never judged slower by less than this, whatever the ratio:
 * at sub-millisecond latencies the two sides' own client stacks differ by
 * fractions of a millisecond, which doubles a ratio and means nothing to users.
 */
export const MIN_LATENCY_DELTA_MS = 1;

export function compareLatency(h: LatencyHistograms, maxRatio: number): LatencyComparison {
  const ratio = quantileInterval(h.ratio, 0.5);
  const baseline = quantileInterval(h.baselineRatio, 0.5);
  const [sp95, sp50] = quantilesOf(h.shadow, 0.95, 0.5);
  const [pp95, pp50] = quantilesOf(h.primary, 0.95, 0.5);
  const p95Ratio = sp95 && pp95 ? sp95.value / pp95.value : null;
  const p95RatioCi: [number, number] | null = sp95 && pp95 ? [sp95.ci[0] / pp95.ci[1], sp95.ci[1] / pp95.ci[0]] : null;
  const pairs = ratio?.n ?? 0;
  // Two instances of one version may differ on their own (hosts, caches):
  // the shadow must be slower than that drift too.
  const drift = Math.max(1, baseline?.ci[1] ?? 1);
  const limit = maxRatio * drift;
  const medianSlower = ratio !== null && ratio.ci[0] > limit && sp50 !== null && pp50 !== null && sp50.value - pp50.value >= MIN_LATENCY_DELTA_MS;
  const tailSlower = p95RatioCi !== null && p95RatioCi[0] > limit && sp95!.value - pp95!.value >= MIN_LATENCY_DELTA_MS;
  const slower = pairs >= MIN_LATENCY_PAIRS && (medianSlower || tailSlower);
  return {
    pairs,
    ratio: ratio ? round(ratio.value, 3) : null,
    ratioCi: ratio ? [round(ratio.ci[0], 3), round(ratio.ci[1], 3)] : null,
    p95Ratio: p95Ratio === null ? null : round(p95Ratio, 3),
    p95RatioCi: p95RatioCi ? [round(p95RatioCi[0], 3), round(p95RatioCi[1], 3)] : null,
    baselineRatio: baseline ? round(baseline.value, 3) : null,
    slower,
  };
}
