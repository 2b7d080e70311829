/**
 * GET /status: the routes being served (backends and weights, releases
 * applied; shadow targets, baseline) with live rates. Rates come from the
 * Prometheus counters the request path already keeps (all workers
 * aggregated): a timer samples them every few seconds and a rate is the
 * difference over the last window. Nothing is added to the request path.
 *
 * The JSON carries the window's raw counts next to the rates, so several
 * replicas merge by summing (mergeStatus).
 */
import type { Snapshot } from '../config/compile.js';
import { bucketsOf, METRIC, sumOf } from '../metrics/names.js';
import { labelKey as key, samplesFromJson, sumBy } from '../metrics/read.js';
import type { MetricJson } from '../metrics/registry.js';
import { histogramQuantile } from '../stats/histogram.js';

type Counts = Map<string, number>;

interface Sample {
  readonly at: number;
  /** route, upstream, code */
  readonly requests: Counts;
  /** route, upstream: seconds */
  readonly durationSum: Counts;
  /** route, upstream, le: cumulative counts of the duration histogram */
  readonly durationBuckets: Counts;
  /** route, upstream, outcome */
  readonly shadow: Counts;
  /** route, upstream, result */
  readonly comparisons: Counts;
  /** upstream, endpoint: 1 in rotation, 0 out (min over workers) */
  readonly healthy: Counts;
}

export interface BackendStatus {
  readonly upstream: string;
  readonly weight: number;
  /** weight / sum of the route's weights. */
  readonly share: number;
  /** In the window: */
  readonly requests: number;
  readonly errors: number;
  readonly latencySumMs: number;
  readonly rps: number;
  /** 5xx share of requests in the window; null without requests. */
  readonly errorRate: number | null;
  readonly meanLatencyMs: number | null;
  /** From the duration histogram's buckets in the window (interpolated); null without requests. */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** The window's histogram, for merging replicas: upper bounds in ms (the last bucket unbounded) and counts per bucket. */
  readonly latency: LatencyBuckets;
}

export interface LatencyBuckets {
  readonly boundsMs: readonly number[];
  readonly counts: readonly number[];
}

export interface ShadowStatus {
  readonly upstream: string;
  readonly percent: number;
  readonly methods: readonly string[];
  /** Copies in the window by outcome: completed, error, timeout, dropped, skipped. */
  readonly outcomes: Record<string, number>;
  readonly compared: number;
  readonly differing: number;
  readonly rps: number;
  /** differing / compared in the window; null without comparisons. */
  readonly diffRate: number | null;
}

export interface RouteStatus {
  readonly name: string;
  readonly match: { prefix?: string; methods?: readonly string[]; host?: string; headers?: Readonly<Record<string, string>> };
  readonly sticky: string | null;
  readonly backends: readonly BackendStatus[];
  readonly shadows: readonly ShadowStatus[];
  readonly baseline: string | null;
  readonly diff: boolean;
}

/** One endpoint of an upstream: in rotation (health checks passed, not ejected) or not. */
export interface EndpointStatus {
  readonly endpoint: string;
  readonly url: string;
  readonly weight: number;
  /** In every worker's (and, merged, every replica's) rotation. */
  readonly healthy: boolean;
}

export interface UpstreamStatus {
  readonly name: string;
  readonly endpoints: readonly EndpointStatus[];
}

export interface GatewayStatus {
  readonly time: string;
  readonly generation: number;
  readonly hash: string;
  readonly windowSeconds: number;
  readonly routes: readonly RouteStatus[];
  readonly upstreams: readonly UpstreamStatus[];
  /** Egress dependencies (since start): live calls, dark calls by outcome, recordings held now. */
  readonly dependencies?: Readonly<Record<string, { live: number; dark: Record<string, number>; recordings: number }>>;
  /** Set by mergeStatus: how many replicas were merged. */
  readonly replicas?: number;
}

function delta(now: Counts, then: Counts, k: string): number {
  return Math.max(0, (now.get(k) ?? 0) - (then.get(k) ?? 0));
}

