/**
 * The JSON of GET /diffs/summary, made from additive counts, and the merge
 * of several replicas' summaries: raw counts are summed, then rates,
 * intervals and verdicts are computed again from the sums.
 */
import { CountsTable } from './counts.js';
import { LATENCY_BOUNDS_MS, quantileMs, round, verdict, wilson, type Verdict } from './stats.js';
import { DIFFERENCE_KINDS, type DifferenceKind, type ShadowCounts } from './types.js';

export interface PathSummary {
  readonly kind: DifferenceKind;
  /** Template path: body JSON Pointer with "*", header name, "status" or "error". */
  readonly path: string;
  readonly differing: number;
  /** differing / compared, with its 95% Wilson interval. */
  readonly rate: number;
  readonly ci: readonly [number, number];
  /** Requests where primary and baseline differed here. */
  readonly noise: number;
  readonly noiseRate: number;
  readonly noiseCi: readonly [number, number];
  /** Primary/shadow differences here that were masked as noise. */
  readonly masked: number;
  readonly verdict: Verdict;
}

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number | null;
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  readonly p99Ms: number | null;
}

export interface ShadowSummary {
  readonly shadow: string;
  readonly baseline: string | null;
  readonly compared: number;
  readonly differing: number;
  readonly diffRate: number;
  readonly diffRateCi: readonly [number, number];
  readonly baselined: number;
  readonly dropped: number;
  readonly noiseMasked: number;
  readonly kinds: Record<DifferenceKind, number>;
  readonly latency: {
    readonly primary: LatencySummary;
    readonly shadow: LatencySummary;
    /** Raw histogram (bucket upper bounds in ms, the last bucket unbounded), for merging. */
    readonly boundsMs: readonly number[];
    readonly primaryBuckets: readonly number[];
    readonly shadowBuckets: readonly number[];
    readonly primarySumMs: number;
    readonly shadowSumMs: number;
  };
  /** Most differing first, then most noisy. */
  readonly paths: readonly PathSummary[];
  /** Paths left out: past the tracking limit, or past `top`. */
  readonly pathsOmitted: number;
}

export interface RouteSummary {
  readonly route: string;
  readonly shadows: readonly ShadowSummary[];
}

export interface DiffSummary {
  readonly time: string;
  /** When counting began (the earliest, after a merge). */
  readonly since: string;
  readonly routes: readonly RouteSummary[];
}

const ci = (k: number, n: number): [number, number] => {
  const [low, high] = wilson(k, n);
  return [round(low), round(high)];
};

function latencySummary(buckets: readonly number[], sumMs: number): LatencySummary {
  const count = buckets.reduce((a, b) => a + b, 0);
  return {
    count,
    meanMs: count ? round(sumMs / count, 2) : null,
    p50Ms: quantileMs(buckets, 0.5),
    p95Ms: quantileMs(buckets, 0.95),
    p99Ms: quantileMs(buckets, 0.99),
  };
}

function rank(a: PathSummary, b: PathSummary): number {
  return b.differing - a.differing || b.ci[0] - a.ci[0] || b.noise - a.noise || a.path.localeCompare(b.path);
}

/** The JSON view of one target's counts; `top` keeps that many paths (all when undefined). */
export function describeCounts(c: ShadowCounts, top?: number): ShadowSummary {
  const paths = c.paths
    .map((p): PathSummary => ({
      kind: p.kind,
      path: p.path,
      differing: p.differing,
      rate: c.compared ? round(p.differing / c.compared) : 0,
      ci: ci(p.differing, c.compared),
      noise: p.noise,
      noiseRate: c.baselined ? round(p.noise / c.baselined) : 0,
      noiseCi: ci(p.noise, c.baselined),
      masked: p.masked,
      verdict: verdict(p, c.compared, c.baselined),
    }))
    .sort(rank);
  const shown = top === undefined ? paths : paths.slice(0, top);
  return {
    shadow: c.shadow,
    baseline: c.baseline ?? null,
    compared: c.compared,
    differing: c.differing,
    diffRate: c.compared ? round(c.differing / c.compared) : 0,
    diffRateCi: ci(c.differing, c.compared),
    baselined: c.baselined,
    dropped: c.dropped,
    noiseMasked: c.noiseMasked,
    kinds: { ...c.kinds },
    latency: {
      primary: latencySummary(c.latency.primary, c.latency.primarySumMs),
      shadow: latencySummary(c.latency.shadow, c.latency.shadowSumMs),
      boundsMs: LATENCY_BOUNDS_MS,
      primaryBuckets: [...c.latency.primary],
      shadowBuckets: [...c.latency.shadow],
      primarySumMs: round(c.latency.primarySumMs, 3),
      shadowSumMs: round(c.latency.shadowSumMs, 3),
    },
    paths: shown,
    pathsOmitted: c.pathsOmitted + (paths.length - shown.length),
  };
}

/** Groups counts by route (in first-seen order) into the endpoint's JSON. */
export function describeAll(all: Iterable<ShadowCounts>, since: Date, top?: number): DiffSummary {
  const routes = new Map<string, ShadowSummary[]>();
  for (const c of all) {
    let list = routes.get(c.route);
    if (!list) routes.set(c.route, (list = []));
    list.push(describeCounts(c, top));
  }
  return {
    time: new Date().toISOString(),
    since: since.toISOString(),
    routes: [...routes].map(([route, shadows]) => ({ route, shadows })),
  };
}

/** The additive counts inside a summary (as served, or as merged). */
export function countsOf(route: string, s: ShadowSummary): ShadowCounts {
  const kinds = { status: 0, header: 0, body: 0, error: 0, call: 0 };
  for (const k of DIFFERENCE_KINDS) kinds[k] = Number(s.kinds?.[k] ?? 0);
  return {
    route,
    shadow: s.shadow,
    ...(s.baseline ? { baseline: s.baseline } : {}),
    compared: s.compared,
    differing: s.differing,
    baselined: s.baselined,
    dropped: s.dropped,
    noiseMasked: s.noiseMasked,
    kinds,
    paths: s.paths.map((p) => ({ kind: p.kind, path: p.path, differing: p.differing, noise: p.noise, masked: p.masked })),
    pathsOmitted: s.pathsOmitted,
    latency: {
      primary: [...s.latency.primaryBuckets],
      shadow: [...s.latency.shadowBuckets],
      primarySumMs: s.latency.primarySumMs,
      shadowSumMs: s.latency.shadowSumMs,
    },
  };
}

/** Several replicas' summaries as one: counts summed, figures recomputed. */
export function mergeSummaries(summaries: readonly DiffSummary[], maxPaths = 10_000): DiffSummary {
  const tables = new Map<string, CountsTable>();
  let since: string | undefined;
  for (const summary of summaries) {
    if (since === undefined || summary.since < since) since = summary.since;
    for (const r of summary.routes) {
      for (const s of r.shadows) {
        const key = r.route + '\u0000' + s.shadow;
        let table = tables.get(key);
        if (!table) tables.set(key, (table = new CountsTable(r.route, s.shadow, maxPaths)));
        table.add(countsOf(r.route, s));
      }
    }
  }
  return describeAll(
    [...tables.values()].map((t) => t.counts),
    since ? new Date(since) : new Date(),
  );
}
