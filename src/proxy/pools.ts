/**
 * Keep-alive connection pools for primary traffic, one per upstream identity.
 * Pools outlive config snapshots: a reload that keeps an upstream keeps its
 * warm connections; a pool no snapshot uses any more is closed once the
 * last request that could use it has finished.
 */
import http from 'node:http';
import https from 'node:https';
import type { CompiledUpstream } from '../config/compile.js';
import { agentTlsOptions } from '../tls/upstream.js';

/** Idle pooled sockets close before a typical upstream's 5 s keep-alive ends. */
const FREE_SOCKET_TIMEOUT_MS = 4000;

export class UpstreamPools {
  private readonly agents = new Map<string, http.Agent>();
  private readonly users = new Map<string, number>();

  agentFor(upstream: CompiledUpstream): http.Agent {
    let agent = this.agents.get(upstream.poolKey);
    if (!agent) {
      const options: http.AgentOptions = {
        keepAlive: true,
        maxSockets: upstream.config.maxSockets,
        maxFreeSockets: Math.min(upstream.config.maxSockets, 256),
        scheduling: 'lifo',
        timeout: FREE_SOCKET_TIMEOUT_MS,
      };
      agent = upstream.tls ? new https.Agent({ ...options, ...agentTlsOptions(upstream.tls) }) : new http.Agent(options);
      this.agents.set(upstream.poolKey, agent);
    }
    return agent;
  }

  /** Marks the pools a snapshot uses as in use. */
  retain(upstreams: Iterable<CompiledUpstream>): void {
    for (const key of new Set([...upstreams].map((u) => u.poolKey))) {
      this.users.set(key, (this.users.get(key) ?? 0) + 1);
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
      this.agents.get(key)?.destroy();
      this.agents.delete(key);
    }
  }

  closeIdle(): void {
    for (const agent of this.agents.values()) {
      for (const sockets of Object.values(agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
    }
  }

  destroy(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
    this.users.clear();
  }
}
