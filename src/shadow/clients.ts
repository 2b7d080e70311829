/**
 * Connection pools for shadow copies, one undici Pool per endpoint origin,
 * separate from the primary's agents so a slow or dead shadow can never
 * hold a connection the user's path needs. The endpoint itself is picked by
 * the upstream's pool (src/upstream/), as for primary traffic, and each
 * copy's outcome feeds the same endpoint health.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { BodyCapture, type Captured } from './capture.js';
import type { CompiledUpstream } from '../config/compile.js';
import { undiciConnector, type ClientTls } from '../tls/upstream.js';
import { Sweep } from '../upstream/deadlines.js';
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
  /** Nothing else will use the body: a copying thread may take its memory instead of a copy. */
  readonly handOver?: boolean;
}

export class ShadowTimeoutError extends GatewayError {
  constructor(ms: number) {
    super(ErrorCodes.SHADOW_TIMEOUT, `shadow copy timed out after ${ms}ms`);
    this.name = 'TimeoutError';
  }
}

export interface CopyAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Present when the answer was captured. */
  readonly capture: Captured | undefined;
  /** From sending to the answer's end, measured where the copy was sent. */
  readonly latencyMs: number;
}

/** Where a copy goes: one endpoint's origin and how to connect to it. */
export interface CopyTarget {
  readonly origin: string;
  readonly tls: ClientTls | undefined;
  readonly connectTimeoutMs: number;
  readonly maxSockets: number;
}

export const copyTarget = (upstream: CompiledUpstream, endpoint: Endpoint): CopyTarget => ({
  origin: endpoint.origin,
  tls: endpoint.tls,
  connectTimeoutMs: upstream.config.connectTimeoutMs,
  maxSockets: upstream.config.maxSockets,
});

/** Connections are shared by endpoints with the same origin, TLS and pool settings. */
export const targetKey = (t: CopyTarget) => connectionKey(t, t);

/** Collects one copy's answer; settles its promise exactly once. */
class CopyHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private readonly capture: BodyCapture | undefined;
  private readonly started = performance.now();
  private settled = false;

  constructor(
    private readonly inflight: Sweep<CopyHandler>,
    readonly deadline: number,
    private readonly timeoutMs: number,
    captureBytes: number | undefined,
    /** Called once, with whether the endpoint answered well (for its health). */
    private readonly onSettled: (ok: boolean) => void,
    private readonly resolve: (answer: CopyAnswer) => void,
    private readonly reject: (err: Error) => void,
  ) {
    this.capture = captureBytes === undefined ? undefined : new BodyCapture(captureBytes, true);
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
    if (this.settle(this.status < 500)) {
      this.resolve({ status: this.status, headers: this.headers, capture: this.capture?.result(), latencyMs: performance.now() - this.started });
    }
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
    this.onSettled(ok);
    return true;
  }
}

/**
 * undici pools by origin, and the copies in flight on them: what sends a
 * copy and reads its answer, in whichever thread holds it.
 */
export class OriginPools {
  private readonly pools = new Map<string, Pool>();
  /** The copies in flight, swept for their overall deadline. */
  private readonly inflight = new Sweep<CopyHandler>((handler, now) => {
    if (handler.deadline > now) return true;
    handler.expire();
    return false;
  });

  private connectionsFor(target: CopyTarget): Pool {
    const key = targetKey(target);
    let pool = this.pools.get(key);
    if (!pool) {
      const timeout = target.connectTimeoutMs;
      pool = new Pool(target.origin, {
        connections: Math.max(16, Math.min(target.maxSockets, 1024)),
        pipelining: 1,
        keepAliveTimeout: FREE_SOCKET_TIMEOUT_MS,
        keepAliveMaxTimeout: FREE_SOCKET_TIMEOUT_MS,
        connect: target.tls ? undiciConnector(target.tls, timeout) : { timeout },
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
  send(target: CopyTarget, copy: CopyRequest, captureBytes: number | undefined, onSettled: (ok: boolean) => void): Promise<CopyAnswer> {
    return new Promise((resolve, reject) => {
      const handler = new CopyHandler(this.inflight, Date.now() + copy.timeoutMs, copy.timeoutMs, captureBytes, onSettled, resolve, reject);
      this.inflight.add(handler);
      try {
        this.connectionsFor(target).dispatch(
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

  /** Closes the pools whose keys are not kept. */
  retainOnly(keep: ReadonlySet<string>): void {
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
    this.inflight.close();
  }
}

/** What sends copies for the shadow path (in this thread, or in a copying thread). */
export interface CopySender {
  /** Resolves once it can send without loading anything first. */
  ready(): Promise<void>;
  send(upstream: CompiledUpstream, copy: CopyRequest, captureBytes: number | undefined): Promise<CopyAnswer>;
  retainOnly(upstreams: Iterable<CompiledUpstream>): void;
  close(): Promise<void>;
}

/** The pool keys of these upstreams' endpoints. */
export function keptKeys(pools: UpstreamPools, upstreams: Iterable<CompiledUpstream>): Set<string> {
  return new Set([...upstreams].flatMap((u) => pools.poolFor(u).endpoints.map((e) => targetKey(copyTarget(u, e)))));
}

/** Copies sent from this thread. */
export class ShadowClients implements CopySender {
  private readonly origins = new OriginPools();

  /** `upstreams`: the gateway's endpoint pools; a client of its own (egress) keeps its own. */
  constructor(private readonly upstreams: UpstreamPools = new UpstreamPools()) {}

  send(upstream: CompiledUpstream, copy: CopyRequest, captureBytes: number | undefined): Promise<CopyAnswer> {
    const pool = this.upstreams.poolFor(upstream);
    const endpoint = pool.pick();
    pool.begin(endpoint);
    return this.origins.send(copyTarget(upstream, endpoint), copy, captureBytes, (ok) => settleEndpoint(pool, endpoint, ok));
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  retainOnly(upstreams: Iterable<CompiledUpstream>): void {
    this.origins.retainOnly(keptKeys(this.upstreams, upstreams));
  }

  close(): Promise<void> {
    return this.origins.close();
  }
}

/** A copy's outcome, into its endpoint's health. */
export function settleEndpoint(pool: UpstreamPool, endpoint: Endpoint, ok: boolean): void {
  pool.finish(endpoint);
  pool.record(endpoint, ok ? 'ok' : 'failure');
}
