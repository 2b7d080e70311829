/**
 * A snapshot in service: the compiled config plus what the request path
 * binds to it once (metric children per route and upstream, the trusted
 * proxy list). Requests count themselves in and out, so a retired snapshot
 * knows when its last request has finished.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import type { CompiledRoute, CompiledUpstream, Snapshot } from '../config/compile.js';
import type { GatewayMetrics, RequestStats } from '../metrics/registry.js';
import { hostOf } from '../routing/matcher.js';

export class ActiveConfig {
  readonly snapshot: Snapshot;
  readonly unmatchedStats: RequestStats;
  private readonly stats: Map<CompiledUpstream, RequestStats>[];
  private readonly trusted: BlockList | undefined;
  inflight = 0;
  private retiredCallback: (() => void) | undefined;

  constructor(snapshot: Snapshot, metrics: GatewayMetrics, statsCache: Map<string, RequestStats>) {
    this.snapshot = snapshot;
    const bind = (route: string, upstream: string) => {
      const key = `${route}\u0000${upstream}`;
      let stats = statsCache.get(key);
      if (!stats) {
        stats = metrics.requestStats(route, upstream);
        statsCache.set(key, stats);
      }
      return stats;
    };
    this.unmatchedStats = bind('unmatched', 'none');
    this.stats = snapshot.routes.map((route) => {
      const byUpstream = new Map<CompiledUpstream, RequestStats>();
      for (const b of route.config.backends) {
        const upstream = snapshot.upstreams.get(b.upstream)!;
        byUpstream.set(upstream, bind(route.name, upstream.name));
      }
      return byUpstream;
    });
    const proxies = snapshot.config.trustedProxies;
    if (proxies.length > 0) {
      this.trusted = new BlockList();
      for (const entry of proxies) {
        const [address, bits] = entry.split('/') as [string, string | undefined];
        const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
        if (bits === undefined) this.trusted.addAddress(address, family);
        else this.trusted.addSubnet(address, Number(bits), family);
      }
    }
  }

  statsFor(route: CompiledRoute, upstream: CompiledUpstream): RequestStats {
    return this.stats[route.index]!.get(upstream)!;
  }

  isTrusted(address: string | undefined): boolean {
    if (!this.trusted || !address) return false;
    const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
    return this.trusted.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
  }

  hostOf(req: IncomingMessage): string {
    return hostOf(req.headers.host);
  }

  requestDone(): void {
    this.inflight--;
    if (this.inflight === 0 && this.retiredCallback) {
      const callback = this.retiredCallback;
      this.retiredCallback = undefined;
      callback();
    }
  }

  /** Calls back once no request is using this snapshot any more. */
  retire(callback: () => void): void {
    if (this.inflight === 0) callback();
    else this.retiredCallback = callback;
  }
}
