/**
 * Live shadow diffs over real sockets: real upstreams that differ in known
 * fields, the gateway in between, and the admin API's /diffs stream,
 * /diffs/summary and /status.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { AdminServer } from '../../src/admin/server.js';
import { SseParser } from '../../src/admin/sse.js';
import { diffRoutes } from '../../src/admin/routes/diffs.js';
import { DiffStore } from '../../src/diff/store.js';
import type { DiffEvent } from '../../src/diff/types.js';
import { Logger } from '../../src/log/logger.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnServe } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { openSse } from '../helpers/sse.js';
import { deadPort, startUpstream, type TestUpstream, type UpstreamHandler } from '../helpers/upstream.js';

const json = (body: unknown, gzip = false): UpstreamHandler => (_req, res) => {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
  res.end(gzip ? zlib.gzipSync(text) : text);
};

/** Fields that differ on every answer, whoever answers. */
const randomFields = () => ({ id: randomUUID(), at: process.hrtime.bigint().toString(), nonce: Math.random() });

const parse = (data: string) => JSON.parse(data) as DiffEvent;
const pointers = (e: DiffEvent) => e.differences.map((d) => d.path);

describe('live shadow diffs', () => {
  const upstreams: TestUpstream[] = [];
  let gw: TestGateway;

  before(async () => {
    const start = async (name: string, handler: UpstreamHandler) => {
      const u = await startUpstream(name, handler);
      upstreams.push(u);
      return u;
    };
    const v1 = await start('v1', (req, res, body) =>
      json({ items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }], legacy: true, status: 'ok', meta: { requestId: randomUUID() } })(req, res, body),
    );
    const v3 = await start('v3', (req, res, body) =>
      json({ items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 5 }], status: 'OK', meta: { requestId: randomUUID() } }, true)(req, res, body),
    );
    const stable = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) =>
      json({ ...randomFields(), item: { sku: 'x', price: 10 } })(req, res, body);
    const n1 = await start('n1', stable);
    const n1b = await start('n1b', stable);
    const n3 = await start('n3', (req, res, body) =>
      json({ ...randomFields(), item: { sku: 'x', price: req.url?.startsWith('/noisy/regressed') ? 12 : 10 } })(req, res, body),
    );
    const markup = (type: string, text: (stock: string) => string): [UpstreamHandler, UpstreamHandler] => {
      const answering = (stock: string): UpstreamHandler => (_req, res) => {
        res.writeHead(200, { 'content-type': type });
        res.end(text(stock));
      };
      return [answering('3 left'), answering('2 left')];
    };
    const [page1, page2] = markup('text/html; charset=utf-8', (stock) => `<!doctype html><html><body><main><p class="stock">${stock}</p></main></body></html>`);
    const [feed1, feed2] = markup('application/xml', (stock) => `<?xml version="1.0"?><catalog><item><stock>${stock}</stock></item></catalog>`);
    const h1 = await start('h1', page1);
    const h2 = await start('h2', page2);
    const x1 = await start('x1', feed1);
    const x2 = await start('x2', feed2);
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
# Several tests count one event per request; their clients share this loop
# and can read as a saturated gateway, which sheds copies.
limits: { shadowShedAbove: 1 }
upstreams:
  v1: ${v1.url}
  v3: ${v3.url}
  h1: ${h1.url}
  h2: ${h2.url}
  x1: ${x1.url}
  x2: ${x2.url}
  n1: ${n1.url}
  n1b: ${n1b.url}
  n3: ${n3.url}
  dead: http://127.0.0.1:${await deadPort()}
routes:
  - name: shop
    match: { prefix: /shop }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v3 }]
    diff:
      ignorePaths: [/meta/requestId]
  - name: noisy
    match: { prefix: /noisy }
    backends: [{ upstream: n1 }]
    shadow: [{ upstream: n3 }]
    diff:
      baseline: n1b
  - name: broken
    match: { prefix: /broken }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: dead }]
  - name: page
    match: { prefix: /page }
    backends: [{ upstream: h1 }]
    shadow: [{ upstream: h2 }]
  - name: feed
    match: { prefix: /feed }
    backends: [{ upstream: x1 }]
    shadow: [{ upstream: x2 }]
