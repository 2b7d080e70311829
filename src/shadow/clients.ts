/**
 * Connection pools for shadow copies, one undici Pool per endpoint origin,
 * separate from the primary's agents so a slow or dead shadow can never
 * hold a connection the user's path needs. The endpoint itself is picked by
 * the upstream's pool (src/upstream/), as for primary traffic, and each
 * copy's outcome feeds the same endpoint health.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { BodyCapture } from './capture.js';
import type { CompiledUpstream } from '../config/compile.js';
import { undiciConnector } from '../tls/upstream.js';
import { connectionKey, FREE_SOCKET_TIMEOUT_MS, type Endpoint } from '../upstream/endpoint.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { UpstreamPools } from '../upstream/pools.js';
import { ErrorCodes, GatewayError } from '../errors.js';

export interface CopyRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer | undefined;
  readonly timeoutMs: number;
}

export class ShadowTimeoutError extends GatewayError {
  constructor(ms: number) {
    super(ErrorCodes.SHADOW_TIMEOUT, `shadow copy timed out after ${ms}ms`);
    this.name = 'TimeoutError';
  }
}

/** How often the overall shadow deadline is checked (its resolution). */
const SWEEP_MS = 50;

export interface CopyAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Present when the answer was captured. */
  readonly capture: BodyCapture | undefined;
}

/** Collects one copy's answer; settles its promise exactly once. */
class CopyHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private readonly capture: BodyCapture | undefined;
  private settled = false;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly endpoint: Endpoint,
    private readonly inflight: Set<CopyHandler>,
    readonly deadline: number,
    private readonly timeoutMs: number,
    captureBytes: number | undefined,
    private readonly resolve: (answer: CopyAnswer) => void,
    private readonly reject: (err: Error) => void,
  ) {
    this.capture = captureBytes === undefined ? undefined : new BodyCapture(captureBytes);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(new ShadowTimeoutError(this.timeoutMs));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.capture?.push(chunk);
  }

  onResponseEnd(): void {
    if (this.settle(this.status < 500)) this.resolve({ status: this.status, headers: this.headers, capture: this.capture });
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    if (this.settle(false)) this.reject(error);
  }

  /** The overall deadline passed. */
  expire(): void {
    const error = new ShadowTimeoutError(this.timeoutMs);
    if (!this.settle(false)) return;
    this.controller?.abort(error);
    this.reject(error);
  }

  private settle(ok: boolean): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.inflight.delete(this);
    this.pool.finish(this.endpoint);
    this.pool.record(this.endpoint, ok ? 'ok' : 'failure');
    return true;
  }
}

/** Connections are shared by endpoints with the same origin, TLS and pool settings. */
const poolKey = (upstream: CompiledUpstream, endpoint: Endpoint) => connectionKey(endpoint, upstream.config);

export class ShadowClients {
  private readonly pools = new Map<string, Pool>();

  /** `upstreams`: the gateway's endpoint pools; a client of its own (egress) keeps its own. */
  constructor(private readonly upstreams: UpstreamPools = new UpstreamPools()) {}

  private connectionsFor(upstream: CompiledUpstream, endpoint: Endpoint): Pool {
    const key = poolKey(upstream, endpoint);
    let pool = this.pools.get(key);
    if (!pool) {
      const timeout = upstream.config.connectTimeoutMs;
      pool = new Pool(endpoint.origin, {
        connections: Math.max(16, Math.min(upstream.config.maxSockets, 1024)),
        pipelining: 1,
        keepAliveTimeout: FREE_SOCKET_TIMEOUT_MS,
        keepAliveMaxTimeout: FREE_SOCKET_TIMEOUT_MS,
        connect: endpoint.tls ? undiciConnector(endpoint.tls, timeout) : { timeout },
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /**
   * Sends one copy and reads its answer: captured up to `captureBytes`, or
   * counted and dropped when not comparing. The whole exchange is bounded by
   * `timeoutMs`: undici bounds the wait for the head and each body pause,
   * and one sweep over the copies in flight enforces the overall deadline,
   * so a copy costs no timer or AbortController of its own.
   */
  send(upstream: CompiledUpstream, copy: CopyRequest, captureBytes: number | undefined): Promise<CopyAnswer> {
    return new Promise((resolve, reject) => {
      const pool = this.upstreams.poolFor(upstream);
      const endpoint = pool.pick();
      pool.begin(endpoint);
      const handler = new CopyHandler(pool, endpoint, this.inflight, Date.now() + copy.timeoutMs, copy.timeoutMs, captureBytes, resolve, reject);
      this.inflight.add(handler);
      this.sweepSoon();
      try {
        this.connectionsFor(upstream, endpoint).dispatch(
          {
            method: copy.method as Dispatcher.HttpMethod,
            path: copy.path,
            headers: copy.headers,
            body: copy.body ?? null,
            headersTimeout: copy.timeoutMs,
            bodyTimeout: copy.timeoutMs,
          },
          handler,
        );
      } catch (err) {
        handler.onResponseError(undefined, err as Error);
      }
    });
  }

  private readonly inflight = new Set<CopyHandler>();
  private sweep: NodeJS.Timeout | undefined;

  private sweepSoon(): void {
    if (this.sweep) return;
    this.sweep = setInterval(() => {
      const now = Date.now();
      for (const h of this.inflight) if (h.deadline <= now) h.expire();
      if (this.inflight.size === 0) {
        clearInterval(this.sweep);
        this.sweep = undefined;
      }
    }, SWEEP_MS);
    this.sweep.unref();
  }

  retainOnly(upstreams: Iterable<CompiledUpstream>): void {
    const keep = new Set([...upstreams].flatMap((u) => this.upstreams.poolFor(u).endpoints.map((e) => poolKey(u, e))));
    for (const [key, pool] of this.pools) {
      if (keep.has(key)) continue;
      this.pools.delete(key);
      void pool.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}
