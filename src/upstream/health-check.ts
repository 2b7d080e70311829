/**
 * Active health checks: every interval, one GET to each endpoint's check
 * path, on a connection of its own (never one the user's requests need).
 * healthyThreshold passes in a row bring an endpoint back (and end a
 * passive ejection early); unhealthyThreshold failures in a row take it
 * out. A DNS name is resolved afresh for each check.
 */
import http from 'node:http';
import https from 'node:https';
import type { HealthCheckConfig } from '../config/types.js';
import { agentTlsOptions } from '../tls/upstream.js';
import type { Endpoint } from './endpoint.js';

export type CheckVerdict = (endpoint: Endpoint, passed: boolean) => void;

export class HealthChecker {
  private timer: NodeJS.Timeout | undefined;
  private readonly running = new Set<http.ClientRequest>();
  private readonly busy = new Set<Endpoint>();

  constructor(
    private readonly config: HealthCheckConfig,
    private readonly endpoints: readonly Endpoint[],
    private readonly verdict: CheckVerdict,
  ) {}

  start(): void {
    if (this.timer) return;
    this.round();
    this.timer = setInterval(() => this.round(), this.config.intervalMs);
    this.timer.unref();
  }

  private round(): void {
    for (const endpoint of this.endpoints) if (!this.busy.has(endpoint)) this.check(endpoint);
  }

  private check(endpoint: Endpoint): void {
    const url = endpoint.url;
    const base = url.pathname === '/' ? '' : url.pathname;
    const secure = url.protocol === 'https:';
    this.busy.add(endpoint);
    let settled = false;
    const done = (passed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      this.busy.delete(endpoint);
      this.running.delete(request);
      if (this.timer) this.verdict(endpoint, passed);
    };
    const request = (secure ? https : http).request({
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port || (secure ? 443 : 80),
      path: base + this.config.path,
      method: 'GET',
      headers: { host: url.host, 'user-agent': 'gatewayctl-health-check', connection: 'close' },
      agent: false,
      ...(secure && endpoint.tls ? agentTlsOptions(endpoint.tls) : {}),
    });
    this.running.add(request);
    const deadline = setTimeout(() => {
      request.destroy();
      done(false);
    }, this.config.timeoutMs);
    deadline.unref();
    request.on('error', () => done(false));
    request.on('response', (res) => {
      const status = res.statusCode ?? 0;
      res.on('error', () => done(false));
      res.on('end', () => done(status >= 200 && status < 400));
      res.resume();
    });
    request.end();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const request of this.running) request.destroy();
    this.running.clear();
  }
}
