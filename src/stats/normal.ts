/**
 * The standard normal distribution: its CDF, and the critical values every
 * interval in the gateway is built from, declared once.
 */

/** Two-sided 95 %: the half-width of a 95 % interval, in standard errors. */
export const Z95 = 1.959964;

/** One-sided 95 %: a lower (or upper) bound that holds 95 % of the time. */
export const Z95_ONE_SIDED = 1.644854;

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