/** Sum of deltas over every key starting with `prefix`, optionally filtered by the last part. */
function sumDelta(now: Counts, then: Counts, prefix: string, last?: (value: string) => boolean): number {
  let total = 0;
  for (const k of now.keys()) {
    if (!k.startsWith(prefix)) continue;
    if (last && !last(k.slice(prefix.length))) continue;
    total += delta(now, then, k);
  }
  return total;
}

const ratio = (k: number, n: number): number | null => (n > 0 ? Math.round((k / n) * 10_000) / 10_000 : null);
const hundredths = (v: number) => Math.round(v * 100) / 100;
const perSecond = (n: number, seconds: number): number => (seconds > 0 ? hundredths(n / seconds) : 0);
const sum = <T>(items: readonly T[], pick: (item: T) => number) => items.reduce((a, x) => a + pick(x), 0);
const SHADOW_OUTCOMES = ['completed', 'error', 'timeout', 'dropped', 'skipped'];
/** The metrics a status sample reads. */
const READ: ReadonlySet<string> = new Set([METRIC.requests, METRIC.requestDuration, METRIC.shadowRequests, METRIC.shadowComparisons, METRIC.endpointHealthy]);

type BackendFigures = Pick<BackendStatus, 'requests' | 'errors' | 'latencySumMs' | 'rps' | 'errorRate' | 'meanLatencyMs' | 'p50Ms' | 'p99Ms' | 'latency'>;
type ShadowFigures = Pick<ShadowStatus, 'outcomes' | 'compared' | 'differing' | 'rps' | 'diffRate'>;

function quantile(q: number, latency: LatencyBuckets): number | null {
  const value = histogramQuantile(q, latency.boundsMs, latency.counts);
  return Number.isNaN(value) ? null : hundredths(value);
}

function backendFigures(requests: number, errors: number, latencySumMs: number, rps: number, latency: LatencyBuckets): BackendFigures {
  return {
    requests,
    errors,
    latencySumMs,
    rps,
    errorRate: ratio(errors, requests),
    meanLatencyMs: requests > 0 ? hundredths(latencySumMs / requests) : null,
    p50Ms: quantile(0.5, latency),
    p99Ms: quantile(0.99, latency),
    latency,
  };
}

/** The window's per-bucket counts of one (route, upstream) from cumulative `le` counts. */
function latencyIn(now: Counts, then: Counts, prefix: string): LatencyBuckets {
  const cumulative: [number, number][] = [];
  for (const k of now.keys()) {
    if (!k.startsWith(prefix)) continue;
    const le = k.slice(prefix.length);
    cumulative.push([le === '+Inf' ? Infinity : Number(le) * 1000, delta(now, then, k)]);
  }
  cumulative.sort((a, b) => a[0] - b[0]);
  const boundsMs = cumulative.filter(([bound]) => Number.isFinite(bound)).map(([bound]) => hundredths(bound));
  const counts = cumulative.map(([, count], i) => Math.max(0, count - (i > 0 ? cumulative[i - 1]![1] : 0)));
  return { boundsMs, counts };
}

/** Several replicas' histograms summed (same bounds: same build); others are left out. */
function sumLatency(all: readonly LatencyBuckets[]): LatencyBuckets {
  const first = all.find((l) => l.counts.length > 0);
  if (!first) return { boundsMs: [], counts: [] };
  const counts = first.counts.map(() => 0);
  for (const l of all) {
    if (l.counts.length !== counts.length) continue;
    l.counts.forEach((c, i) => (counts[i]! += c));
  }
  return { boundsMs: first.boundsMs, counts };
}

function shadowFigures(outcomes: Record<string, number>, compared: number, differing: number, rps: number): ShadowFigures {
  return { outcomes, compared, differing, rps, diffRate: ratio(differing, compared) };
}

export interface StatusViewOptions {
  /** Every process's metrics as prom-client JSON (workers aggregated). */
  readonly metrics: () => Promise<MetricJson[]>;
  /** The snapshot in service; undefined while starting. */
  readonly snapshot: () => Snapshot | undefined;
  /** Egress counts per dependency, when the egress runs. */
  readonly dependencies?: () => GatewayStatus['dependencies'];
  readonly sampleEveryMs?: number;
  readonly windowMs?: number;
}

