/**
 * Connection pools for shadow copies, one undici Pool per upstream origin,
 * separate from the primary's agents so a slow or dead shadow can never
 * hold a connection the user's path needs.
 */
import { Pool, type Dispatcher } from 'undici';
import type { CompiledUpstream } from '../config/compile.js';
import { undiciConnector } from '../tls/upstream.js';

export interface CopyRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer | undefined;
  readonly timeoutMs: number;
}

export class ShadowTimeoutError extends Error {
  readonly code = 'GW_SHADOW_TIMEOUT';
  override readonly name = 'TimeoutError';
  constructor(ms: number) {
    super(`shadow copy timed out after ${ms}ms`);
  }
}

/** Pools are shared by upstreams with the same origin and TLS settings. */
const poolKey = (upstream: CompiledUpstream) => (upstream.tls ? `${upstream.target.origin}|${upstream.tls.identity}` : upstream.target.origin);

export class ShadowClients {
  private readonly pools = new Map<string, Pool>();

  private poolFor(upstream: CompiledUpstream): Pool {
    const key = poolKey(upstream);
    let pool = this.pools.get(key);
    if (!pool) {
      const origin = upstream.target.origin;
      const timeout = upstream.config.connectTimeoutMs;
      pool = new Pool(origin, {
        connections: Math.max(16, Math.min(upstream.config.maxSockets, 1024)),
        pipelining: 1,
        keepAliveTimeout: 4000,
        keepAliveMaxTimeout: 4000,
        connect: upstream.tls ? undiciConnector(upstream.tls, timeout) : { timeout },
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** One whole exchange bounded by timeoutMs (headers and body). */
  async request(upstream: CompiledUpstream, copy: CopyRequest): Promise<Dispatcher.ResponseData> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new ShadowTimeoutError(copy.timeoutMs)), copy.timeoutMs);
    try {
      const response = await this.poolFor(upstream).request({
        method: copy.method as Dispatcher.HttpMethod,
        path: copy.path,
        headers: copy.headers,
        body: copy.body,
        signal: controller.signal,
        headersTimeout: copy.timeoutMs,
        bodyTimeout: copy.timeoutMs,
      });
      // The timer keeps running while the body is read; clear it when done.
      response.body.once('close', () => clearTimeout(timer));
      response.body.once('end', () => clearTimeout(timer));
      return response;
    } catch (err) {
      clearTimeout(timer);
      if (controller.signal.aborted) throw controller.signal.reason;
      throw err;
    }
  }

  retainOnly(upstreams: Iterable<CompiledUpstream>): void {
    const keep = new Set([...upstreams].map(poolKey));
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
