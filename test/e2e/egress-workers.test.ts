/**
 * The egress with `serve --workers 2`: a dark call and its live twin may be
 * served by different workers; the egress (in the primary) still pairs
 * them, and each worker's comparison still gets the pair's calls.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnServe, type ServeProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';
import { checkoutWorld, ORDERS, type CheckoutWorld } from '../helpers/checkout.js';
import { request, runConcurrently } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { METRIC } from '../../src/metrics/names.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('egress with --workers 2', () => {
  let world: CheckoutWorld;
  let gw: ServeProcess;
  const tmp = tempDir();
  const orders = ORDERS.filter((o) => o.product !== 'gift');

  before(async () => {
    world = await checkoutWorld();
    const { provider, v1, v2 } = world;
    const file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(
      file,
      `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { v1: ${v1.url}, v2: ${v2.url} }
routes:
  - name: checkout
    match: { prefix: /checkout }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2, methods: [POST] }]
egress: { live: 127.0.0.1:0, dark: 127.0.0.1:0 }
dependencies:
  payments: { url: ${provider.url}/v1, ignoreBody: [/idempotencyKey] }
`,
    );
    const serveProcess = await spawnServe(['-c', file, '--workers', '2']);
    const listening = await serveProcess.waitForLog((l) => l.event === 'egress.listening');
    world.useEgress({ live: listening.live.port, dark: listening.dark.port });
    gw = serveProcess;
  });

  after(async () => {
    await gw?.stop();
    tmp.remove();
    world?.close();
  });

  test('one charge per checkout, replayed answers and call differences across workers', async () => {
    await runConcurrently(orders.length, 4, async (i) => {
      const answer = await request(`${gw.url}/checkout`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': `w-${i}` },
        body: JSON.stringify(orders[i]),
      });
      assert.equal(answer.status, 200);
    });
    assert.equal(world.charges.length, orders.length);
    let shadow: any;
    for (let tries = 0; tries < 100; tries++) {
      const summary = (await request(`${gw.adminUrl}/diffs/summary`)).json();
      shadow = summary.routes[0]?.shadows[0];
      if (shadow?.compared === orders.length) break;
      await sleep(100);
    }
    assert.equal(shadow.compared, orders.length);
    const metrics = (await request(`${gw.adminUrl}/metrics`)).text;
    assert.equal(metricValue(metrics, METRIC.egressRequests, { dependency: 'payments', side: 'dark', outcome: 'replayed' }), orders.length - 1);
    // Three books charged 12 instead of 10, one free order never charged.
    assert.equal(shadow.kinds.call, 4);
    assert.ok(shadow.paths.some((p: any) => p.kind === 'call' && p.path === 'payments POST /charges /amount' && p.differing === 3), JSON.stringify(shadow.paths));
  });
});
