/**
 * Helpers for release tests: a bounded request loop, and polling the
 * releases of a gateway until they reach a state.
 */
import http from 'node:http';
import { request } from './http.js';
import type { ReleaseConfig } from '../../src/config/types.js';
import type { TestUpstream } from './upstream.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A bounded request loop against one or more gateways; returns its stop. */
export function traffic(urls: string[], concurrency = 4, maxMs = 60_000) {
  let stop = false;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency * urls.length });
  const deadline = Date.now() + maxMs;
  let n = 0;
  const loops = urls.flatMap((url) =>
    Array.from({ length: concurrency }, async () => {
      while (!stop && Date.now() < deadline) {
        await request(`${url}/shop/item`, { agent, headers: { 'x-user-id': `user-${n++ % 500}` } }).catch(() => undefined);
      }
    }),
  );
  return async () => {
    stop = true;
    await Promise.all(loops);
    agent.destroy();
  };
}

export async function releases(adminUrl: string): Promise<any[]> {
  return (await request(adminUrl + '/releases')).json().releases;
}

export async function waitFor<T>(probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  do {
    last = await probe();
    if (ok(last)) return last;
    await sleep(50);
  } while (Date.now() < deadline);
  throw new Error(`${what} not reached in ${timeoutMs}ms; last: ${JSON.stringify(last)}`);
}

/** A gateway config with one route, v1 stable and v2 the candidate of `release` (YAML). */
export const releaseConfig = (v1: TestUpstream, v2: TestUpstream, stateDir: string, release: string) => `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
stateDir: ${stateDir}
upstreams: { v1: ${v1.url}, v2: ${v2.url} }
routes:
  - name: shop
    match: { prefix: /shop }
    backends: [{ upstream: v1 }]
    sticky: { header: x-user-id }
    release:
${release
  .trim()
  .split('\n')
  .map((l) => '      ' + l)
  .join('\n')}
`;

/** A compiled release with the schema's default gates, for judging synthetic evidence. */
export const releaseSettings = (over: Partial<ReleaseConfig> = {}): ReleaseConfig => ({
  candidate: 'v2',
  steps: ['shadow', 10, 50, 100],
  shadowPercent: 100,
  intervalMs: 60_000,
  minRequests: 200,
  gates: { maxErrorRate: 0.01, maxErrorRateIncrease: 0.005, maxLatencyRatio: 1.25, maxDiffRate: 0.02 },
  onFailure: 'rollback',
  controller: 'gateway',
  maxStepDurationMs: undefined,
  onTimeout: 'pause',
  ...over,
});
