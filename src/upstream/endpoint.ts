/**
 * One instance of an upstream: its keep-alive connections, the requests it
 * is serving now, and what the gateway knows of its health, from active
 * checks (health-check.ts) and from the requests it served (pool.ts).
 */
import http from 'node:http';
import https from 'node:https';
import type { EndpointConfig, UpstreamConfig } from '../config/types.js';
import { agentTlsOptions, type ClientTls } from '../tls/upstream.js';
import { sharedReadsAgent } from './shared-reads.js';

/** Idle pooled sockets close before a typical upstream's 5 s keep-alive ends (every client of an endpoint). */
export const FREE_SOCKET_TIMEOUT_MS = 4000;

/**
 * Which connections an endpoint's requests may share: the same origin, TLS
 * identity and connection settings. The upstream pool's own key
 * (CompiledUpstream.poolKey) is wider: health belongs to one upstream.
 */
export function connectionKey(endpoint: Pick<Endpoint, 'origin' | 'tls'>, config: Pick<UpstreamConfig, 'connectTimeoutMs' | 'maxSockets'>): string {
  return `${endpoint.origin}|${endpoint.tls?.identity ?? ''}|${config.connectTimeoutMs}|${config.maxSockets}`;
}

export class Endpoint {
  readonly name: string;
  readonly url: URL;
  /** Where to connect: the host without IPv6 brackets, the port with the scheme's default. */
  readonly hostname: string;
  readonly port: number;
  readonly secure: boolean;
  /** scheme://host:port, for clients that pool by origin (shadow copies). */
  readonly origin: string;
  readonly weight: number;
  /** Primary traffic's connections. A DNS name is resolved for each new connection. */
  readonly agent: http.Agent;
  /** Requests (primary and shadow) sent and not yet finished. */
  outstanding = 0;
  /** Smooth weighted round-robin credit: breaks ties between equally busy endpoints. */
  credit = 0;
  /** Passive: failures in a row, ejections so far, ejected until (ms epoch). */
  consecutiveFailures = 0;
  ejections = 0;
  ejectedUntil = 0;
  /** Active: the last verdict of the health checks (true until they say otherwise). */
  checkedHealthy = true;
  checkPasses = 0;
  checkFailures = 0;

  constructor(
    config: EndpointConfig,
    readonly tls: ClientTls | undefined,
    maxSockets: number,
  ) {
    this.name = config.name;
    this.url = new URL(config.url);
    this.secure = this.url.protocol === 'https:';
    this.hostname = this.url.hostname.startsWith('[') ? this.url.hostname.slice(1, -1) : this.url.hostname;
    this.port = Number(this.url.port) || (this.secure ? 443 : 80);
    this.origin = this.url.origin;
    this.weight = config.weight;
    const options: http.AgentOptions = {
      keepAlive: true,
      maxSockets,
      maxFreeSockets: Math.min(maxSockets, 256),
      scheduling: 'lifo',
      timeout: FREE_SOCKET_TIMEOUT_MS,
    };
    this.agent = tls ? new https.Agent({ ...options, ...agentTlsOptions(tls) }) : sharedReadsAgent(options);
  }

  /** In rotation: not failed by the health checks, not ejected. */
  available(now: number): boolean {
    return this.checkedHealthy && this.ejectedUntil <= now;
  }

  destroy(): void {
    this.agent.destroy();
  }
}
