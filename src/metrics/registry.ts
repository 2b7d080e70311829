/**
 * The gateway's Prometheus metrics. Labels carry route and upstream names
 * from the config, never anything a client chooses, so series stay bounded.
 * Children are bound once per route and upstream (see RequestStats) so the
 * hot path does no label hashing.
 */
import client, { type Counter, type Gauge, Registry } from 'prom-client';
import { FastCounter, FastHistogram, type CounterChild, type HistogramChild } from './fast.js';
import { METRIC } from './names.js';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';

/** prom-client's JSON form of one metric: what workers send and gates read. */
export type MetricJson = MetricObjectWithValues<MetricValue<string>>;

/**
 * Neighbouring bounds at most a third apart from 0.5 ms to 60 s, so
 * quantiles estimated from them (dashboards, release gates) are close.
 */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0065, 0.008, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
  0.065, 0.08, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6.5, 8, 10, 15, 20, 30,
  60,
];

/** pool_exhausted: no pooled connection came free in time; the gateway's own limit, not the upstream's fault. */
export type UpstreamErrorReason = 'connect' | 'timeout' | 'reset' | 'pool_exhausted';
export type EgressOutcome = 'forwarded' | 'replayed' | 'simulated' | 'passthrough' | 'refused' | 'error';
export type ShadowOutcome = 'completed' | 'error' | 'timeout' | 'dropped' | 'skipped';
/**
 * Why the gateway closed a client connection: no complete head in time,
 * idle keep-alive, closed to make room at the cap, refused at the cap,
 * refused over the per-client cap.
 */
export type ConnectionCloseReason = 'header_timeout' | 'idle' | 'evicted' | 'cap' | 'per_client_cap';

export class GatewayMetrics {
  readonly registry: Registry;
  readonly requests: FastCounter;
  readonly requestDuration: FastHistogram;
  readonly upstreamErrors: FastCounter;
  readonly upstreamRetries: FastCounter;
  readonly grpcRequests: FastCounter;
  readonly endpointHealthy: Gauge<'upstream' | 'endpoint'>;
  readonly endpointEjections: Counter<'upstream' | 'endpoint'>;
  readonly accessLogDropped: Counter;
  readonly shadowRequests: FastCounter;
  readonly shadowDuration: FastHistogram;
  readonly shadowComparisons: FastCounter;
  readonly shadowDifferences: FastCounter;
  readonly shadowInflight: Gauge;
  readonly shadowAdmittedRatio: Gauge;
  readonly shadowLatencyRatio: Gauge<'route' | 'upstream'>;
  readonly compareDropped: Counter<'route'>;
  readonly shadowThreadRestarts: Counter<'role'>;
  readonly configReloads: Counter<'result'>;
  readonly configLastReloadSuccessful: Gauge;
  readonly configLastReloadTimestamp: Gauge;
  readonly configGeneration: Gauge;
  readonly rejectedRequests: Counter<'reason'>;
  readonly connections: Gauge<'listener'>;
  readonly connectionsClosed: Counter<'listener' | 'reason'>;
  readonly connectionsLimit: Gauge<'listener'>;
  readonly workerRestarts: Counter;
  readonly releaseStep: Gauge<'route' | 'candidate'>;
  readonly releaseWeight: Gauge<'route' | 'candidate'>;
  readonly releaseTransitions: Counter<'route' | 'to'>;
  readonly releaseGateValue: Gauge<'route' | 'candidate' | 'gate'>;
  readonly releaseGateLimit: Gauge<'route' | 'candidate' | 'gate'>;
  readonly tlsCertificateExpiry: Gauge<'name'>;
  readonly tlsReloads: Counter<'result'>;
  readonly tlsHandshakeErrors: Counter;
  readonly egressRequests: FastCounter;
  readonly egressDuration: FastHistogram;
  readonly egressRecordedBytes: Gauge;
  readonly egressRecordingsDropped: Counter;

