/**
 * Dark launch of a service with side effects, on real sockets: a payment
 * provider that counts charges, v1 (live) and v2 (dark) checkout services
 * that propagate x-request-id, every POST mirrored.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import type { DiffEvent } from '../../src/diff/types.js';
import { call, checkoutWorld, ORDERS, type CheckoutWorld } from '../helpers/checkout.js';
import { METRIC } from '../../src/metrics/names.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('egress: dark launch of a checkout with side effects', () => {
  let world: CheckoutWorld;
  let gw: TestGateway;
  const tmp = tempDir();

  before(async () => {
    world = await checkoutWorld();
    const { provider, v1, v2 } = world;
    writeFileSync(
      join(tmp.dir, 'mailer.json'),
      JSON.stringify({
        data: {
          pairs: [
            {
              request: { method: [{ matcher: 'exact', value: 'POST' }], path: [{ matcher: 'glob', value: '/api/*' }], body: [{ matcher: 'jsonPartial', value: '{"to":"gift-user"}' }] },
              response: { status: 202, body: '{"queued":"m-1"}', encodedBody: false, headers: { 'Content-Type': ['application/json'] }, templated: false },
            },
          ],
        },
        meta: { schemaVersion: 'v5.2' },
      }),
    );
    const configFile = join(tmp.dir, 'gateway.yaml');
    writeFileSync(
      configFile,
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
  payments:
    url: ${provider.url}/v1
    ignoreBody: [/idempotencyKey]
    wait: 2s
  mailer:
    url: http://127.0.0.1:9/api
    simulation: mailer.json
    wait: 100ms
`,
    );
    gw = await startGateway('', { configFile });
    world.useEgress({ live: gw.egress.addresses.live!.port, dark: gw.egress.addresses.dark!.port });
  });

  after(async () => {
    await gw?.close();
    world?.close();
    tmp.remove();
  });

  const orders = ORDERS;
  const ids = new Map<string, string>();
  let events: DiffEvent[] = [];

  test('every checkout is charged exactly once; the dark version gets the live answers', async () => {
    await runConcurrently(orders.length, 4, async (i) => {
      const id = `order-${i}`;
      ids.set(orders[i]!.user, id);
      const answer = await request(`${gw.url}/checkout`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        body: JSON.stringify(orders[i]),
      });
      assert.equal(answer.status, 200);
    });
    await until(() => gw.diffs.store.recent({}, { limit: 100 }).length >= 5 && gw.diffs.engine.pending === 0);
    await sleep(300);
    await gw.settled();
    events = gw.diffs.store.recent({}, { limit: 100 });
    assert.equal(world.charges.length, orders.length, 'one charge per user checkout: the dark version charged nobody');
    const metrics = (await request(`${gw.adminUrl}/metrics`)).text;
    // Every dark charge but the skipped one was answered with its live twin's answer.
    assert.equal(metricValue(metrics, METRIC.egressRequests, { dependency: 'payments', side: 'dark', outcome: 'replayed' }), orders.length - 1);
    assert.equal(metricValue(metrics, METRIC.egressRequests, { dependency: 'payments', side: 'live', outcome: 'forwarded' }), orders.length);
    // v2 returned the same charge ids as v1: no response difference on /charge but where it charged nothing.
    for (const e of events.filter((x) => x.requestId !== ids.get('free-user'))) assert.ok(!e.differences.some((d) => d.kind === 'body' && d.path === '/charge'), JSON.stringify(e));
  });

  test('an amount difference is reported on exactly the affected requests, with its pointer', () => {
    const withAmount = events.filter((e) => e.differences.some((d) => d.kind === 'call' && d.path === '/amount'));
    const expected = orders.filter((o) => o.product === 'book').map((o) => ids.get(o.user)).sort();
    assert.deepEqual(withAmount.map((e) => e.requestId).sort(), expected);
    const d = withAmount[0]!.differences.find((x) => x.kind === 'call')!;
    assert.deepEqual(d.call, { dependency: 'payments', method: 'POST', path: '/charges' });
    assert.equal(d.primary, 10);
    assert.equal(d.shadow, 12);
  });

  test('ignoreBody masks the idempotency key', () => {
    for (const e of events) assert.ok(!e.differences.some((d) => d.path.includes('idempotencyKey')), JSON.stringify(e.differences));
    const pens = new Set(orders.filter((o) => o.product === 'pen').map((o) => ids.get(o.user)));
    assert.ok(!events.some((e) => pens.has(e.requestId)), 'same calls and answers: no event for pen checkouts');
  });

  test('a missing call and an extra call are each reported', () => {
    const free = events.find((e) => e.requestId === ids.get('free-user'))!;
    assert.ok(free.differences.some((d) => d.kind === 'call' && d.change === 'missing' && d.call?.dependency === 'payments'), JSON.stringify(free));
    const gift = events.find((e) => e.requestId === ids.get('gift-user'))!;
    assert.ok(gift.differences.some((d) => d.kind === 'call' && d.change === 'extra' && d.call?.dependency === 'mailer' && d.call.path === '/send'), JSON.stringify(gift));
  });

  test('a Hoverfly simulation answers a call with no live twin', () => {
    const gift = events.find((e) => e.requestId === ids.get('gift-user'))!;
    assert.ok(gift.differences.some((d) => d.kind === 'body' && d.path === '/mailed' && d.shadow === 'm-1'), JSON.stringify(gift));
  });

  test('a dark call that arrives before its live twin is still paired', () => {
    assert.ok(!events.some((e) => e.requestId === ids.get('slow-user')), 'the slow checkout was replayed and matched');
  });

  test('the summary and the shadow comparisons count call differences', async () => {
    const summary = (await request(`${gw.adminUrl}/diffs/summary`)).json();
    const shadow = summary.routes[0].shadows[0];
    assert.equal(shadow.kinds.call, 5);
    assert.ok(shadow.paths.some((p: any) => p.kind === 'call' && p.path === 'payments POST /charges /amount' && p.differing === 3), JSON.stringify(shadow.paths));
  });

  test('refused dark calls are answered 502 and counted', async () => {
    const answer = await call(world.egress.dark, '/payments/refunds', 'lonely-1', { amount: 1 });
    assert.equal(answer.status, 502);
    assert.equal(answer.egress, 'refused');
    assert.equal(answer.json.requestId, 'lonely-1');
    const metrics = (await request(`${gw.adminUrl}/metrics`)).text;
    assert.equal(metricValue(metrics, METRIC.egressRequests, { dependency: 'payments', side: 'dark', outcome: 'refused' }), 1);
    const status = (await request(`${gw.adminUrl}/status`)).json();
    assert.equal(status.dependencies.payments.dark.refused, 1);
    assert.equal(status.dependencies.payments.live, orders.length);
    // Compared calls stay held (for export) within the bounds.
    assert.ok(status.dependencies.payments.recordings >= orders.length, JSON.stringify(status.dependencies));
  });

  test('live recordings export as a Hoverfly simulation that loads back and answers', async () => {
    await call(world.egress.live, '/payments/charges', 'export-1', { amount: 7 });
    const sim = (await request(`${gw.adminUrl}/egress/recordings?dependency=payments`)).json();
    assert.equal(sim.meta.schemaVersion, 'v5.2');
    const pair = sim.data.pairs.find((p: any) => p.request.body?.[0]?.value.includes('"amount":7'));
    assert.ok(pair, JSON.stringify(sim));
    assert.deepEqual(pair.request.path, [{ matcher: 'exact', value: '/v1/charges' }]);
    assert.equal(pair.response.status, 201);
    const { parseSimulation, matchSimulation } = await import('../../src/egress/simulation.js');
    const loaded = parseSimulation({ file: 'export.json', text: JSON.stringify(sim) }, '/export.json');
    assert.deepEqual(loaded.diagnostics, []);
    const hit = matchSimulation(loaded.simulation!.pairs, {
      method: 'POST',
      path: '/v1/charges',
      destination: new URL(world.provider.url).host,
      scheme: 'http',
      query: new Map(),
      headers: new Map(),
      body: pair.request.body[0].value,
    });
    assert.equal(hit?.response.status, 201);
  });
});

/**
 * A checkout world behind a gateway whose route is `route` (YAML lines under
 * "routes:", v1, v2 and v1b being the upstreams), with the egress on.
 */
