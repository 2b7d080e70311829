/**
 * Critical values for a test that is looked at again and again as its
 * evidence grows (a release gate checked every few seconds).
 *
 * A fixed critical value (z = 2.33 for p < 0.01) holds once; checked after
 * every new batch of requests, a statistic that wanders like a random walk
 * crosses any fixed line eventually (the law of the iterated logarithm),
 * so a healthy candidate would be rolled back by chance, the more often
 * the longer a step lasts and the more often it is checked.
 *
 * The boundary here is the normal-mixture boundary (Robbins 1970; as
 * "always-valid p-values" in Johari, Pekelis and Walsh 2017; as confidence
 * sequences in Howard, Ramdas, McAuliffe and Sekhon 2021). For a
 * standardised statistic Z_t at information t (Z_t·√t behaving as a
 * Brownian motion with no drift under the null), the mixture
 *   M_t = (1 + ρt)^(-1/2) · exp(ρ·t·Z_t² / (2(1 + ρt)))
 * is a nonnegative martingale with M_0 = 1, so by Ville's inequality
 *   P(M_t ≥ 1/α at any t) ≤ α.
 * M_t ≥ 1/α is |Z_t| ≥ z(t) with
 *   z(t)² = (1 + ρt)/(ρt) · (2·ln(1/α) + ln(1 + ρt)).
 * So the false-alarm rate stays at most α however many times, and however
 * irregularly, the statistic is looked at: it depends on neither the
 * number of checks nor their timing, only on the evidence. Against a
 * statistic that drifts the wrong way (a candidate faster than the limit)
 * it holds a fortiori. The price is a higher line: about 3.6 instead of
 * 2.33 for α = 0.01 at the planned information, growing like √(ln t)
 * away from it.
 */

/**
 * The mixture's ρ that makes the boundary tightest at information
 * `planned` (Howard et al. 2021, eq. 14's choice).
 */
function mixtureFor(alpha: number, planned: number): number {
  const l = -2 * Math.log(alpha);
  return (l + Math.log(l + 1)) / planned;
}

/**
 * The critical |z| at information `t` such that the chance of ever crossing
 * it, over any sequence of looks, is at most `alpha`. Infinite with no
 * information.
 */
export function sequentialZ(t: number, alpha: number, planned: number): number {
  if (!(t > 0)) return Infinity;
  const rt = mixtureFor(alpha, planned) * t;
  return Math.sqrt(((1 + rt) / rt) * (2 * Math.log(1 / alpha) + Math.log(1 + rt)));
}
