/**
 * Rates from counts: the Wilson score interval (diff noise and verdicts,
 * release gates) and a lower bound on the difference of two rates.
 */
import { Z95, Z95_ONE_SIDED, type Interval } from './normal.js';

/**
 * Wilson score interval for k successes in n trials (95 % by default):
 * sound for small n and for rates near 0 or 1, where the normal
 * approximation is not. No trials: the whole of [0, 1].
 */
export function wilson(k: number, n: number, z = Z95): Interval {
  if (n <= 0) return { low: 0, high: 1 };
  const p = Math.min(1, Math.max(0, k / n));
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denominator;
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/**
 * One-sided lower confidence bound (95 % by default) of rate(a) - rate(b),
 * from a normal approximation with add-one smoothing of the variances.
 */
export function differenceLowerBound(aHits: number, aTrials: number, bHits: number, bTrials: number, z = Z95_ONE_SIDED): number {
  if (aTrials <= 0 || bTrials <= 0) return -1;
  const pa = aHits / aTrials;
  const pb = bHits / bTrials;
  // Add-one smoothing keeps the variance honest when a rate is 0.
  const va = ((aHits + 1) / (aTrials + 2)) * (1 - (aHits + 1) / (aTrials + 2));
  const vb = ((bHits + 1) / (bTrials + 2)) * (1 - (bHits + 1) / (bTrials + 2));
  return pa - pb - z * Math.sqrt(va / aTrials + vb / bTrials);
}
