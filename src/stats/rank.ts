/**
 * The Mann-Whitney rank test on binned samples (each bucket a group of
 * ties, tie-corrected variance, continuity-corrected).
 */
import { normalCdf } from './normal.js';

export interface RankTest {
  /** Standardised U of `a` against `b`: large when `a` tends to be larger. 0 without evidence. */
  readonly z: number;
  /** One-sided p-value of that, from the normal approximation. */
  readonly p: number;
  /** Statistical information of the comparison, n1·n2/(n1+n2): what a sequential boundary counts. */
  readonly information: number;
}

export function mannWhitney(a: ArrayLike<number>, b: ArrayLike<number>): RankTest {
  let n1 = 0;
  let n2 = 0;
  for (let i = 0; i < a.length; i++) n1 += a[i]!;
  for (let i = 0; i < b.length; i++) n2 += b[i]!;
  if (n1 === 0 || n2 === 0) return { z: 0, p: 1, information: 0 };
  const n = n1 + n2;
  const information = (n1 * n2) / n;
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
  if (variance <= 0) return { z: 0, p: 1, information };
  const z = (u - mean - 0.5) / Math.sqrt(variance);
  return { z, p: 1 - normalCdf(z), information };
}

/** The one-sided p-value that `a` tends to be larger than `b`. */
export const mannWhitneyGreater = (a: ArrayLike<number>, b: ArrayLike<number>): number => mannWhitney(a, b).p;
