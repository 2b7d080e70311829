/**
 * An upstream's endpoints as one pool: the one place that picks an endpoint
 * for a request and keeps track of its health. Primary requests, upgrades
 * and shadow copies all pick here and report back, so they share one view.
 *
 * Balancing: least outstanding requests (per unit of weight), ties broken by
 * smooth weighted round-robin among the tied endpoints. Under light load
 * every endpoint is equally idle and the weights set the shares exactly;
 * under load a slow endpoint (more requests in flight) gets fewer new ones,
 * which round robin cannot do.
 *
 * Health: an endpoint is in rotation unless its active checks failed
 * (health-check.ts) or it was ejected for failing requests in a row. An
 * ejection lasts baseEjectionTime × the number of ejections so far (at most
 * 10×), and no more than maxEjectionPercent of the endpoints are ejected at
 * once. With nothing in rotation the pool picks among all endpoints (panic
 * mode): trying a maybe-dead endpoint beats answering 503 to everyone.
 */
import type { CompiledUpstream } from '../config/compile.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import { clientTls } from '../tls/upstream.js';
import { RetryBudget } from './budget.js';
import { Endpoint } from './endpoint.js';
import { HealthChecker } from './health-check.js';
import { RetryPolicy } from './retry.js';

/** How an attempt ended, for passive health. */
export type AttemptOutcome = 'ok' | 'failure';

/** An answer's status, for passive health: a 5xx is the endpoint's failure, anything else it answered well. */
export const outcomeOfStatus = (status: number): AttemptOutcome => (status >= 500 ? 'failure' : 'ok');

/** Ejections counted for the backoff are forgotten after this many base times in rotation. */
const EJECTION_MEMORY = 10;
const MAX_EJECTION_MULTIPLIER = 10;

export interface EndpointState {
  readonly name: string;
  readonly healthy: boolean;
  readonly checkedHealthy: boolean;
  readonly ejected: boolean;
  readonly ejections: number;
  readonly outstanding: number;
}

export class UpstreamPool {
  readonly name: string;
  readonly endpoints: readonly Endpoint[];
  readonly budget: RetryBudget;
  readonly retry: RetryPolicy;
  private readonly health: HealthChecker | undefined;
  private readonly single: Endpoint | undefined;
  private readonly lastEjectedAt = new Map<Endpoint, number>();
  private destroyed = false;

  constructor(
    readonly upstream: CompiledUpstream,
    private readonly metrics: GatewayMetrics | undefined,
  ) {
    const config = upstream.config;
    this.name = upstream.name;
    this.endpoints = config.endpoints.map((e) => new Endpoint(e, clientTls(new URL(e.url), config.tls), config.maxSockets));
    this.single = this.endpoints.length === 1 ? this.endpoints[0] : undefined;
    this.budget = new RetryBudget(config.retry.budgetPercent);
    this.retry = new RetryPolicy(config.retry);
    this.health = config.healthCheck ? new HealthChecker(config.healthCheck, this.endpoints, (e, passed) => this.checked(e, passed)) : undefined;
    this.publishAll();
  }

  start(): void {
    this.health?.start();
  }

  /**
   * The endpoint for the next try: the least busy one in rotation, other
   * than `avoid` (the one that just failed) when there is a choice.
   */
  pick(avoid?: Endpoint): Endpoint {
    if (this.single) return this.single;
    const now = Date.now();
    return this.choose(now, avoid, true) ?? this.choose(now, avoid, false) ?? this.choose(now, undefined, false)!;
  }

  /**
   * The least loaded endpoint (outstanding per unit of weight); among equally
   * loaded ones, smooth weighted round-robin. Only the tied endpoints take
   * part in the round, so one that was passed over for being busy does not
   * get a burst of catching up once it is idle again.
   */
  private choose(now: number, avoid: Endpoint | undefined, inRotation: boolean): Endpoint | undefined {
    let least = Infinity;
    for (const e of this.endpoints) {
      if (e === avoid || (inRotation && !e.available(now))) continue;
      const load = e.outstanding / e.weight;
      if (load < least) least = load;
    }
    if (least === Infinity) return undefined;
    let best: Endpoint | undefined;
    let total = 0;
    for (const e of this.endpoints) {
      if (e === avoid || (inRotation && !e.available(now)) || e.outstanding / e.weight !== least) continue;
      total += e.weight;
      e.credit += e.weight;
      if (!best || e.credit > best.credit) best = e;
    }
    best!.credit -= total;
    return best;
  }