  constructor(options: { collectDefaults?: boolean; registry?: Registry } = {}) {
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    if (options.collectDefaults !== false) client.collectDefaultMetrics({ register: registry });
    const registers = [registry];
    this.requests = new FastCounter(
      METRIC.requests,
      'Requests answered, by route, upstream and status code.',
      ['route', 'upstream', 'code'],
      registry,
    );
    this.requestDuration = new FastHistogram(
      METRIC.requestDuration,
      'Time from request to the end of the response, by route and upstream.',
      ['route', 'upstream'],
      LATENCY_BUCKETS,
      registry,
    );
    this.upstreamErrors = new FastCounter(
      METRIC.upstreamErrors,
      'Upstream failures on the user path: connect, timeout, reset, or pool_exhausted (no pooled connection came free in time: the gateway\'s limit, not the upstream\'s fault).',
      ['route', 'upstream', 'reason'],
      registry,
    );
    this.upstreamRetries = new FastCounter(
      METRIC.upstreamRetries,
      'Requests sent again, to another endpoint when there is one, after a connect failure, a reset or a retryable status.',
      ['route', 'upstream'],
      registry,
    );
    this.grpcRequests = new FastCounter(
      METRIC.grpcRequests,
      'gRPC calls answered, by route, upstream and grpc_code: the call\'s final grpc-status by name (OK, Canceled, DeadlineExceeded, Unavailable... as go-grpc-prometheus names them), from the upstream\'s trailers or the gateway\'s own answer. Canceled when the client left before a status.',
      ['route', 'upstream', 'grpc_code'],
      registry,
    );
    this.shadowRequests = new FastCounter(
      METRIC.shadowRequests,
      'Shadow copies by outcome: completed, error, timeout, dropped (over budget), skipped (body too large).',
      ['route', 'upstream', 'outcome'],
      registry,
    );
    this.shadowDuration = new FastHistogram(
      METRIC.shadowDuration,
      "Shadow copies' whole exchange time.",
      ['route', 'upstream'],
      LATENCY_BUCKETS,
      registry,
    );
    this.egressRequests = new FastCounter(
      METRIC.egressRequests,
      'Calls through the egress by dependency, side (live, dark) and outcome: forwarded, replayed, simulated, passthrough, refused, error.',
      ['dependency', 'side', 'outcome'],
      registry,
    );
    this.egressDuration = new FastHistogram(
      METRIC.egressDuration,
      'Time from an egress call to the end of its answer, by dependency and side.',
      ['dependency', 'side'],
      LATENCY_BUCKETS,
      registry,
    );
    this.egressRecordedBytes = new client.Gauge({
      name: METRIC.egressRecordedBytes,
      help: 'Bytes of egress calls held for pairing live and dark calls (bounded by limits.recordBytes).',
      registers,
    });
    this.egressRecordingsDropped = new client.Counter({
      name: METRIC.egressRecordingsDropped,
      help: 'Recorded egress calls let go before pairing: over limits.recordBytes or older than timeouts.record.',
      registers,
    });
    this.shadowComparisons = new FastCounter(
      METRIC.shadowComparisons,
      'Compared primary/shadow pairs by result: match or diff.',
      ['route', 'upstream', 'result'],
      registry,
    );
    this.shadowDifferences = new FastCounter(
      METRIC.shadowDifferences,
      'Compared pairs with at least one real (non-noise) difference of each kind: status, header, body, error.',
      ['route', 'upstream', 'kind'],
      registry,
    );
    const metrics = this;
    this.shadowInflight = new client.Gauge({
      name: METRIC.shadowInflight,
      help: 'Shadow copies in flight.',
      registers,
      // Read at scrape time from the shadow path's own count.
      collect() {
        this.set(metrics.shadowInflightSource());
      },
    });
    this.shadowAdmittedRatio = new client.Gauge({
      name: METRIC.shadowAdmittedRatio,
      help: "Share of chosen shadow copies sent under the serving thread's load: 1 when none are shed (limits.shadowShedAbove); with workers, the lowest of them.",
      registers,
      // Min, not sum: a process that serves nothing (the primary of --workers) holds 1.
      aggregator: 'min',
      collect() {
        this.set(metrics.shadowAdmittedSource());
      },
    });
    this.shadowLatencyRatio = new client.Gauge({
      name: METRIC.shadowLatencyRatio,
      help: "The slowest endpoint's median shadow/primary latency ratio, per route and shadow target (endpoints are in /diffs/summary, not in labels).",
      labelNames: ['route', 'upstream'],
      registers,
    });
    this.endpointHealthy = new client.Gauge({
      name: METRIC.endpointHealthy,
      help: 'Whether an endpoint is in rotation (1): passing its health checks and not ejected. Endpoints by config name or position.',
      labelNames: ['upstream', 'endpoint'],
      registers,
      aggregator: 'min',
    });
    this.endpointEjections = new client.Counter({
      name: METRIC.endpointEjections,
      help: 'Endpoints taken out of rotation after failing requests in a row (outlier detection).',
      labelNames: ['upstream', 'endpoint'],
      registers,
    });
    this.accessLogDropped = new client.Counter({
      name: METRIC.accessLogDropped,
      help: 'Access log lines not written: the disk was full or the writer fell too far behind.',
      registers,
    });
    this.compareDropped = new client.Counter({
      name: METRIC.compareDropped,
      help: 'Mirrored pairs not compared because comparison fell behind: its queue was full, or their answers did not fit the in-flight byte budget.',
      labelNames: ['route'],
      registers,
    });
    this.shadowThreadRestarts = new client.Counter({
      name: METRIC.shadowThreadRestarts,
      help: 'Shadow threads that stopped (a failure, a heap bound) and were replaced, by role (shadow: threads that copy and compare; their copies in flight failed, their pairs were not compared).',
      labelNames: ['role'],
      registers,
    });
    this.configReloads = new client.Counter({
      name: METRIC.configReloads,
      help: 'Config reload attempts by result.',
      labelNames: ['result'],
      registers,
    });
    this.configLastReloadSuccessful = new client.Gauge({
      name: METRIC.configLastReloadSuccessful,
      help: '1 when the last reload attempt succeeded.',
      registers,
    });
    this.configLastReloadTimestamp = new client.Gauge({
      name: METRIC.configLastReloadTimestamp,
      help: 'Unix time of the last successful config load.',
      registers,
    });
    this.configGeneration = new client.Gauge({
      name: METRIC.configGeneration,
      help: 'Generation of the running config; rises by one per successful reload.',
      registers,
    });
    this.rejectedRequests = new client.Counter({
      name: METRIC.rejectedRequests,
      help: 'Requests refused before routing, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.connections = new client.Gauge({
      name: METRIC.connections,
      help: 'Client connections open, by listener (gateway, admin, redirect).',
      labelNames: ['listener'],
      registers,
    });
    this.connectionsClosed = new client.Counter({
      name: METRIC.connectionsClosed,
      help:
        'Client connections the gateway closed or refused, by listener and reason: header_timeout (no complete request head in time, from accept), ' +
        'idle (keep-alive), evicted (resting connection closed to make room at the cap), cap (refused: every connection busy), per_client_cap.',
      labelNames: ['listener', 'reason'],
      registers,
    });
    this.connectionsLimit = new client.Gauge({
      name: METRIC.connectionsLimit,
      help: 'The connection cap in effect, by listener (limits.maxConnections, or the one derived from the descriptor limit).',
      labelNames: ['listener'],
      registers,
    });
    this.workerRestarts = new client.Counter({
      name: METRIC.workerRestarts,
      help: 'Worker processes that died and were restarted (serve --workers N).',
      registers,
    });
    this.releaseStep = new client.Gauge({
      name: METRIC.releaseStep,
      help: 'Current release step, 1-based; 0 after a rollback, the number of steps once promoted.',
      labelNames: ['route', 'candidate'],
      registers,
    });
    this.releaseWeight = new client.Gauge({
      name: METRIC.releaseWeight,
      help: "The release candidate's share of user traffic, percent.",
      labelNames: ['route', 'candidate'],
      registers,
    });
    this.releaseTransitions = new client.Counter({
      name: METRIC.releaseTransitions,
      help: 'Release state changes, by what they changed to (a step, promoted, rolled-back, paused).',
      labelNames: ['route', 'to'],
      registers,
    });
    this.releaseGateValue = new client.Gauge({
      name: METRIC.releaseGateValue,
      help: "The current step's figure for each release gate.",
      labelNames: ['route', 'candidate', 'gate'],
      registers,
    });
    this.releaseGateLimit = new client.Gauge({
      name: METRIC.releaseGateLimit,
      help: 'The limit of each release gate.',
      labelNames: ['route', 'candidate', 'gate'],
      registers,
    });
    this.tlsCertificateExpiry = new client.Gauge({
      name: METRIC.tlsCertificateExpiry,
      help: "Unix time when the listener's certificate for each name expires (the earliest, when several share a name).",
      labelNames: ['name'],
      registers,
      aggregator: 'min',
    });
    this.tlsReloads = new client.Counter({
      name: METRIC.tlsReloads,
      help: 'Certificate reloads after their files changed, by result; a failure keeps the previous certificates.',
      labelNames: ['result'],
      registers,
    });
    this.tlsHandshakeErrors = new client.Counter({
      name: METRIC.tlsHandshakeErrors,
      help: 'Client connections that failed the TLS handshake (old versions, no shared cipher, resets).',
      registers,
    });
    this.configReloads.inc({ result: 'success' }, 0);
    this.configReloads.inc({ result: 'failure' }, 0);
    // Born at zero so increase() sees the first failure (a series born at 1 shows none).
    this.tlsReloads.inc({ result: 'success' }, 0);
    this.tlsReloads.inc({ result: 'failure' }, 0);
  }

