/**
 * GET /status reports p50 and p99 per backend from the duration histogram
 * of its window, merged across replicas by adding buckets; `gatewayctl
 * status` prints them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mergeStatus, type GatewayStatus } from '../../src/admin/status.js';
import { runCli } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

describe('latency quantiles per backend in /status', () => {
  let slow: TestUpstream;
  let fast: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    slow = await startUpstream('slow', (_req, res) => void setTimeout(() => res.end('slow'), 30));
    fast = await startUpstream('fast', (_req, res) => void res.end('fast'));
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { slow: ${slow.url}, fast: ${fast.url} }
routes:
  - name: app
    backends: [{ upstream: slow }, { upstream: fast }]
`);
    for (let i = 0; i < 40; i++) await request(`${gw.url}/x/${i}`);
  });
  after(async () => {
    await gw.close();
    await slow.close();
    await fast.close();
  });

  test('each backend has its own p50 and p99, and replicas merge by buckets', async () => {
    const status = (await request(gw.adminUrl + '/status')).json() as GatewayStatus;
    const [s, f] = status.routes[0]!.backends;
    assert.equal(s!.requests, 20);
    assert.ok(s!.p50Ms! >= 25 && s!.p50Ms! <= 100, `slow p50 ${s!.p50Ms}`);
    assert.ok(f!.p50Ms! < 25, `fast p50 ${f!.p50Ms}`);
    assert.ok(s!.p99Ms! >= s!.p50Ms!);
    assert.equal(s!.latency.counts.reduce((a, b) => a + b, 0), 20);
    const merged = mergeStatus([status, status]).routes[0]!.backends[0]!;
    assert.equal(merged.requests, 40);
    assert.equal(merged.p50Ms, s!.p50Ms);
    assert.equal(merged.latency.counts.reduce((a, b) => a + b, 0), 40);
    const cli = await runCli(['status', '--admin', gw.adminUrl]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /P50\s+P99/);
  });
});
