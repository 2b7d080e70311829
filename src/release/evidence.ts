/**
 * Evidence for release gates, read from the gateway's own request metrics:
 * per-upstream request and 5xx counts and latency histograms, and per-shadow
 * comparison counts, from samples (metrics/read.ts) of prom-client's JSON
 * (this process, or all workers aggregated), Prometheus text (several
 * replicas' /metrics, summed), or Prometheus query results, so every
 * controller judges alike.
 */
import { bucketsOf, METRIC } from '../metrics/names.js';
import type { Sample } from '../metrics/read.js';

export interface BackendEvidence {
  requests: number;
  /** 5xx answers the upstream is to blame for (the gateway's own pool_exhausted 503s left out). */
  errors: number;
  /** Non-cumulative counts per latency bucket; the last is +Inf. */
  latency: number[];
}

export interface ComparisonEvidence {
  match: number;
  diff: number;
}

export interface RouteEvidence {
  backends: Record<string, BackendEvidence>;
  comparisons: Record<string, ComparisonEvidence>;
}

export interface Evidence {
  /** Upper bounds of the latency buckets, seconds, ascending. */
  bounds: number[];
  routes: Record<string, RouteEvidence>;
}

/** 503s the gateway answers when its own connection pool is full: not the candidate's fault. */
const GATEWAY_OWN = 'pool_exhausted';
const LATENCY_BUCKET_SERIES = bucketsOf(METRIC.requestDuration);

/** Builds evidence from samples, summing across replicas and workers. */
export function evidenceFrom(samples: readonly Sample[]): Evidence {
  const routes: Record<string, RouteEvidence> = {};
  const route = (name: string) => (routes[name] ??= { backends: {}, comparisons: {} });
  const cumulative = new Map<string, Map<number, number>>();
  const boundSet = new Set<number>();
  const gatewayOwn = new Map<BackendEvidence, number>();

  for (const s of samples) {
    const r = s.labels['route'];
    const u = s.labels['upstream'];
    if (r === undefined || u === undefined) continue;
    if (s.name === METRIC.requests) {
      const b = backend(route(r), u);
      b.requests += s.value;
      if ((s.labels['code'] ?? '').startsWith('5')) b.errors += s.value;
    } else if (s.name === LATENCY_BUCKET_SERIES) {
      const le = s.labels['le'] === '+Inf' ? Infinity : Number(s.labels['le']);
      if (!Number.isFinite(le) && le !== Infinity) continue;
      if (le !== Infinity) boundSet.add(le);
      const key = `${r}\u0000${u}`;
      let byBound = cumulative.get(key);
      if (!byBound) cumulative.set(key, (byBound = new Map()));
      byBound.set(le, (byBound.get(le) ?? 0) + s.value);
    } else if (s.name === METRIC.upstreamErrors && s.labels['reason'] === GATEWAY_OWN) {
      const b = backend(route(r), u);
      gatewayOwn.set(b, (gatewayOwn.get(b) ?? 0) + s.value);
    } else if (s.name === METRIC.shadowComparisons) {
      const c = (route(r).comparisons[u] ??= { match: 0, diff: 0 });
      if (s.labels['result'] === 'diff') c.diff += s.value;
      else if (s.labels['result'] === 'match') c.match += s.value;
    }
  }

  for (const [b, own] of gatewayOwn) b.errors = Math.max(0, b.errors - own);
  const bounds = [...boundSet].sort((a, b) => a - b);
  for (const [key, byBound] of cumulative) {
    const [r, u] = key.split('\u0000') as [string, string];
    const counts: number[] = [];
    let previous = 0;
    for (const bound of [...bounds, Infinity]) {
      const c = byBound.get(bound) ?? previous;
      counts.push(Math.max(0, c - previous));
      previous = c;
    }
    backend(route(r), u).latency = counts;
  }
  return { bounds, routes };
}

function backend(route: RouteEvidence, upstream: string): BackendEvidence {
  return (route.backends[upstream] ??= { requests: 0, errors: 0, latency: [] });
}

/** What happened between two readings (counters only grow; a restart resets). */
export function evidenceSince(now: Evidence, base: Evidence | undefined): Evidence {
  if (!base) return now;
  const routes: Record<string, RouteEvidence> = {};
  for (const [name, r] of Object.entries(now.routes)) {
    const b = base.routes[name];
    const out: RouteEvidence = { backends: {}, comparisons: {} };
    for (const [u, e] of Object.entries(r.backends)) {
      const was = b?.backends[u];
      const reset = was !== undefined && was.requests > e.requests;
      out.backends[u] = {
        requests: reset || !was ? e.requests : e.requests - was.requests,
        errors: reset || !was ? e.errors : Math.max(0, e.errors - was.errors),
        latency: e.latency.map((c, i) => (reset || !was ? c : Math.max(0, c - (was.latency[i] ?? 0)))),
      };
    }
    for (const [u, c] of Object.entries(r.comparisons)) {
      const was = b?.comparisons[u];
      const reset = was !== undefined && was.match + was.diff > c.match + c.diff;
      out.comparisons[u] = reset || !was ? { ...c } : { match: c.match - was.match, diff: c.diff - was.diff };
    }
    routes[name] = out;
  }
  return { bounds: now.bounds, routes };
}