  /** Where gatewayctl_shadow_inflight is read from (the shadow service's count). */
  shadowInflightSource: () => number = () => 0;
  /** Where gatewayctl_shadow_admitted_ratio is read from (the shadow path's load shedding). */
  shadowAdmittedSource: () => number = () => 1;

  /**
   * Forgets the series of routes and upstreams a reload removed, so they do
   * not linger until restart. Series of names still configured stay (their
   * counters keep counting if the name comes back into use).
   */
  async forgetRemoved(routes: ReadonlySet<string>, upstreams: ReadonlySet<string>): Promise<void> {
    const keep = (labels: Readonly<Record<string, string | number | undefined>>) => {
      const route = labels['route'];
      const upstream = labels['upstream'];
      return (
        (route === undefined || route === 'unmatched' || routes.has(String(route))) &&
        (upstream === undefined || upstream === 'none' || upstreams.has(String(upstream)))
      );
    };
    const fast = [this.requests, this.requestDuration, this.upstreamErrors, this.upstreamRetries, this.grpcRequests, this.shadowRequests, this.shadowDuration, this.shadowComparisons, this.shadowDifferences];
    for (const metric of fast) metric.retain(keep);
    for (const metric of [this.compareDropped, this.endpointHealthy, this.endpointEjections] as const) {
      for (const { labels } of (await metric.get()).values) if (!keep(labels)) metric.remove(labels as never);
    }
  }