  /** A try starts on this endpoint. */
  begin(endpoint: Endpoint): void {
    endpoint.outstanding++;
  }

  /** A try ended. */
  finish(endpoint: Endpoint): void {
    endpoint.outstanding--;
  }

  /** What a try said of the endpoint's health (passive checks). */
  record(endpoint: Endpoint, outcome: AttemptOutcome): void {
    if (outcome === 'ok') {
      if (endpoint.consecutiveFailures !== 0 || endpoint.ejections !== 0) this.succeeded(endpoint);
    } else this.failed(endpoint);
  }

  private succeeded(endpoint: Endpoint): void {
    endpoint.consecutiveFailures = 0;
    if (endpoint.ejections > 0) {
      const since = this.lastEjectedAt.get(endpoint) ?? 0;
      if (Date.now() - since > EJECTION_MEMORY * this.upstream.config.outlierDetection.baseEjectionMs) endpoint.ejections = 0;
    }
  }

  private failed(endpoint: Endpoint): void {
    const outlier = this.upstream.config.outlierDetection;
    if (++endpoint.consecutiveFailures < outlier.consecutiveFailures) return;
    const now = Date.now();
    if (endpoint.ejectedUntil > now || !this.mayEject(now)) return;
    endpoint.consecutiveFailures = 0;
    endpoint.ejections++;
    endpoint.ejectedUntil = now + outlier.baseEjectionMs * Math.min(endpoint.ejections, MAX_EJECTION_MULTIPLIER);
    this.lastEjectedAt.set(endpoint, now);
    this.metrics?.endpointEjections.inc({ upstream: this.name, endpoint: endpoint.name });
    this.publish(endpoint, now);
    // Back in rotation when the time is up (the gauge follows).
    setTimeout(() => this.destroyed || this.publish(endpoint, Date.now()), endpoint.ejectedUntil - now + 1).unref();
  }

  private mayEject(now: number): boolean {
    const percent = this.upstream.config.outlierDetection.maxEjectionPercent;
    if (percent === 0) return false;
    const allowed = Math.max(1, Math.floor((this.endpoints.length * percent) / 100));
    let ejected = 0;
    for (const e of this.endpoints) if (e.ejectedUntil > now) ejected++;
    return ejected < allowed;
  }

  /** An active check's result. */
  private checked(endpoint: Endpoint, passed: boolean): void {
    const config = this.upstream.config.healthCheck!;
    if (passed) {
      endpoint.checkFailures = 0;
      endpoint.checkPasses++;
      if (endpoint.checkPasses >= config.healthyThreshold) {
        if (!endpoint.checkedHealthy || endpoint.ejectedUntil > Date.now()) {
          // Back: it answers its checks again, so a passive ejection ends early too.
          endpoint.checkedHealthy = true;
          endpoint.ejectedUntil = 0;
          endpoint.consecutiveFailures = 0;
        }
      }
    } else {
      endpoint.checkPasses = 0;
      endpoint.checkFailures++;
      if (endpoint.checkFailures >= config.unhealthyThreshold) endpoint.checkedHealthy = false;
    }
    this.publish(endpoint, Date.now());
  }

  /** Sets the health gauge of every endpoint (again, after another pool of the same name went). */
  publishAll(): void {
    const now = Date.now();
    for (const e of this.endpoints) this.publish(e, now);
  }

  private publish(endpoint: Endpoint, now: number): void {
    this.metrics?.endpointHealthy.set({ upstream: this.name, endpoint: endpoint.name }, endpoint.available(now) ? 1 : 0);
  }

  /** Whether an endpoint is in rotation now (status, tests). */
  states(): EndpointState[] {
    const now = Date.now();
    return this.endpoints.map((e) => ({
      name: e.name,
      healthy: e.available(now),
      checkedHealthy: e.checkedHealthy,
      ejected: e.ejectedUntil > now,
      ejections: e.ejections,
      outstanding: e.outstanding,
    }));
  }

  destroy(): void {
    this.destroyed = true;
    this.health?.stop();
    for (const e of this.endpoints) {
      e.destroy();
      this.metrics?.endpointHealthy.remove({ upstream: this.name, endpoint: e.name });
    }
  }
}
