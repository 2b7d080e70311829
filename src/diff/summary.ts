/**
 * The JSON of GET /diffs/summary, made from additive counts, and the merge
 * of several replicas' summaries: raw counts are summed, then rates,
 * intervals and verdicts are computed again from the sums.
 */
import { CountsTable } from './counts.js';
import { DEFAULT_LEARNED_NOISE } from './noise.js';
import {
  compareLatency,
  LATENCY_BOUNDS_MS,
  quantileInterval,
  quantileMs,
  round,
  verdict,
  type LatencyComparison,
  type LogHistogram,
  type Verdict,
} from './stats.js';
import { wilson } from '../stats/rates.js';
import {
  DIFFERENCE_KINDS,
  type CauseCounts,
  type DifferenceKind,
  type EndpointCounts,
  type Evidence,
  type PathCounts,
  type ShadowCounts,
} from './types.js';

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
  /** Per-endpoint rows: the endpoint template. */
  readonly endpoint?: string;
  /** What the verdict was judged with. */
  readonly evidence?: Evidence;
  /** Pairs where the shadow differed here at all, noise or not. */
  readonly raw?: number;
  /** Pairs where a number moved farther than its noise ever did. */
  readonly beyond?: number;
  /** Pairs where it came with a real status change. */
  readonly withStatus?: number;
  /** Requests without a baseline whose repeat showed this path changing on the primary alone. */
  readonly repeatNoise?: number;
  /** Noise judged with a learned tolerance or as a learned set (learned from the noise, not configured). */
  readonly learned?: { readonly tolerance?: number; readonly unordered?: true; readonly tolerated?: number; readonly reordered?: number };
  /** A request id where it really differed. */
  readonly example?: string;
}

/** Latency of one endpoint: paired shadow/primary ratios and p95s, with intervals. */
export interface EndpointLatencySummary extends LatencyComparison {
  readonly maxRatio: number;
  readonly primaryP50Ms: number | null;
  readonly shadowP50Ms: number | null;
  readonly primaryP95Ms: number | null;
  readonly shadowP95Ms: number | null;
  /** `regression`: confidently slower than maxRatio; `ok`; `uncertain`: too few pairs. */
  readonly verdict: 'regression' | 'ok' | 'uncertain';
  /** Raw sparse log-scale histograms, for merging replicas. */
  readonly histograms: { readonly ratio: LogHistogram; readonly baselineRatio: LogHistogram; readonly primary: LogHistogram; readonly shadow: LogHistogram };
}

export interface EndpointSummary {
  readonly endpoint: string;
  readonly compared: number;
  /** Pairs with real (non-noise) differences, and their rate. */
  readonly differing: number;
  readonly diffRate: number;
  readonly diffRateCi: readonly [number, number];
  /** Pairs whose only differences were noise, and their rate. */
  readonly noiseOnly: number;
  readonly noiseRate: number;
  readonly baselined: number;
  readonly repeated: number;
  readonly evidence: Evidence;
  readonly noiseMasked: number;
  readonly kinds: Record<DifferenceKind, number>;
  readonly paths: readonly PathSummary[];
  readonly pathsOmitted: number;
  readonly causes: readonly CauseCounts[];
  readonly latency: EndpointLatencySummary;
  readonly verdict: 'regression' | 'unverified' | 'safe';
}

/** One thing wrong, with what it explains: what a person acts on. */
export interface Finding {
  readonly endpoint: string;
  readonly kind: DifferenceKind;
  /** "status 200 → 500", "body /price", "latency 2.1× primary". */
  readonly title: string;
  /** The difference path (template) for path findings. */
  readonly path?: string;
  /** Requests affected, and their share of the endpoint's compared pairs. */
  readonly requests: number;
  readonly rate: number;
  readonly ci: readonly [number, number];
  readonly verdict: 'regression' | 'unverified' | 'uncertain';
  readonly evidence: Evidence;
  /** Differences that came with it (same requests, same cause). */
  readonly with?: readonly string[];
  readonly example?: string;
  readonly detail?: string;
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
  /** Pairs whose only differences were noise (the headline diffRate never counts them). */
  readonly noiseOnly?: number;
  readonly noiseRate?: number;
  /** `regression`: a finding is a regression; `unverified`: differences with no noise evidence; `safe`; `uncertain`: too few pairs. */
  readonly verdict?: 'regression' | 'unverified' | 'safe' | 'uncertain';
  /** Findings first, most affected requests first; noise is left out. */
  readonly findings?: readonly Finding[];
  /** The noise, collapsed: how many paths and differences, the top few. */
  readonly noise?: { readonly paths: number; readonly masked: number; readonly top: readonly { endpoint: string; kind: DifferenceKind; path: string; masked: number }[] };
  /** Per endpoint template, most differing first. */
  readonly endpoints?: readonly EndpointSummary[];
  /** The slowest endpoint's median shadow/primary ratio. */
  readonly worstLatencyRatio?: number | null;
  /** Settings that would silence the noise seen so far (from the learned noise; never a path that regressed). */
  readonly suggestions?: Suggestions;
}