export class StatusView {
  private readonly metrics: () => Promise<MetricJson[]>;
  private readonly snapshot: () => Snapshot | undefined;
  private readonly dependencies: (() => GatewayStatus['dependencies']) | undefined;
  private readonly windowMs: number;
  private readonly sampleEveryMs: number;
  private samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(options: StatusViewOptions) {
    this.metrics = options.metrics;
    this.snapshot = options.snapshot;
    this.dependencies = options.dependencies;
    this.windowMs = options.windowMs ?? 10_000;
    this.sampleEveryMs = options.sampleEveryMs ?? 2000;
  }

  /** Takes the first sample and starts the timer. */
  async start(): Promise<void> {
    this.samples.push(await this.sample());
    this.timer = setInterval(() => {
      void this.sample()
        .then((s) => this.keep(s))
        .catch(() => undefined);
    }, this.sampleEveryMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async sample(): Promise<Sample> {
    const all = samplesFromJson(await this.metrics(), READ);
    return {
      at: performance.now(),
      requests: sumBy(all, METRIC.requests, ['route', 'upstream', 'code']),
      durationSum: sumBy(all, sumOf(METRIC.requestDuration), ['route', 'upstream']),
      durationBuckets: sumBy(all, bucketsOf(METRIC.requestDuration), ['route', 'upstream', 'le']),
      shadow: sumBy(all, METRIC.shadowRequests, ['route', 'upstream', 'outcome']),
      comparisons: sumBy(all, METRIC.shadowComparisons, ['route', 'upstream', 'result']),
      healthy: sumBy(all, METRIC.endpointHealthy, ['upstream', 'endpoint']),
    };
  }

  private keep(sample: Sample): void {
    this.samples.push(sample);
    const horizon = sample.at - this.windowMs - this.sampleEveryMs;
    while (this.samples.length > 2 && this.samples[1]!.at <= horizon) this.samples.shift();
  }

  /** The status now, with rates over the last window (shorter just after start). */
  async describe(): Promise<GatewayStatus | undefined> {
    const snapshot = this.snapshot();
    if (!snapshot) return undefined;
    const now = await this.sample();
    const base = this.samples.find((s) => now.at - s.at <= this.windowMs) ?? this.samples.at(-1) ?? now;
    const seconds = (now.at - base.at) / 1000;
    const dependencies = this.dependencies?.();
    const routes = snapshot.routes.map((route): RouteStatus => {
      const config = route.config;
      const totalWeight = config.backends.reduce((a, b) => a + b.weight, 0);
      const backends = config.backends.map((b): BackendStatus => {
        const prefix = key(route.name, b.upstream, '');
        const requests = sumDelta(now.requests, base.requests, prefix);
        const errors = sumDelta(now.requests, base.requests, prefix, (code) => code.startsWith('5'));
        const latencySumMs = Math.round(delta(now.durationSum, base.durationSum, key(route.name, b.upstream)) * 1e6) / 1000;
        return {
          upstream: b.upstream,
          weight: b.weight,
          share: ratio(b.weight, totalWeight) ?? 0,
          ...backendFigures(requests, errors, latencySumMs, perSecond(requests, seconds), latencyIn(now.durationBuckets, base.durationBuckets, prefix)),
        };
      });
      const shadows = config.shadow.map((s): ShadowStatus => {
        const outcomes: Record<string, number> = {};
        for (const o of SHADOW_OUTCOMES) outcomes[o] = delta(now.shadow, base.shadow, key(route.name, s.upstream, o));
        const compared = sumDelta(now.comparisons, base.comparisons, key(route.name, s.upstream, ''));
        const differing = delta(now.comparisons, base.comparisons, key(route.name, s.upstream, 'diff'));
        const sent = outcomes['completed']! + outcomes['error']! + outcomes['timeout']!;
        return { upstream: s.upstream, percent: s.percent, methods: s.methods, ...shadowFigures(outcomes, compared, differing, perSecond(sent, seconds)) };
      });
      const m = config.match;
      return {
        name: route.name,
        match: {
          ...(m.prefix ? { prefix: m.prefix } : {}),
          ...(m.methods ? { methods: m.methods } : {}),
          ...(m.host ? { host: m.host } : {}),
          ...(m.headers ? { headers: m.headers } : {}),
        },
        sticky: config.sticky ? ('header' in config.sticky ? `header ${config.sticky.header}` : `cookie ${config.sticky.cookie}`) : null,
        backends,
        shadows,
        baseline: config.diff.baseline ?? null,
        diff: config.diff.enabled && config.shadow.length > 0,
      };
    });
    const upstreams = [...snapshot.upstreams.values()].map(
      (u): UpstreamStatus => ({
        name: u.name,
        endpoints: u.config.endpoints.map((e) => ({
          endpoint: e.name,
          url: e.url,
          weight: e.weight,
          healthy: now.healthy.get(key(u.name, e.name)) !== 0,
        })),
      }),
    );
    return {
      time: new Date().toISOString(),
      generation: snapshot.generation,
      hash: snapshot.hash,
      windowSeconds: Math.round(seconds * 10) / 10,
      routes,
      upstreams,
      ...(dependencies && Object.keys(dependencies).length > 0 ? { dependencies } : {}),
    };
  }
}

/**
 * Several replicas' status as one: the first replica's routes and weights,
 * window counts summed, rates recomputed. Replicas on other config
 * generations are merged by route and upstream name.
 */
export function mergeStatus(list: readonly GatewayStatus[]): GatewayStatus {
  if (list.length === 1) return list[0]!;
  const first = list[0]!;
  const seconds = Math.max(...list.map((s) => s.windowSeconds));
  const find = <T extends { upstream: string }>(items: readonly T[] | undefined, upstream: string) => items?.find((i) => i.upstream === upstream);
  const routes = first.routes.map((route): RouteStatus => {
    const others = list.map((s) => s.routes.find((r) => r.name === route.name));
    const backends = route.backends.map((b): BackendStatus => {
      const all = others.map((r) => find(r?.backends, b.upstream)).filter((x): x is BackendStatus => x !== undefined);
      const figures = backendFigures(
        sum(all, (x) => x.requests),
        sum(all, (x) => x.errors),
        sum(all, (x) => x.latencySumMs),
        hundredths(sum(all, (x) => x.rps)),
        sumLatency(all.map((x) => x.latency ?? { boundsMs: [], counts: [] })),
      );
      return { ...b, ...figures };
    });
    const shadows = route.shadows.map((s): ShadowStatus => {
      const all = others.map((r) => find(r?.shadows, s.upstream)).filter((x): x is ShadowStatus => x !== undefined);
      const outcomes: Record<string, number> = {};
      for (const o of SHADOW_OUTCOMES) outcomes[o] = sum(all, (x) => x.outcomes[o] ?? 0);
      const figures = shadowFigures(
        outcomes,
        sum(all, (x) => x.compared),
        sum(all, (x) => x.differing),
        hundredths(sum(all, (x) => x.rps)),
      );
      return { ...s, ...figures };
    });
    return { ...route, backends, shadows };
  });
  const upstreams = (first.upstreams ?? []).map(
    (u): UpstreamStatus => ({
      ...u,
      endpoints: u.endpoints.map((e) => ({
        ...e,
        healthy: list.every((s) => s.upstreams?.find((x) => x.name === u.name)?.endpoints.find((x) => x.endpoint === e.endpoint)?.healthy !== false),
      })),
    }),
  );
  const dependencies = mergeDependencies(list);
  return { ...first, windowSeconds: seconds, routes, upstreams, replicas: list.length, ...(dependencies ? { dependencies } : {}) };
}

/** Egress counts of several replicas, added up per dependency. */
function mergeDependencies(list: readonly GatewayStatus[]): GatewayStatus['dependencies'] {
  const out: Record<string, { live: number; dark: Record<string, number>; recordings: number }> = {};
  for (const status of list) {
    for (const [name, d] of Object.entries(status.dependencies ?? {})) {
      const into = (out[name] ??= { live: 0, dark: {}, recordings: 0 });
      into.live += d.live;
      into.recordings += d.recordings;
      for (const [outcome, n] of Object.entries(d.dark)) into.dark[outcome] = (into.dark[outcome] ?? 0) + n;
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
