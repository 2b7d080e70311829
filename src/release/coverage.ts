/**
 * Whether a window of scraped evidence is whole enough to judge: every
 * stretch of the window has a scrape (from some gateway in scope, so pods
 * coming and going are fine), no gateway missed a scrape in between two of
 * its own, and there are as many scrapes as the scrape interval implies.
 * A window with a gap is not judged; the judging window restarts after it.
 */

export interface ScrapeSeries {
  /** Sample timestamps, ms since the epoch, ascending. */
  readonly times: readonly number[];
}

export type Coverage =
  | { readonly ok: true; readonly scrapes: number; readonly expected: number; readonly intervalMs: number }
  | {
      readonly ok: false;
      readonly reason: string;
      /** When the window can restart: the first scrape after the last gap. */
      readonly resumeAt?: number;
    };

/** A stretch longer than this many scrape intervals without a scrape is a gap. */
const GAP_FACTOR = 1.5;
/** The newest scrape may lag `now` by the interval plus scrape and ingestion time. */
const LAG_FACTOR = 2.5;

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The scrape interval as the samples show it: the median spacing. */
export function inferInterval(series: readonly ScrapeSeries[]): number | undefined {
  const spacings: number[] = [];
  for (const s of series) for (let i = 1; i < s.times.length; i++) spacings.push(s.times[i]! - s.times[i - 1]!);
  return spacings.length ? median(spacings) : undefined;
}

export function windowCoverage(series: readonly ScrapeSeries[], startMs: number, nowMs: number, intervalMs?: number): Coverage {
  const inWindow = series.map((s) => ({ times: s.times.filter((t) => t >= startMs && t <= nowMs) })).filter((s) => s.times.length > 0);
  if (inWindow.length === 0) return { ok: false, reason: `no scrape of any gateway in scope in the last ${seconds(nowMs - startMs)}` };
  const interval = intervalMs ?? inferInterval(inWindow);
  if (interval === undefined || interval <= 0) {
    return { ok: false, reason: 'fewer than two scrapes in the window so far' };
  }
  const expected = Math.floor((nowMs - startMs) / interval);
  if (expected < 2) return { ok: false, reason: `the window is ${seconds(nowMs - startMs)}, under two scrape intervals of ${seconds(interval)}` };

  const gaps: { from: number; to: number }[] = [];
  const limit = interval * GAP_FACTOR;
  const union = [...new Set(inWindow.flatMap((s) => s.times))].sort((a, b) => a - b);
  if (union[0]! - startMs > limit) gaps.push({ from: startMs, to: union[0]! });
  for (let i = 1; i < union.length; i++) if (union[i]! - union[i - 1]! > limit) gaps.push({ from: union[i - 1]!, to: union[i]! });
  for (const s of inWindow) {
    for (let i = 1; i < s.times.length; i++) if (s.times[i]! - s.times[i - 1]! > limit) gaps.push({ from: s.times[i - 1]!, to: s.times[i]! });
  }
  const newest = union[union.length - 1]!;
  if (nowMs - newest > interval * LAG_FACTOR) {
    return { ok: false, reason: `no scrape for ${seconds(nowMs - newest)} (scrape interval ${seconds(interval)}): not judging until scrapes resume` };
  }
  if (gaps.length > 0) {
    const last = gaps.reduce((a, b) => (b.to > a.to ? b : a));
    const longest = gaps.reduce((a, b) => (b.to - b.from > a.to - a.from ? b : a));
    return {
      ok: false,
      reason:
        `scrape gap of ${seconds(longest.to - longest.from)} in the window (scrape interval ${seconds(interval)}): ` +
        `not judging; counting again from the first scrape after it`,
      resumeAt: last.to,
    };
  }
  // Scrape slots of one interval that hold a scrape of some gateway in scope.
  const scrapes = new Set(union.map((t) => Math.floor((t - startMs) / interval))).size;
  if (scrapes < expected - 1) {
    return { ok: false, reason: `only ${scrapes} scrapes in the window where the ${seconds(interval)} interval implies ${expected}` };
  }
  return { ok: true, scrapes, expected, intervalMs: interval };
}