export interface Suggestions {
  readonly ignorePaths: readonly string[];
  readonly ignoreHeaders: readonly string[];
  readonly tolerance: Readonly<Record<string, number>>;
  readonly unordered: readonly string[];
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
  const { low, high } = wilson(k, n);
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

const evidenceOf = (baselined: number, repeated: number): Evidence => (baselined > 0 ? 'baseline' : repeated > 0 ? 'repeat' : 'none');

function describePath(p: PathCounts, compared: number, baselined: number, repeated: number, endpoint?: string): PathSummary {
  const learned =
    p.tolerated || p.reordered
      ? {
          ...(p.tolerated && p.maxRelative !== undefined ? { tolerance: round(p.maxRelative * DEFAULT_LEARNED_NOISE.sizeSlack, 6) } : {}),
          ...(p.reordered ? { unordered: true as const } : {}),
          ...(p.tolerated ? { tolerated: p.tolerated } : {}),
          ...(p.reordered ? { reordered: p.reordered } : {}),
        }
      : undefined;
  return {
    kind: p.kind,
    path: p.path,
    differing: p.differing,
    rate: compared ? round(p.differing / compared) : 0,
    ci: ci(p.differing, compared),
    noise: p.noise,
    noiseRate: baselined ? round(p.noise / baselined) : 0,
    noiseCi: ci(p.noise, baselined),
    masked: p.masked,
    verdict: verdict(p, compared, baselined, repeated),
    ...(endpoint !== undefined ? { endpoint, evidence: evidenceOf(baselined, repeated) } : {}),
    ...(p.raw ? { raw: p.raw } : {}),
    ...(p.beyond ? { beyond: p.beyond } : {}),
    ...(p.withStatus ? { withStatus: p.withStatus } : {}),
    ...(p.repeatNoise ? { repeatNoise: p.repeatNoise } : {}),
    ...(learned ? { learned } : {}),
    ...(p.example !== undefined ? { example: p.example } : {}),
  };
}

function describeLatency(e: EndpointCounts): EndpointLatencySummary {
  const l = e.latency;
  const comparison = compareLatency(l, l.maxRatio);
  const q = (h: LogHistogram, at: number) => {
    const v = quantileInterval(h, at);
    return v ? round(v.value, 2) : null;
  };
  return {
    ...comparison,
    maxRatio: l.maxRatio,
    primaryP50Ms: q(l.primary, 0.5),
    shadowP50Ms: q(l.shadow, 0.5),
    primaryP95Ms: q(l.primary, 0.95),
    shadowP95Ms: q(l.shadow, 0.95),
    verdict: comparison.slower ? 'regression' : comparison.pairs >= 30 ? 'ok' : 'uncertain',
    histograms: { ratio: { ...l.ratio }, baselineRatio: { ...l.baselineRatio }, primary: { ...l.primary }, shadow: { ...l.shadow } },
  };
}

export function describeEndpoint(e: EndpointCounts): EndpointSummary {
  const repeated = e.repeated ?? 0;
  const paths = e.paths.map((p) => describePath(p, e.compared, e.baselined, repeated, e.endpoint)).sort(rank);
  const latency = describeLatency(e);
  const real = paths.some((p) => p.verdict === 'regression') || latency.verdict === 'regression';
  return {
    endpoint: e.endpoint,
    compared: e.compared,
    differing: e.differing,
    diffRate: e.compared ? round(e.differing / e.compared) : 0,
    diffRateCi: ci(e.differing, e.compared),
    noiseOnly: e.noiseOnly ?? 0,
    noiseRate: e.compared ? round((e.noiseOnly ?? 0) / e.compared) : 0,
    baselined: e.baselined,
    repeated,
    evidence: evidenceOf(e.baselined, repeated),
    noiseMasked: e.noiseMasked,
    kinds: { ...e.kinds },
    paths,
    pathsOmitted: e.pathsOmitted,
    causes: e.causes.map((c) => ({ ...c, with: [...c.with] })).sort((a, b) => b.requests - a.requests),
    latency,
    verdict: real ? 'regression' : paths.some((p) => p.verdict === 'unverified' || p.verdict === 'uncertain') ? 'unverified' : 'safe',
  };
}

const FOLDED_SHARE = 0.9;
const pathTitle = (p: { kind: DifferenceKind; path: string }) =>
  p.kind === 'body' ? `body ${p.path === '' ? '(whole)' : p.path}` : p.kind === 'header' || p.kind === 'call' ? `${p.kind} ${p.path}` : p.kind;

/** Findings of one endpoint: causes (status changes with what came with them), other real paths, latency. */
function findingsOf(e: EndpointSummary): Finding[] {
  const out: Finding[] = [];
  const statusPath = e.paths.find((p) => p.kind === 'status' || p.kind === 'error');
  for (const c of e.causes) {
    const judged = e.paths.find((p) => (c.cause.startsWith('status') ? p.kind === 'status' : p.kind === 'error'));
    const v = judged?.verdict ?? 'uncertain';
    if (v === 'noise') continue;
    out.push({
      endpoint: e.endpoint,
      kind: c.cause.startsWith('status') ? 'status' : 'error',
      title: c.cause,
      requests: c.requests,
      rate: e.compared ? round(c.requests / e.compared) : 0,
      ci: ci(c.requests, e.compared),
      verdict: v === 'regression' ? 'regression' : v === 'unverified' ? 'unverified' : 'uncertain',
      evidence: e.evidence,
      with: c.with,
      example: c.example,
    });
  }
  for (const p of e.paths) {
    if (p.verdict === 'noise' || p.differing === 0 || p.kind === 'status' || p.kind === 'error') continue;
    // Explained by a status change on (nearly) the same requests: listed under it.
    if (statusPath && (p.withStatus ?? 0) >= FOLDED_SHARE * p.differing) continue;
    out.push({
      endpoint: e.endpoint,
      kind: p.kind,
      title: pathTitle(p),
      path: p.path,
      requests: p.differing,
      rate: p.rate,
      ci: p.ci,
      verdict: p.verdict === 'regression' ? 'regression' : p.verdict === 'unverified' ? 'unverified' : 'uncertain',
      evidence: e.evidence,
      ...(p.example !== undefined ? { example: p.example } : {}),
      ...(p.beyond ? { detail: `numbers moved beyond their noise on ${p.beyond} requests` } : {}),
    });
  }
  const l = e.latency;
  if (l.verdict === 'regression') {
    out.push({
      endpoint: e.endpoint,
      kind: 'latency',
      title: `latency ${l.ratio}× primary (p95 ${l.p95Ratio}×)`,
      path: 'latency',
      requests: l.pairs,
      rate: 1,
      ci: [1, 1],
      verdict: 'regression',
      evidence: l.baselineRatio !== null ? 'baseline' : 'none',
      detail:
        `median shadow/primary ratio ${l.ratio} (95% CI ${l.ratioCi?.[0]}–${l.ratioCi?.[1]}), ` +
        `p95 ratio ${l.p95Ratio} (95% CI ${l.p95RatioCi?.[0]}–${l.p95RatioCi?.[1]}), limit ${l.maxRatio}` +
        (l.baselineRatio !== null ? `, baseline/primary ${l.baselineRatio}` : ''),
    });
  }
  return out;
}

const VERDICT_ORDER = { regression: 0, unverified: 1, uncertain: 2 } as const;

/** Numbers noisier than this are not worth comparing: suggested for ignorePaths instead. */
const MAX_SUGGESTED_TOLERANCE = 0.25;

/** diff settings for the noise: learned tolerances, learned sets, the rest ignored. */
function suggest(endpoints: readonly EndpointSummary[]): Suggestions {
  const real = new Set<string>();
  for (const e of endpoints) for (const p of e.paths) if (p.verdict !== 'noise') real.add(p.kind + ' ' + p.path);
  const ignorePaths = new Set<string>();
  const ignoreHeaders = new Set<string>();
  const tolerance: Record<string, number> = {};
  const unordered = new Set<string>();
  for (const e of endpoints) {
    for (const p of e.paths) {
      if (p.verdict !== 'noise' || p.masked === 0 || real.has(p.kind + ' ' + p.path)) continue;
      if (p.kind === 'header') ignoreHeaders.add(p.path);
      if (p.kind !== 'body' || p.path === '') continue;
      if (p.learned?.unordered) unordered.add(p.path);
      else if (p.learned?.tolerance !== undefined && p.learned.tolerance <= MAX_SUGGESTED_TOLERANCE && p.path.startsWith('/')) {
        tolerance[p.path] = Math.max(tolerance[p.path] ?? 0, p.learned.tolerance);
      }
      else ignorePaths.add(p.path);
    }
  }
  return { ignorePaths: [...ignorePaths].sort(), ignoreHeaders: [...ignoreHeaders].sort(), tolerance, unordered: [...unordered].sort() };
}

/** The JSON view of one target's counts; `top` keeps that many paths (all when undefined). */
export function describeCounts(c: ShadowCounts, top?: number): ShadowSummary {
  const paths = c.paths.map((p) => describePath(p, c.compared, c.baselined, 0)).sort(rank);
  const shown = top === undefined ? paths : paths.slice(0, top);
  const endpoints = (c.endpoints ?? []).map(describeEndpoint).sort((a, b) => b.differing - a.differing || b.compared - a.compared);
  const findings = endpoints
    .flatMap(findingsOf)
    .sort((a, b) => VERDICT_ORDER[a.verdict] - VERDICT_ORDER[b.verdict] || b.requests - a.requests || a.title.localeCompare(b.title));
  const noisePaths = endpoints.flatMap((e) => e.paths.filter((p) => p.verdict === 'noise' && p.masked > 0));
  noisePaths.sort((a, b) => b.masked - a.masked);
  let worst: number | null = null;
  for (const e of endpoints) if (e.latency.ratio !== null && e.latency.pairs >= 30 && (worst === null || e.latency.ratio > worst)) worst = e.latency.ratio;
  const noiseOnly = c.noiseOnly ?? 0;
  const overall: ShadowSummary['verdict'] = findings.some((f) => f.verdict === 'regression')
    ? 'regression'
    : c.compared < 30
      ? 'uncertain'
      : findings.length > 0
        ? 'unverified'
        : 'safe';
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
    noiseOnly,
    noiseRate: c.compared ? round(noiseOnly / c.compared) : 0,
    verdict: overall,
    findings,
    noise: {
      paths: noisePaths.length,
      masked: c.noiseMasked,
      top: noisePaths.slice(0, 5).map((p) => ({ endpoint: p.endpoint ?? '', kind: p.kind, path: p.path, masked: p.masked })),
    },
    endpoints: top === undefined ? endpoints : endpoints.map((e) => ({ ...e, paths: e.paths.slice(0, top), pathsOmitted: e.pathsOmitted + Math.max(0, e.paths.length - top) })),
    worstLatencyRatio: worst,
    suggestions: suggest(endpoints),
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

const pathCountsOf = (p: PathSummary): PathCounts => ({
  kind: p.kind,
  path: p.path,
  differing: p.differing,
  noise: p.noise,
  masked: p.masked,
  ...(p.raw ? { raw: p.raw } : {}),
  ...(p.beyond ? { beyond: p.beyond } : {}),
  ...(p.withStatus ? { withStatus: p.withStatus } : {}),
  ...(p.repeatNoise ? { repeatNoise: p.repeatNoise } : {}),
  ...(p.learned?.tolerated ? { tolerated: p.learned.tolerated, ...(p.learned.tolerance !== undefined ? { maxRelative: p.learned.tolerance / DEFAULT_LEARNED_NOISE.sizeSlack } : {}) } : {}),
  ...(p.learned?.reordered ? { reordered: p.learned.reordered } : {}),
  ...(p.example !== undefined ? { example: p.example } : {}),
});

function endpointCountsOf(e: EndpointSummary): EndpointCounts {
  const kinds = { status: 0, header: 0, body: 0, error: 0, call: 0, latency: 0 };
  for (const k of DIFFERENCE_KINDS) kinds[k] = Number(e.kinds?.[k] ?? 0);
  const h = e.latency.histograms;
  return {
    endpoint: e.endpoint,
    compared: e.compared,
    differing: e.differing,
    baselined: e.baselined,
    repeated: e.repeated ?? 0,
    noiseMasked: e.noiseMasked,
    noiseOnly: e.noiseOnly ?? 0,
    kinds,
    paths: e.paths.map(pathCountsOf),
    pathsOmitted: e.pathsOmitted,
    causes: (e.causes ?? []).map((c) => ({ ...c, with: [...c.with] })),
    latency: { ratio: { ...h.ratio }, baselineRatio: { ...h.baselineRatio }, primary: { ...h.primary }, shadow: { ...h.shadow }, maxRatio: e.latency.maxRatio },
  };
}

/** The additive counts inside a summary (as served, or as merged). */
export function countsOf(route: string, s: ShadowSummary): ShadowCounts {
  const kinds = { status: 0, header: 0, body: 0, error: 0, call: 0, latency: 0 };
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
    paths: s.paths.map(pathCountsOf),
    pathsOmitted: s.pathsOmitted,
    latency: {
      primary: [...s.latency.primaryBuckets],
      shadow: [...s.latency.shadowBuckets],
      primarySumMs: s.latency.primarySumMs,
      shadowSumMs: s.latency.shadowSumMs,
    },
    endpoints: (s.endpoints ?? []).map(endpointCountsOf),
    noiseOnly: s.noiseOnly ?? 0,
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