function checkoutGateway(route: string, extra = ''): { world: () => CheckoutWorld; gw: () => TestGateway } {
  let world: CheckoutWorld;
  let gw: TestGateway;
  before(async () => {
    world = await checkoutWorld();
    const { provider, v1, v2, v1b } = world;
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { v1: ${v1.url}, v2: ${v2.url}, v1b: ${v1b.url} }
routes:
${route}
egress: { live: 127.0.0.1:0, dark: 127.0.0.1:0 }
dependencies:
  payments: { url: ${provider.url}/v1, ignoreBody: [/idempotencyKey] }
${extra}`);
    world.useEgress({ live: gw.egress.addresses.live!.port, dark: gw.egress.addresses.dark!.port });
  });
  after(async () => {
    await gw?.close();
    world?.close();
  });
  return { world: () => world, gw: () => gw };
}

describe('egress: a release whose candidate would charge wrongly', () => {
  const tmp = tempDir();
  after(() => tmp.remove());
  const setup = checkoutGateway(
    `  - name: checkout
    match: { prefix: /checkout }
    backends: [{ upstream: v1 }]
    release: { candidate: v2, steps: [shadow, 100], interval: 300ms, minRequests: 20 }`,
    `stateDir: ${join(tmp.dir, 'state')}`,
  );

  test('is rolled back in the shadow step, on call differences alone, having charged nobody', async () => {
    const gw = setup.gw();
    const world = setup.world();
    let status: any;
    let sent = 0;
    for (let round = 0; round < 40; round++) {
      // Every third checkout is a book: v2 would charge 12 where v1 charges 10.
      await runConcurrently(6, 3, async (i) => {
        const product = i % 3 === 0 ? 'book' : 'pen';
        sent++;
        const answer = await request(`${gw.url}/checkout`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-request-id': `rel-${round}-${i}` },
          body: JSON.stringify({ product, user: `u-${round}-${i}` }),
        });
        assert.equal(answer.status, 200);
      });
      status = (await request(`${gw.adminUrl}/releases`)).json().releases[0];
      if (status?.status === 'rolled-back') break;
      await sleep(50);
    }
    assert.equal(status.status, 'rolled-back', JSON.stringify(status));
    assert.match(status.reason, /shadow failed: diffRate/);
    assert.equal(world.charges.length, sent, 'one charge per checkout: the candidate charged nobody');
    const summary = (await request(`${gw.adminUrl}/diffs/summary`)).json();
    const shadow = summary.routes[0].shadows[0];
    assert.equal(shadow.kinds.body, 0, 'the responses never differed');
    assert.ok(shadow.kinds.call > 0);
  });
});

describe('egress: a route with a diff baseline', () => {
  const setup = checkoutGateway(`  - name: checkout
    match: { prefix: /checkout }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2, methods: [POST] }]
    diff: { baseline: v1b }`);

  test("the baseline's calls are replayed too and kept apart from the candidate's", async () => {
    const gw = setup.gw();
    const world = setup.world();
    const orders = ['pen', 'book', 'pen', 'book', 'tip', 'tip'];
    const compared = async () => (await request(`${gw.adminUrl}/diffs/summary`)).json().routes[0]?.shadows[0]?.compared;
    const checkout = async (from: number, to: number) => {
      await runConcurrently(to - from, 2, async (n) => {
        const i = from + n;
        const answer = await request(`${gw.url}/checkout`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-request-id': `bl-${i}` },
          body: JSON.stringify({ product: orders[i], user: `bl-${i}` }),
        });
        assert.equal(answer.status, 200);
      });
      await until(async () => (await compared()) === to);
    };
    // The tips go once the books are compared: a tip's amount differs between
    // live and baseline, which makes the amount noise, and a book compared
    // after that would have its amount masked as noise too. Sent together,
    // the order of comparisons was the machine's to choose.
    await checkout(0, 4);
    await checkout(4, orders.length);
    assert.equal(world.charges.length, orders.length, 'neither the candidate nor the baseline charged anyone');
    const metrics = (await request(`${gw.adminUrl}/metrics`)).text;
    assert.equal(metricValue(metrics, METRIC.egressRequests, { dependency: 'payments', side: 'dark', outcome: 'replayed' }), 2 * orders.length);
    const shadow = (await request(`${gw.adminUrl}/diffs/summary`)).json().routes[0].shadows[0];
    assert.equal(shadow.differing, 2, 'the two books, and nothing for the baseline\'s calls or the tips');
    assert.ok(!shadow.paths.some((p: any) => p.kind === 'call' && p.path === 'payments POST /charges'), JSON.stringify(shadow.paths));
    // The tip's amount differs between live and baseline too: noise, masked.
    const amount = shadow.paths.find((p: any) => p.kind === 'call' && p.path === 'payments POST /charges /amount');
    assert.equal(amount.differing, 2);
    assert.ok(amount.masked >= 2 && amount.noise >= 2, JSON.stringify(amount));
  });
});
