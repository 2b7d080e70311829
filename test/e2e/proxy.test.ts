/**
 * The gateway in front of real upstreams, over real sockets.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { deadPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';


describe('forwarding', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    v1 = await startUpstream('v1', (req, res, body) => {
      if (req.url?.startsWith('/shop/hop')) {
        res.writeHead(200, {
          connection: 'x-secret, keep-alive',
          'x-secret': 'hidden',
          'keep-alive': 'timeout=5',
          'proxy-authenticate': 'Basic',
          'x-visible': 'yes',
        });
        res.end('ok');
        return;
      }
      if (req.url?.startsWith('/shop/status/')) {
        res.writeHead(Number(req.url.split('/')[3]), { 'content-type': 'text/plain' });
        res.end('status');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'v1' });
      res.end(JSON.stringify({ upstream: 'v1', method: req.method, url: req.url, bodyBytes: body.length }));
    });
    v2 = await startUpstream('v2');
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  v1: ${v1.url}
  v2: ${v2.url}
routes:
  - name: tenant
    match: { prefix: /shop, headers: { x-tenant: acme } }
    backends: [{ upstream: v2 }]
  - name: api-host
    match: { host: api.example.com }
    backends: [{ upstream: v2 }]
  - name: writes
    match: { prefix: /orders, methods: [POST, PUT] }
    backends: [{ upstream: v2 }]
  - name: shop
    match: { prefix: /shop }
    backends: [{ upstream: v1 }]
`);
  });
  after(async () => {
    await gw.close();
    await v1.close();
    await v2.close();
  });

  test('path and query reach the upstream byte for byte', async () => {
    const target = '/shop/items/a%20b?q=%E2%9C%93&x=1&x=2&empty=&flag';
    const r = await request(gw.url + target);
    assert.equal(r.status, 200);
    assert.equal(r.json().url, target);
  });

  test('request bodies stream through intact', async () => {
    const body = Buffer.alloc(300_000, 'x');
    const r = await request(gw.url + '/shop/upload', { method: 'POST', body });
    assert.equal(r.json().bodyBytes, body.length);
    const last = v1.received.at(-1)!;
    assert.ok(last.body.equals(body));
  });

  test('first match wins, on prefix, method, header and host', async () => {
    assert.equal((await request(gw.url + '/shop/x')).json().upstream, 'v1');
    assert.equal((await request(gw.url + '/shop/x', { headers: { 'x-tenant': 'acme' } })).json().upstream, 'v2');
    assert.equal((await request(gw.url + '/x', { headers: { host: 'API.example.com:8080' } })).json().upstream, 'v2');
    assert.equal((await request(gw.url + '/orders', { method: 'POST', body: '{}' })).json().upstream, 'v2');
    assert.equal((await request(gw.url + '/orders', { method: 'GET' })).status, 404);
    assert.equal((await request(gw.url + '/shopping')).status, 404);
  });

  test('no route: 404 with {error, requestId}', async () => {
    const r = await request(gw.url + '/nowhere', { headers: { 'x-request-id': 'abc-123' } });
    assert.equal(r.status, 404);
    assert.deepEqual(r.json(), { error: 'no route matches this request', code: 'GW_NOT_FOUND', requestId: 'abc-123' });
    assert.equal(r.headers['content-type'], 'application/json');
  });

  test('request header hygiene', async () => {
    await request(gw.url + '/shop/hygiene', {
      headers: {
        connection: 'keep-alive, x-drop-me',
        'x-drop-me': '1',
        'keep-alive': 'timeout=1',
        te: 'trailers',
        'proxy-authorization': 'Basic Zm9v',
        'x-shadow-request': '1',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-proto': 'https',
        'x-real-ip': '6.6.6.6',
        forwarded: 'for=6.6.6.6;proto=https',
        'x-keep': 'kept',
      },
    });
    const h = v1.received.at(-1)!.headers;
    for (const gone of ['x-drop-me', 'keep-alive', 'te', 'proxy-authorization', 'x-shadow-request']) {
      assert.equal(h[gone], undefined, `${gone} must not reach the upstream`);
    }
    assert.equal(h['x-keep'], 'kept');
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.match(h['x-forwarded-host'] as string, /^127\.0\.0\.1:\d+$/);
    assert.equal(h['x-real-ip'], '127.0.0.1');
    assert.match(h['forwarded'] as string, /^for=127\.0\.0\.1;proto=http;host="127\.0\.0\.1:\d+"$/);
    assert.match(h['x-request-id'] as string, /^[0-9a-f-]{36}$/);
  });

  test('x-request-id: the client value is kept and echoed; else a new one', async () => {
    const r = await request(gw.url + '/shop/id', { headers: { 'x-request-id': 'req-42' } });
    assert.equal(v1.received.at(-1)!.headers['x-request-id'], 'req-42');
    assert.equal(r.headers['x-request-id'], 'req-42');
    const r2 = await request(gw.url + '/shop/id', { headers: { 'x-request-id': 'bad id with spaces' } });
    assert.notEqual(r2.headers['x-request-id'], 'bad id with spaces');
    assert.equal(v1.received.at(-1)!.headers['x-request-id'], r2.headers['x-request-id']);
  });

  test('response hop-by-hop headers do not reach the client', async () => {
    const r = await request(gw.url + '/shop/hop');
    assert.equal(r.headers['x-visible'], 'yes');
    assert.equal(r.headers['x-secret'], undefined);
    assert.equal(r.headers['proxy-authenticate'], undefined);
    assert.notEqual(r.headers['keep-alive'], 'timeout=5');
  });

  test('upstream statuses pass through and are counted by route, upstream and code', async () => {
    for (const code of [201, 404, 503]) assert.equal((await request(gw.url + `/shop/status/${code}`)).status, code);
    const metrics = (await request(gw.adminUrl + '/metrics')).text;
    assert.equal(metricValue(metrics, METRIC.requests, { route: 'shop', upstream: 'v1', code: '503' }), 1);
    assert.equal(metricValue(metrics, METRIC.requests, { route: 'unmatched', upstream: 'none', code: '404' }) >= 1, true);
    assert.ok(!metrics.includes('/shop/status'), 'raw paths never become labels');
    assert.match(metrics, /process_cpu_seconds_total/);
  });

  test('admin: healthz, readyz, config', async () => {
    assert.equal((await request(gw.adminUrl + '/healthz')).status, 200);
    assert.equal((await request(gw.adminUrl + '/readyz')).status, 200);
    const config = (await request(gw.adminUrl + '/config')).json();
    assert.equal(config.generation, 1);
    assert.match(config.hash, /^[0-9a-f]{64}$/);
    assert.equal(config.config.routes.length, 4);
    assert.ok(config.source.endsWith('gateway.yaml'));
    assert.ok(!Number.isNaN(Date.parse(config.loadedAt)));
  });
});

describe('trusted proxies', () => {
  test('X-Forwarded-*, Forwarded and X-Real-IP from a trusted peer are extended or kept, not replaced', async () => {
    const upstream = await startUpstream('v1');
    const trusted = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
trustedProxies: [127.0.0.0/8]
upstreams: { v1: ${upstream.url} }
routes: [{ name: all, backends: [{ upstream: v1 }] }]
`);
    try {
      await request(trusted.url + '/t', {
        headers: {
          'x-forwarded-for': '203.0.113.7',
          'x-forwarded-proto': 'https',
          'x-forwarded-host': 'shop.example.com',
          'x-real-ip': '203.0.113.7',
          forwarded: 'for=203.0.113.7;proto=https;host=shop.example.com',
        },
      });
      const h = upstream.received.at(-1)!.headers;
      assert.equal(h['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
      assert.equal(h['x-forwarded-proto'], 'https');
      assert.equal(h['x-forwarded-host'], 'shop.example.com');
      assert.equal(h['x-real-ip'], '203.0.113.7');
      assert.match(h['forwarded'] as string, /^for=203\.0\.113\.7;proto=https;host=shop\.example\.com, for=127\.0\.0\.1;proto=http;host="127\.0\.0\.1:\d+"$/);
      // Without them, a trusted peer's hop is the whole of it.
      await request(trusted.url + '/t');
      const plain = upstream.received.at(-1)!.headers;
      assert.equal(plain['x-real-ip'], '127.0.0.1');
      assert.match(plain['forwarded'] as string, /^for=127\.0\.0\.1;proto=http;host="127\.0\.0\.1:\d+"$/);
    } finally {
      await trusted.close();
      await upstream.close();
    }
  });
});

describe('upstream failures', () => {
  let slow: TestUpstream;
  let resetting: TestUpstream;
  let hanging: TestUpstream;
  let gw: TestGateway;
  const hangingClosed: number[] = [];
  before(async () => {
    slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => res.end('late'), 1500);
    });
    resetting = await startUpstream('resetting', (req, res) => {
      if (req.url === '/reset/mid') {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('partial');
        setTimeout(() => res.socket?.destroy(), 20);
      } else req.socket.destroy();
    });
    hanging = await startUpstream('hanging', (req) => {
      req.socket.on('close', () => hangingClosed.push(Date.now()));
    });
    const dead = await deadPort();
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  dead: http://127.0.0.1:${dead}
  slow: { url: ${slow.url}, timeout: 200ms }
  resetting: ${resetting.url}
  hanging: ${hanging.url}
routes:
  - { name: dead, match: { prefix: /dead }, backends: [{ upstream: dead }] }
  - { name: slow, match: { prefix: /slow }, backends: [{ upstream: slow }] }
  - { name: reset, match: { prefix: /reset }, backends: [{ upstream: resetting }] }
  - { name: hang, match: { prefix: /hang }, backends: [{ upstream: hanging }] }
`);
  });
  after(async () => {
    await gw.close();
    await Promise.all([slow.close(), resetting.close(), hanging.close()]);
  });

  test('connection refused: 502 with JSON, counted as connect', async () => {
    const r = await request(gw.url + '/dead');
    assert.equal(r.status, 502);
    assert.equal(r.json().error, 'upstream unavailable');
    assert.equal(r.json().code, 'GW_UPSTREAM_FAILED');
    assert.ok(r.json().requestId);
    const metrics = (await request(gw.adminUrl + '/metrics')).text;
    assert.equal(metricValue(metrics, METRIC.upstreamErrors, { route: 'dead', reason: 'connect' }), 1);
    assert.equal(metricValue(metrics, METRIC.requests, { route: 'dead', code: '502' }), 1);
  });

  test('response timeout: 504, counted as timeout', async () => {
    const started = Date.now();
    const r = await request(gw.url + '/slow');
    assert.equal(r.status, 504);
    assert.equal(r.json().code, 'GW_UPSTREAM_TIMEOUT');
    assert.ok(Date.now() - started < 1200, 'answered at the timeout, not when the upstream did');
    const metrics = (await request(gw.adminUrl + '/metrics')).text;
    assert.equal(metricValue(metrics, METRIC.upstreamErrors, { route: 'slow', reason: 'timeout' }), 1);
  });

  test('reset before the response: 502, counted as reset', async () => {
    const r = await request(gw.url + '/reset/early');
    assert.equal(r.status, 502);
    const metrics = (await request(gw.adminUrl + '/metrics')).text;
    assert.equal(metricValue(metrics, METRIC.upstreamErrors, { route: 'reset', reason: 'reset' }), 1);
  });

  test('reset mid-body: the client connection is cut, not given a short body as complete', async () => {
    await assert.rejects(request(gw.url + '/reset/mid'));
  });

  test('a client that goes away tears down its upstream request', async () => {
    const before = hangingClosed.length;
    const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /hang HTTP/1.1\r\nhost: x\r\n\r\n');
    await hanging.waitFor(hanging.received.length + 1);
    const aborted = Date.now();
    socket.destroy();
    const deadline = Date.now() + 2000;
    while (hangingClosed.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(hangingClosed.length, before + 1, 'upstream socket closed');
    assert.ok(hangingClosed.at(-1)! - aborted < 1000);
  });
});

describe('canary weights', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  const config = (a: string, b: string) => `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { v1: ${a}, v2: ${b} }
routes:
  - name: split
    match: { prefix: /split }
    backends: [{ upstream: v1, weight: 90 }, { upstream: v2, weight: 10 }]
  - name: sticky
    match: { prefix: /sticky }
    backends: [{ upstream: v1, weight: 90 }, { upstream: v2, weight: 10 }]
    sticky: { header: x-user-id }
  - name: cookie
    match: { prefix: /cookie }
    backends: [{ upstream: v1, weight: 50 }, { upstream: v2, weight: 50 }]
    sticky: { cookie: uid }
`;
  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
  });
  after(async () => {
    await v1.close();
    await v2.close();
  });

  test('a 90/10 split over 2,000 requests is within one point', async () => {
    const gw = await startGateway(config(v1.url, v2.url));
    try {
      const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 20 });
      const results = await runConcurrently(2000, 20, async () => (await request(gw.url + '/split', { agent })).json().upstream);
      agent.destroy();
      const share = results.filter((u) => u === 'v2').length / results.length;
      assert.ok(Math.abs(share - 0.1) <= 0.01, `canary share ${share}`);
    } finally {
      await gw.close();
    }
  });

  test('sticky keys keep their backend across two replicas and a restart', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `user-${i}`);
    const pick = async (gw: TestGateway, path: string, headers: (k: string) => Record<string, string>) =>
      Promise.all(keys.map(async (k) => (await request(gw.url + path, { headers: headers(k) })).json().upstream as string));
    const byHeader = (k: string) => ({ 'x-user-id': k });
    const byCookie = (k: string) => ({ cookie: `theme=dark; uid=${k}; x=1` });

    const replicaA = await startGateway(config(v1.url, v2.url));
    const replicaB = await startGateway(config(v1.url, v2.url));
    const a = await pick(replicaA, '/sticky', byHeader);
    const b = await pick(replicaB, '/sticky', byHeader);
    const again = await pick(replicaA, '/sticky', byHeader);
    const cookieA = await pick(replicaA, '/cookie', byCookie);
    await replicaA.close();
    await replicaB.close();
    const restarted = await startGateway(config(v1.url, v2.url));
    const c = await pick(restarted, '/sticky', byHeader);
    const cookieC = await pick(restarted, '/cookie', byCookie);
    await restarted.close();

    assert.deepEqual(b, a, 'two replicas agree');
    assert.deepEqual(again, a, 'repeat requests agree');
    assert.deepEqual(c, a, 'a restarted gateway agrees');
    assert.deepEqual(cookieC, cookieA, 'cookie keys agree across restarts');
    const canary = a.filter((u) => u === 'v2').length;
    assert.ok(canary > 10 && canary < 55, `canary got ${canary} of 300 keys`);
    const half = cookieA.filter((u) => u === 'v2').length;
    assert.ok(half > 110 && half < 190, `cookie 50/50 gave ${half} of 300`);
  });
});