  /** Per-route, per-upstream children for the request path. */
  requestStats(route: string, upstream: string): RequestStats {
    return new RequestStats(this, route, upstream);
  }

  /** Per-route, per-shadow-target children for the shadow path. */
  shadowStats(route: string, upstream: string): ShadowStats {
    return new ShadowStats(this, route, upstream);
  }
}

/** The children one (route, shadow target) pair needs, bound once. */
export class ShadowStats {
  private readonly outcomes: Partial<Record<ShadowOutcome, CounterChild>> = {};
  private readonly duration: HistogramChild;

  constructor(
    private readonly metrics: GatewayMetrics,
    readonly route: string,
    readonly upstream: string,
  ) {
    this.duration = metrics.shadowDuration.labels(route, upstream);
  }

  count(outcome: ShadowOutcome, seconds?: number): void {
    (this.outcomes[outcome] ??= this.metrics.shadowRequests.labels(this.route, this.upstream, outcome)).inc();
    if (seconds !== undefined) this.duration.observe(seconds);
  }
}

/** The children one (route, upstream) pair needs, bound once. */
export class RequestStats {
  private readonly codes = new Map<number, CounterChild>();
  readonly duration: HistogramChild;
  private readonly errors: Record<UpstreamErrorReason, CounterChild>;
  readonly retries: CounterChild;

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
      pool_exhausted: metrics.upstreamErrors.labels(route, upstream, 'pool_exhausted'),
    };
    this.retries = metrics.upstreamRetries.labels(route, upstream);
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
