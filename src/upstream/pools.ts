/**
 * Every upstream's endpoint pool (pool.ts), one per upstream identity.
 * Pools outlive config snapshots: a reload that keeps an upstream keeps its
 * warm connections and its endpoints' health; a pool no snapshot uses any
 * more is closed once the last request that could use it has finished.
 */
import type { CompiledUpstream } from '../config/compile.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import { UpstreamPool } from './pool.js';

export class UpstreamPools {
  private readonly pools = new Map<string, UpstreamPool>();
  private readonly users = new Map<string, number>();

  constructor(private readonly metrics?: GatewayMetrics) {}

  poolFor(upstream: CompiledUpstream): UpstreamPool {
    let pool = this.pools.get(upstream.poolKey);
    if (!pool) {
      pool = new UpstreamPool(upstream, this.metrics);
      this.pools.set(upstream.poolKey, pool);
      pool.start();
    }
    return pool;
  }

  /** Marks the pools a snapshot uses as in use (and starts their health checks). */
  retain(upstreams: Iterable<CompiledUpstream>): void {
    const seen = new Set<string>();
    for (const u of upstreams) {
      if (seen.has(u.poolKey)) continue;
      seen.add(u.poolKey);
      this.users.set(u.poolKey, (this.users.get(u.poolKey) ?? 0) + 1);
      this.poolFor(u);
    }
  }

  /** Releases a retired snapshot's pools; closes those nothing uses. */
  release(upstreams: Iterable<CompiledUpstream>): void {
    for (const key of new Set([...upstreams].map((u) => u.poolKey))) {
      const left = (this.users.get(key) ?? 1) - 1;
      if (left > 0) {
        this.users.set(key, left);
        continue;
      }
      this.users.delete(key);
      this.pools.get(key)?.destroy();
      this.pools.delete(key);
      for (const pool of this.pools.values()) pool.publishAll();
    }
  }

  /** The pools in use, for status. */
  all(): IterableIterator<UpstreamPool> {
    return this.pools.values();
  }

  destroy(): void {
    for (const pool of this.pools.values()) pool.destroy();
    this.pools.clear();
    this.users.clear();
  }
}