`);
  });

  after(async () => {
    await gw.close();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  test('a request whose shadow differs arrives on GET /diffs with the exact pointers, within a second', async () => {
    const stream = await openSse(gw.adminUrl + '/diffs');
    try {
      assert.equal(stream.status, 200);
      const sent = performance.now();
      const r = await request(gw.url + '/shop/cart', { headers: { 'x-request-id': 'req-known-1' } });
      assert.equal(r.status, 200);
      const [message] = await stream.waitFor(1);
      assert.ok(performance.now() - sent < 1000, 'the event arrives within a second');
      const event = parse(message!.data);
      assert.equal(message!.id, event.id);
      assert.equal(event.route, 'shop');
      assert.equal(event.method, 'GET');
      assert.equal(event.path, '/shop/cart');
      assert.equal(event.requestId, 'req-known-1');
      assert.equal(event.endpoint, '/shop/cart');
      assert.deepEqual([event.primary.upstream, event.primary.status], ['v1', 200]);
      assert.deepEqual([event.shadow.upstream, event.shadow.status], ['v3', 200]);
      assert.ok(event.primary.latencyMs >= 0 && event.shadow.latencyMs >= 0);
      assert.deepEqual(event.differences, [
        { kind: 'body', path: '/items/1/qty', endpoint: '/shop/cart', template: '/items/*/qty', change: 'value', primary: 2, shadow: 5 },
        { kind: 'body', path: '/legacy', endpoint: '/shop/cart', template: '/legacy', change: 'missing', primary: true, shadow: null },
        { kind: 'body', path: '/status', endpoint: '/shop/cart', template: '/status', change: 'value', primary: 'ok', shadow: 'OK' },
      ]);
    } finally {
      stream.close();
    }
  });

  test('?route= filters the stream; ?replay=N sends recent events first', async () => {
    const filtered = await openSse(gw.adminUrl + '/diffs?route=noisy');
    const all = await openSse(gw.adminUrl + '/diffs');
    try {
      await request(gw.url + '/shop/a');
      await request(gw.url + '/noisy/regressed/1');
      await all.waitFor(2);
      const [only] = await filtered.waitFor(1);
      assert.equal(parse(only!.data).route, 'noisy');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(filtered.messages.filter((m) => m.event === 'diff').length, 1);
    } finally {
      filtered.close();
      all.close();
    }
    const replay = await openSse(gw.adminUrl + '/diffs?route=shop&replay=2');
    try {
      const events = (await replay.waitFor(2)).map((m) => parse(m.data));
      assert.ok(events.every((e) => e.route === 'shop'));
      assert.ok(events[0]!.id < events[1]!.id || events[0]!.id.length < events[1]!.id.length, 'oldest first');
    } finally {
      replay.close();
    }
    assert.equal((await request(gw.adminUrl + '/diffs?replay=many')).status, 400);
  });

  test('HTML and XML answers are compared as element trees by the comparing thread, which loads their parsers for them', async () => {
    const subscribers = gw.diffs.store.subscriberCount;
    for (const [route, path] of [
      ['page', 'html > body > main > p.stock'],
      ['feed', 'catalog > item > stock'],
    ] as const) {
      const stream = await openSse(`${gw.adminUrl}/diffs?route=${route}`);
      try {
        const r = await request(`${gw.url}/${route}/1`);
        assert.equal(r.status, 200);
        assert.match(r.body.toString(), /3 left/, 'the user gets the primary answer');
        const event = parse((await stream.waitFor(1))[0]!.data);
        assert.deepEqual(
          event.differences.map((d) => [d.kind, d.path, d.primary, d.shadow]),
          [['body', path, '3 left', '2 left']],
          route,
        );
      } finally {
        stream.close();
      }
    }
    for (let i = 0; i < 50 && gw.diffs.store.subscriberCount > subscribers; i++) await new Promise((r) => setTimeout(r, 10));
  });

  test('subscribers are removed when their stream closes', async () => {
    const before = gw.diffs.store.subscriberCount;
    const stream = await openSse(gw.adminUrl + '/diffs');
    assert.equal(gw.diffs.store.subscriberCount, before + 1);
    stream.close();
    for (let i = 0; i < 50 && gw.diffs.store.subscriberCount > before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(gw.diffs.store.subscriberCount, before);
  });

  test('a shadow that fails while the primary answers is an error difference', async () => {
    const stream = await openSse(gw.adminUrl + '/diffs?route=broken');
    try {
      await request(gw.url + '/broken/x');
      const event = parse((await stream.waitFor(1))[0]!.data);
      assert.equal(event.shadow.status, null);
      assert.match(event.shadow.error ?? '', /ECONNREFUSED/);
      assert.deepEqual(
        event.differences.map((d) => [d.kind, d.path, d.primary]),
        [['error', 'error', 200]],
      );
    } finally {
      stream.close();
    }
  });

  test('with a baseline, random ids and timestamps make no events; a one-field regression is reported on every request', async () => {
    const stream = await openSse(gw.adminUrl + '/diffs?route=noisy');
    try {
      const requests = 30;
      await runConcurrently(requests, 4, (i) => request(gw.url + `/noisy/clean/${i}`));
      await runConcurrently(requests, 4, (i) => request(gw.url + `/noisy/regressed/${i}`, { headers: { 'x-request-id': `reg-${i}` } }));
      const events = (await stream.waitFor(requests)).map((m) => parse(m.data));
      await gw.settled();
      await new Promise((r) => setTimeout(r, 50));
      const all = stream.messages.filter((m) => m.event === 'diff').map((m) => parse(m.data));
      assert.equal(all.length, requests, 'one event per regressed request, none for the clean ones');
      assert.deepEqual(new Set(events.map((e) => e.requestId)), new Set(Array.from({ length: requests }, (_, i) => `reg-${i}`)));
      for (const e of events) {
        assert.deepEqual(pointers(e), ['/item/price']);
        assert.deepEqual([e.differences[0]!.primary, e.differences[0]!.shadow], [10, 12]);
        assert.equal(e.noise, 3, 'id, at and nonce masked');
        assert.equal(e.baseline?.upstream, 'n1b');
      }
    } finally {
      stream.close();
    }
    const summary = (await request(gw.adminUrl + '/diffs/summary?route=noisy')).json();
    const s = summary.routes[0].shadows[0];
    assert.equal(s.shadow, 'n3');
    assert.equal(s.baseline, 'n1b');
    assert.ok(s.compared >= 60);
    const byPath = Object.fromEntries(s.paths.map((p: { path: string }) => [p.path, p]));
    assert.equal(byPath['/item/price'].verdict, 'regression');
    assert.equal(byPath['/item/price'].differing, s.differing);
    for (const noisy of ['/id', '/at', '/nonce']) {
      assert.equal(byPath[noisy].verdict, 'noise');
      assert.equal(byPath[noisy].differing, 0);
      assert.equal(byPath[noisy].noise, s.baselined);
    }
    assert.equal(s.paths[0].path, '/item/price', 'real differences rank first');
  });

  test('GET /diffs/summary: per route and shadow target, with rates, intervals and paths', async () => {
    await runConcurrently(10, 5, (i) => request(gw.url + `/shop/s/${i}`));
    await gw.settled();
    const summary = (await request(gw.adminUrl + '/diffs/summary?route=shop')).json();
    assert.equal(summary.routes.length, 1);
    const s = summary.routes[0].shadows[0];
    assert.equal(s.shadow, 'v3');
    assert.equal(s.compared, s.differing);
    assert.equal(s.diffRate, 1);
    assert.deepEqual(
      s.paths.map((p: { path: string; differing: number }) => [p.path, p.differing]),
      [
        ['/items/*/qty', s.compared],
        ['/legacy', s.compared],
        ['/status', s.compared],
      ],
    );
    assert.ok(s.diffRateCi[0] > 0.5 && s.diffRateCi[1] === 1);
    assert.equal(s.latency.primary.count, s.compared);
  });

  test('metrics count comparisons by result and differences by kind', async () => {
    const text = (await request(gw.adminUrl + '/metrics')).text;
    assert.match(text, /gatewayctl_shadow_comparisons_total\{route="shop",upstream="v3",result="diff"\} [1-9]/);
    assert.match(text, /gatewayctl_shadow_comparisons_total\{route="noisy",upstream="n3",result="match"\} [1-9]/);
    assert.match(text, /gatewayctl_shadow_differences_total\{route="shop",upstream="v3",kind="body"\} [1-9]/);
    assert.match(text, /gatewayctl_shadow_differences_total\{route="broken",upstream="dead",kind="error"\} [1-9]/);
  });

  test('GET /status: routes, weights, shadows and live rates', async () => {
    await runConcurrently(10, 5, () => request(gw.url + '/shop/status-check'));
    await gw.settled();
    const status = (await request(gw.adminUrl + '/status')).json();
    assert.equal(status.generation, 1);
    assert.ok(status.windowSeconds > 0);
    const shop = status.routes.find((r: { name: string }) => r.name === 'shop');
    assert.deepEqual(shop.match, { prefix: '/shop' });
    assert.equal(shop.backends[0].upstream, 'v1');
    assert.equal(shop.backends[0].weight, 1);
    assert.equal(shop.backends[0].share, 1);
    assert.ok(shop.backends[0].rps > 0);
    assert.equal(shop.backends[0].errorRate, 0);
    assert.equal(shop.shadows[0].upstream, 'v3');
    assert.equal(shop.shadows[0].percent, 100);
    assert.ok(shop.shadows[0].compared >= 10);
    assert.equal(shop.shadows[0].diffRate, 1);
    assert.equal(status.routes.find((r: { name: string }) => r.name === 'noisy').baseline, 'n1b');
  });
});

describe('diffs with --workers 2', () => {
  test('each worker compares its pairs; the primary serves every event, the summary and the status', async () => {
    const tmp = tempDir();
    const v1 = await startUpstream('v1', json({ n: 1, id: 'same' }));
    const v3 = await startUpstream('v3', json({ n: 2, id: 'same' }));
    const file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(
      file,
      `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  v1: ${v1.url}
  v3: ${v3.url}
