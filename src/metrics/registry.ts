/**
 * The gateway's Prometheus metrics. Labels carry route and upstream names
 * from the config, never anything a client chooses, so series stay bounded.
 * Children are bound once per route and upstream (see RequestStats) so the
 * hot path does no label hashing.
 */
import client, { type Counter, type Gauge, type Histogram, Registry } from 'prom-client';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type UpstreamErrorReason = 'connect' | 'timeout' | 'reset';
export type ShadowOutcome = 'completed' | 'error' | 'timeout' | 'dropped' | 'skipped';

export class GatewayMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'route' | 'upstream' | 'code'>;
  readonly requestDuration: Histogram<'route' | 'upstream'>;
  readonly upstreamErrors: Counter<'route' | 'upstream' | 'reason'>;
  readonly shadowRequests: Counter<'route' | 'upstream' | 'outcome'>;
  readonly shadowDuration: Histogram<'route' | 'upstream'>;
  readonly shadowComparisons: Counter<'route' | 'upstream' | 'result'>;
  readonly shadowDifferences: Counter<'route' | 'upstream' | 'kind'>;
  readonly shadowInflight: Gauge;
  readonly compareDropped: Counter<'route'>;
  readonly configReloads: Counter<'result'>;
  readonly configLastReloadSuccessful: Gauge;
  readonly configLastReloadTimestamp: Gauge;
  readonly configGeneration: Gauge;
  readonly rejectedRequests: Counter<'reason'>;
  readonly activeConnections: Gauge;
  readonly workerRestarts: Counter;

  constructor(options: { collectDefaults?: boolean; registry?: Registry } = {}) {
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    if (options.collectDefaults !== false) client.collectDefaultMetrics({ register: registry });
    const registers = [registry];
    this.requests = new client.Counter({
      name: 'gatewayctl_requests_total',
      help: 'Requests answered, by route, upstream and status code.',
      labelNames: ['route', 'upstream', 'code'],
      registers,
    });
    this.requestDuration = new client.Histogram({
      name: 'gatewayctl_request_duration_seconds',
      help: 'Time from request to the end of the response, by route and upstream.',
      labelNames: ['route', 'upstream'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.upstreamErrors = new client.Counter({
      name: 'gatewayctl_upstream_errors_total',
      help: 'Upstream failures on the user path: connect, timeout or reset.',
      labelNames: ['route', 'upstream', 'reason'],
      registers,
    });
    this.shadowRequests = new client.Counter({
      name: 'gatewayctl_shadow_requests_total',
      help: 'Shadow copies by outcome: completed, error, timeout, dropped (over budget), skipped (body too large).',
      labelNames: ['route', 'upstream', 'outcome'],
      registers,
    });
    this.shadowDuration = new client.Histogram({
      name: 'gatewayctl_shadow_duration_seconds',
      help: "Shadow copies' whole exchange time.",
      labelNames: ['route', 'upstream'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.shadowComparisons = new client.Counter({
      name: 'gatewayctl_shadow_comparisons_total',
      help: 'Compared primary/shadow pairs by result: match or diff.',
      labelNames: ['route', 'upstream', 'result'],
      registers,
    });
    this.shadowDifferences = new client.Counter({
      name: 'gatewayctl_shadow_differences_total',
      help: 'Differences found in compared pairs, by kind: status, header, body, error.',
      labelNames: ['route', 'upstream', 'kind'],
      registers,
    });
    this.shadowInflight = new client.Gauge({
      name: 'gatewayctl_shadow_inflight',
      help: 'Shadow copies in flight.',
      registers,
    });
    this.compareDropped = new client.Counter({
      name: 'gatewayctl_shadow_compare_dropped_total',
      help: 'Mirrored pairs not compared because comparison fell behind.',
      labelNames: ['route'],
      registers,
    });
    this.configReloads = new client.Counter({
      name: 'gatewayctl_config_reloads_total',
      help: 'Config reload attempts by result.',
      labelNames: ['result'],
      registers,
    });
    this.configLastReloadSuccessful = new client.Gauge({
      name: 'gatewayctl_config_last_reload_successful',
      help: '1 when the last reload attempt succeeded.',
      registers,
    });
    this.configLastReloadTimestamp = new client.Gauge({
      name: 'gatewayctl_config_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful config load.',
      registers,
    });
    this.configGeneration = new client.Gauge({
      name: 'gatewayctl_config_generation',
      help: 'Generation of the running config; rises by one per successful reload.',
      registers,
    });
    this.rejectedRequests = new client.Counter({
      name: 'gatewayctl_rejected_requests_total',
      help: 'Requests refused before routing, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.activeConnections = new client.Gauge({
      name: 'gatewayctl_active_connections',
      help: 'Client connections open on the gateway listener.',
      registers,
    });
    this.workerRestarts = new client.Counter({
      name: 'gatewayctl_worker_restarts_total',
      help: 'Worker processes that died and were restarted (serve --workers N).',
      registers,
    });
    this.configReloads.inc({ result: 'success' }, 0);
    this.configReloads.inc({ result: 'failure' }, 0);
  }

  /** Per-route, per-upstream children for the request path. */
  requestStats(route: string, upstream: string): RequestStats {
    return new RequestStats(this, route, upstream);
  }
}

/** The children one (route, upstream) pair needs, bound once. */
export class RequestStats {
  private readonly codes = new Map<number, Counter.Internal>();
  readonly duration: Histogram.Internal<'route' | 'upstream'>;
  private readonly errors: Record<UpstreamErrorReason, Counter.Internal>;

  constructor(
    private readonly metrics: GatewayMetrics,
    readonly route: string,
    readonly upstream: string,
  ) {
    this.duration = metrics.requestDuration.labels(route, upstream);
    this.errors = {
      connect: metrics.upstreamErrors.labels(route, upstream, 'connect'),
      timeout: metrics.upstreamErrors.labels(route, upstream, 'timeout'),
      reset: metrics.upstreamErrors.labels(route, upstream, 'reset'),
    };
  }

  observe(code: number, seconds: number): void {
    let child = this.codes.get(code);
    if (!child) {
      child = this.metrics.requests.labels(this.route, this.upstream, String(code));
      this.codes.set(code, child);
    }
    child.inc();
    this.duration.observe(seconds);
  }

  upstreamError(reason: UpstreamErrorReason): void {
    this.errors[reason].inc();
  }
}