routes:
  - name: shop
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v3 }]
`,
    );
    const serve = await spawnServe(['-c', file, '--workers', '2']);
    try {
      const stream = await openSse(serve.adminUrl + '/diffs');
      try {
        // Separate connections, so both workers take a share.
        await runConcurrently(20, 4, (i) => request(serve.url + `/w/${i}`, { headers: { 'x-request-id': `w-${i}` } }));
        const events = (await stream.waitFor(20)).map((m) => parse(m.data));
        assert.equal(new Set(events.map((e) => e.requestId)).size, 20);
        for (const e of events) assert.deepEqual(pointers(e), ['/n']);
      } finally {
        stream.close();
      }
      const s = (await request(serve.adminUrl + '/diffs/summary')).json().routes[0].shadows[0];
      assert.equal(s.compared, 20);
      assert.equal(s.differing, 20);
      const status = (await request(serve.adminUrl + '/status')).json();
      assert.equal(status.routes[0].shadows[0].compared, 20);
      assert.equal(status.routes[0].backends[0].requests, 20);
    } finally {
      await serve.stop();
      await v1.close();
      await v3.close();
      tmp.remove();
    }
  });
});

/** An admin API with only the diff routes, on port 0. */
async function diffAdmin(store: DiffStore, options: Parameters<typeof diffRoutes>[1]): Promise<{ admin: AdminServer; port: number }> {
  const admin = new AdminServer(
    {
      ready: () => true,
      metrics: async () => ({ contentType: 'text/plain', text: '' }),
      config: () => ({}),
      reload: async () => ({ status: 200, body: {} }),
      extraRoutes: diffRoutes(store, options),
    },
    new Logger(() => undefined),
    undefined,
  );
  const { port } = await admin.listen('127.0.0.1', 0);
  return { admin, port };
}

describe('the diff stream and its readers', () => {
  test('idle streams get keep-alive comments', async () => {
    const { admin, port } = await diffAdmin(new DiffStore(), { keepAliveMs: 20 });
    try {
      const text = await new Promise<string>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/diffs', agent: false }, (res) => {
            let seen = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              seen += chunk;
              if (seen.includes(': keep-alive')) {
                res.destroy();
                resolve(seen);
              }
            });
          })
          .on('error', reject);
      });
      assert.match(text, /^retry: 2000\n: gatewayctl diff stream\n\n/);
    } finally {
      await admin.close();
    }
  });

  test('a slow reader never grows the buffer without bound: events are skipped and it is told', async () => {
    const store = new DiffStore({ capacity: 10 });
    const { admin, port } = await diffAdmin(store, { maxBufferedBytes: 64 * 1024 });
    try {
      const req = http.get({ host: '127.0.0.1', port, path: '/diffs', agent: false });
      const res = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
      res.pause();
      const big = 'x'.repeat(8 * 1024);
      const event = {
        time: new Date().toISOString(),
        route: 'r',
        method: 'GET',
        path: '/',
        requestId: 'q',
        primary: { upstream: 'a', status: 200, latencyMs: 1 },
        shadow: { upstream: 'b', status: 200, latencyMs: 1 },
        differences: [{ kind: 'body' as const, path: '', template: '', change: 'text' as const, primary: big, shadow: big }],
        differenceCount: 1,
        noise: 0,
        truncated: false,
      };
      // Far more than the socket buffers hold: the rest must be skipped.
      for (let i = 0; i < 3000; i++) {
        store.addEvent(event);
        if (i % 100 === 0) await new Promise((r) => setImmediate(r));
      }
      const parser = new SseParser(1024 * 1024);
      let delivered = 0;
      let skipped = 0;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        for (const m of parser.push(chunk)) {
          if (m.event === 'diff') delivered++;
          if (m.event === 'lag') skipped += JSON.parse(m.data).skipped;
        }
      });
      res.resume();
      // Each event after catching up carries the notice of what was skipped.
      let added = 3000;
      for (let i = 0; i < 100 && delivered + skipped < added; i++) {
        store.addEvent(event);
        added++;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(delivered + skipped, added, 'every event was either delivered or counted as skipped');
      assert.ok(skipped > 0, 'some events were skipped');
      res.destroy();
    } finally {
      await admin.close();
    }
  });

  test('with admin.token set, /diffs needs the token; /diffs/summary and /status do not', async () => {
    const upstream = await startUpstream('v1');
    after(() => upstream.close());
    const gw = await startGateway(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, token: s3cret-s3cret-s3cret }
upstreams:
  v1: ${upstream.url}
routes:
  - name: all
    backends: [{ upstream: v1 }]
`);
    try {
      assert.equal((await request(gw.adminUrl + '/diffs')).status, 401);
      const ok = await openSse(gw.adminUrl + '/diffs', { authorization: 'Bearer s3cret-s3cret-s3cret' });
      assert.equal(ok.status, 200);
      ok.close();
      assert.equal((await request(gw.adminUrl + '/diffs/summary')).status, 200);
      assert.equal((await request(gw.adminUrl + '/status')).status, 200);
    } finally {
      await gw.close();
    }
  });
});
