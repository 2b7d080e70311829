/**
 * Shadow copies against real upstreams: shares, safety defaults, fidelity,
 * and isolation from slow, hung and dead shadows.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnServe, type ServeProcess } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { percentile, request, runConcurrently } from '../helpers/http.js';
import { hungShadowConfig } from '../helpers/configs.js';
import { metricValue } from '../helpers/metrics.js';
import { openSse } from '../helpers/sse.js';
import type { DiffEvent } from '../../src/diff/types.js';
import { deadPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('shadow copies', () => {
  let primary: TestUpstream;
  let shadow: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    primary = await startUpstream('primary');
    shadow = await startUpstream('shadow', (_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"broken":true}');
    });
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { primary: ${primary.url}, shadow: ${shadow.url} }
# Exact counts: the test's own clients and upstreams share this loop and
# would read as a saturated gateway (load shedding has tests of its own).
limits: { shadowBodyBytes: 1kb, shadowShedAbove: 1 }
routes:
  - name: half
    match: { prefix: /half }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: shadow, percent: 50 }]
  - name: safe
    match: { prefix: /safe }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: shadow }]
  - name: writes
    match: { prefix: /writes }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: shadow, methods: [POST, PUT] }]
  - name: edited
    match: { prefix: /edited }
    backends: [{ upstream: primary }]
    shadow:
      - upstream: shadow
        host: dark.internal
        headers: { set: { x-profile: dark }, remove: [authorization] }
  - name: stripped
    match: { prefix: /stripped }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: shadow, credentials: strip, headers: { set: { x-test-user: dark-tester } } }]
`);
  });
  after(async () => {
    await gw.close();
    await primary.close();
    await shadow.close();
  });

  const shadowed = (prefix: string) => shadow.received.filter((r) => r.url.startsWith(prefix));

  test('percent: exactly half of 200 requests are mirrored', async () => {
    await runConcurrently(200, 10, () => request(gw.url + '/half/x'));
    await until(() => shadowed('/half').length >= 100);
    await sleep(100);
    assert.equal(shadowed('/half').length, 100);
    const metrics = (await request(gw.adminUrl + '/metrics')).text;
    assert.equal(metricValue(metrics, METRIC.shadowRequests, { route: 'half', outcome: 'completed' }), 100);
  });

  test('by default only GET, HEAD and OPTIONS are mirrored', async () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'DELETE', 'PATCH']) {
      await request(gw.url + `/safe/${method}`, { method, body: method === 'GET' || method === 'HEAD' ? undefined : '{}' });
    }
    await until(() => shadowed('/safe').length >= 3);
    await sleep(100);
    assert.deepEqual(shadowed('/safe').map((r) => r.method).sort(), ['GET', 'HEAD', 'OPTIONS']);
  });

  test('opted-in POST bodies arrive byte-identical, with Content-Length and chunked', async () => {
    const body = randomBytes(900);
    await request(gw.url + '/writes/fixed', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    await new Promise<void>((resolve, reject) => {
      const req = http.request(gw.url + '/writes/chunked', { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.write(body.subarray(0, 300));
      setTimeout(() => req.end(body.subarray(300)), 30);
    });
    await until(() => shadowed('/writes').length >= 2);
    for (const copy of shadowed('/writes')) assert.ok(copy.body.equals(body), `${copy.url} body differs`);
    const fixedPrimary = primary.received.find((r) => r.url === '/writes/fixed')!;
    assert.ok(fixedPrimary.body.equals(body));
  });

  test('bodies over limits.shadowBodyBytes are not mirrored and counted as skipped', async () => {
    const big = randomBytes(2048);
    await request(gw.url + '/writes/big', { method: 'POST', body: big });
    const r = await new Promise<number>((resolve, reject) => {
      const req = http.request(gw.url + '/writes/big-chunked', { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      req.write(big.subarray(0, 1000));
      req.end(big.subarray(1000));
    });
    assert.equal(r, 200);
    await sleep(100);
    assert.equal(shadowed('/writes/big').length, 0);
    assert.ok(primary.received.find((x) => x.url === '/writes/big-chunked')!.body.equals(big), 'the primary still got all of it');
    const metrics = (await request(gw.adminUrl + '/metrics')).text;
    assert.equal(metricValue(metrics, METRIC.shadowRequests, { route: 'writes', outcome: 'skipped' }), 2);
  });

  test('copies carry x-shadow-request: 1 and the same x-request-id; Host is unchanged', async () => {
    await request(gw.url + '/safe/pairing', { headers: { 'x-request-id': 'pair-1', host: 'shop.example.com' } });
    await until(() => shadowed('/safe/pairing').length === 1);
    const copy = shadowed('/safe/pairing')[0]!;
    const original = primary.received.find((r) => r.url === '/safe/pairing')!;
    assert.equal(copy.headers['x-shadow-request'], '1');
    assert.equal(original.headers['x-shadow-request'], undefined);
    assert.equal(copy.headers['x-request-id'], 'pair-1');
    assert.equal(original.headers['x-request-id'], 'pair-1');
    assert.equal(copy.headers.host, 'shop.example.com');
    assert.equal(original.headers.host, 'shop.example.com');
    assert.equal(copy.headers['x-forwarded-for'], original.headers['x-forwarded-for']);
  });

  const credentials = {
    authorization: 'Bearer user-secret',
    cookie: 'session=abc; theme=dark',
    'proxy-authorization': 'Basic dXNlcjpwYXNz',
    'x-api-key': 'k-123',
    'x-auth-token': 't-456',
    'x-session-id': 's-789',
    'x-keep': 'kept',
  };
  const secretQuery = '?q=shoes&api_key=k1&access_token=t2&page=2&Session=s3';

  test('credentials: strip removes every credential header and secret query parameter from the copy, not from the primary', async () => {
    await request(gw.url + '/stripped/x' + secretQuery, { headers: credentials });
    await until(() => shadowed('/stripped').length === 1);
    const copy = shadowed('/stripped')[0]!;
    const original = primary.received.find((r) => r.url.startsWith('/stripped/x'))!;
    for (const name of ['authorization', 'cookie', 'proxy-authorization', 'x-api-key', 'x-auth-token', 'x-session-id']) {
      assert.equal(copy.headers[name], undefined, `${name} must not reach the shadow`);
    }
    assert.equal(copy.url, '/stripped/x?q=shoes&page=2');
    assert.equal(copy.headers['x-keep'], 'kept');
    assert.equal(copy.headers['x-test-user'], 'dark-tester', 'header edits apply after stripping');
    assert.equal(copy.headers['x-shadow-request'], '1');
    // The user's own request is untouched (Proxy-Authorization is hop-by-hop and never forwarded).
    assert.equal(original.url, '/stripped/x' + secretQuery);
    assert.equal(original.headers.authorization, 'Bearer user-secret');
    assert.equal(original.headers.cookie, 'session=abc; theme=dark');
    assert.equal(original.headers['x-api-key'], 'k-123');
  });

  test('credentials: forward (the default) passes them to the copy as the primary gets them', async () => {
    await request(gw.url + '/safe/creds' + secretQuery, { headers: credentials });
    await until(() => shadowed('/safe/creds').length === 1);
    const copy = shadowed('/safe/creds')[0]!;
    assert.equal(copy.url, '/safe/creds' + secretQuery);
    for (const name of ['authorization', 'cookie', 'x-api-key', 'x-auth-token', 'x-session-id']) {
      assert.equal(copy.headers[name], credentials[name as keyof typeof credentials], name);
    }
  });

  test('a client-sent x-shadow-request never reaches the primary', async () => {
    await request(gw.url + '/safe/spoof', { headers: { 'x-shadow-request': '1' } });
    assert.equal(primary.received.find((r) => r.url === '/safe/spoof')!.headers['x-shadow-request'], undefined);
  });

  test('per-target header edits and Host override apply to the copy only', async () => {
    await request(gw.url + '/edited/x', { headers: { authorization: 'Bearer secret', host: 'shop.example.com' } });
    await until(() => shadowed('/edited').length === 1);
    const copy = shadowed('/edited')[0]!;
    const original = primary.received.find((r) => r.url === '/edited/x')!;
    assert.equal(copy.headers.authorization, undefined);
    assert.equal(copy.headers['x-profile'], 'dark');
    assert.equal(copy.headers.host, 'dark.internal');
    assert.equal(original.headers.authorization, 'Bearer secret');
    assert.equal(original.headers['x-profile'], undefined);
    assert.equal(original.headers.host, 'shop.example.com');
  });

  test("the user always gets the primary's answer", async () => {
    const r = await request(gw.url + '/safe/answer');
    assert.equal(r.status, 200);
    assert.equal(r.json().upstream, 'primary');
  });
});

describe('shadow isolation: slow, hung, refused and resetting shadows', () => {
  let primary: TestUpstream;
  let slow: TestUpstream;
  let hung: TestUpstream;
  let resetting: TestUpstream;
  let serve: ServeProcess;
  const tmp = tempDir();
  before(async () => {
    primary = await startUpstream('primary', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
    slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => res.end('late'), 1500);
    });
    hung = await startUpstream('hung', () => undefined);
    resetting = await startUpstream('resetting', (req) => {
      req.socket.destroy();
    });
    const dead = await deadPort();
    const file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(
      file,
      `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  primary: ${primary.url}
  slow: ${slow.url}
  hung: ${hung.url}
  dead: http://127.0.0.1:${dead}
  resetting: ${resetting.url}
timeouts: { shadow: 3s }
# Exact outcome counts, and isolation by pools and timeouts alone: 1,500
# requests ten at a time can saturate the gateway, which would shed copies,
# and the 1,200 copies can all be in flight at once when the machine is slow
# (the 3 s and 1.5 s shadows hold theirs), past the default budget of 1,000.
limits: { shadowShedAbove: 1, shadowInflight: 2000 }
routes:
  - { name: none, match: { prefix: /none }, backends: [{ upstream: primary }] }
  - { name: slow, match: { prefix: /slow }, backends: [{ upstream: primary }], shadow: [{ upstream: slow }] }
  - { name: hung, match: { prefix: /hung }, backends: [{ upstream: primary }], shadow: [{ upstream: hung }] }
  - { name: dead, match: { prefix: /dead }, backends: [{ upstream: primary }], shadow: [{ upstream: dead }] }
  - { name: reset, match: { prefix: /reset }, backends: [{ upstream: primary }], shadow: [{ upstream: resetting }] }
`,
    );
    // Its own process, as in production: the test's client and upstreams
    // must not share the gateway's event loop.
    serve = await spawnServe(['-c', file]);
  });
  after(async () => {
    await serve.stop('SIGKILL');
    await Promise.all([primary.close(), slow.close(), hung.close(), resetting.close()]);
    tmp.remove();
  });

  test("the primary's p95 latency stays within 1.5x (+5 ms) of no shadow, and every answer is right", async (t) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    const routes = ['none', 'slow', 'hung', 'dead', 'reset'];
    const latencies: Record<string, number[]> = Object.fromEntries(routes.map((r) => [r, []]));
    // Every route's requests run mixed in one stream, so whatever else the
    // machine is doing at a moment hits every route alike.
    await runConcurrently(routes.length * 300, 10, async (i) => {
      const route = routes[i % routes.length]!;
      const started = performance.now();
      const r = await request(`${serve.url}/${route}/item`, { agent });
      latencies[route]!.push(performance.now() - started);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { ok: true });
    });
    agent.destroy();
    const p95 = Object.fromEntries(routes.map((r) => [r, percentile(latencies[r]!, 95)]));
    t.diagnostic(`p95 ms: ${routes.map((r) => `${r}=${p95[r]!.toFixed(2)}`).join(' ')}`);
    for (const route of routes.slice(1)) {
      assert.ok(p95[route]! <= p95['none']! * 1.5 + 5, `${route}: p95 ${p95[route]!.toFixed(2)} ms vs ${p95['none']!.toFixed(2)} ms without shadow`);
    }
  });

  test('outcomes are counted: completed, timeout, error', async () => {
    // Every copy ends by the shadow timeout (3 s); on a loaded machine the count may come a little later.
    await sleep(3000);
    let metrics = (await request(serve.adminUrl + '/metrics')).text;
    for (const until = Date.now() + 10_000; metricValue(metrics, METRIC.shadowInflight) > 0 && Date.now() < until; ) {
      await sleep(100);
      metrics = (await request(serve.adminUrl + '/metrics')).text;
    }
    const outcome = (route: string, o: string) => metricValue(metrics, METRIC.shadowRequests, { route, outcome: o });
    const counted = metrics.split('\n').filter((l) => l.startsWith(`${METRIC.shadowRequests}{`)).join('\n');
    assert.equal(outcome('slow', 'completed'), 300, counted);
    assert.equal(outcome('hung', 'timeout'), 300, counted);
    assert.equal(outcome('dead', 'error'), 300, counted);
    assert.equal(outcome('reset', 'error'), 300, counted);
    assert.equal(metricValue(metrics, METRIC.shadowInflight), 0);
  });
});

describe('shadow memory', () => {
  test('the live heap stays flat over 3,000 requests against a shadow that never answers', async (t) => {
    const probe = spawn(process.execPath, ['--expose-gc', fileURLToPath(new URL('../helpers/memory-probe.js', import.meta.url)), '6', '500'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    probe.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise((resolve) => probe.once('exit', resolve));
    assert.equal(code, 0);
    const rows = out.trim().split('\n').map((l) => JSON.parse(l) as { requests: number; failed: number; heapUsed: number; rss: number });
    t.diagnostic(rows.map((r) => `${r.requests}: heap ${(r.heapUsed / 1048576).toFixed(1)} MB, rss ${(r.rss / 1048576).toFixed(0)} MB`).join('; '));
    assert.ok(rows.every((r) => r.failed === 0), 'every user response is correct');
    const growth = (rows.at(-1)!.heapUsed - rows[1]!.heapUsed) / 1048576;
    assert.ok(growth < 3, `live heap grew ${growth.toFixed(1)} MB over 2,000 requests`);
  });
});

describe('shadow in-flight budget', () => {
  let primary: TestUpstream;
  let hung: TestUpstream;
  const tmp = tempDir();
  before(async () => {
    primary = await startUpstream('primary', (_req, res) => {
      res.end('ok');
    });
    hung = await startUpstream('hung', () => undefined);
  });
  after(async () => {
    await primary.close();
    await hung.close();
    tmp.remove();
  });

  test('3,000 requests against a shadow that never answers: budget held, drops counted, RSS flat', async (t) => {
    const file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(file, hungShadowConfig(primary.url, hung.url));
    const serve = await spawnServe(['-c', file]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    const rss = async () => metricValue((await request(serve.adminUrl + '/metrics')).text, 'process_resident_memory_bytes');
    const inflightSeen: number[] = [];
    try {
      let failed = 0;
      const run = (n: number) =>
        runConcurrently(n, 20, async (i) => {
          const r = await request(`${serve.url}/x/${i}`, { agent });
          if (r.status !== 200 || r.text !== 'ok') failed++;
        });
      await run(1000);
      const rssAfterWarmup = await rss();
      const rssSeen: number[] = [];
      for (let batch = 0; batch < 4; batch++) {
        await run(500);
        inflightSeen.push(metricValue((await request(serve.adminUrl + '/metrics')).text, METRIC.shadowInflight));
        rssSeen.push(await rss());
      }
      const rssAtEnd = rssSeen.at(-1)!;
      const metrics = (await request(serve.adminUrl + '/metrics')).text;
      assert.equal(failed, 0, 'every user response is correct');
      assert.ok(inflightSeen.every((v) => v <= 200), `in-flight gauge ${inflightSeen.join(',')}`);
      assert.equal(Math.max(...inflightSeen), 200);
      const dropped = metricValue(metrics, METRIC.shadowRequests, { outcome: 'dropped' });
      assert.equal(dropped, 3000 - 200);
      const mb = (bytes: number) => (bytes / 1048576).toFixed(1);
      t.diagnostic(`RSS after 1000 requests: ${mb(rssAfterWarmup)} MB, then ${rssSeen.map(mb).join(', ')} MB; in-flight ${inflightSeen.join(',')}; dropped ${dropped}`);
      // RSS follows V8's heap sizing (Node 24 grows it more lazily than 20),
      // so it is only bounded here; the live heap's flatness is the next test.
      assert.ok(rssAtEnd / 1048576 < 300, `RSS ${mb(rssAtEnd)} MB`);
    } finally {
      agent.destroy();
      await serve.stop('SIGKILL');
    }
  });

  // Reported: 1,000 GETs with 1 MB bodies to a hung shadow took the gateway
  // from 140 MB to 1,072 MB with default limits: each pending pair held its
  // request copy and its captured 1 MB primary answer. The byte budget
  // (limits.shadowInflightBytes, default 32mb) bounds both.
  test('1,000 requests with 1 MB bodies and 1 MB answers against a hung shadow, default limits: RSS under 300 MB', async (t) => {
    const answer = Buffer.alloc(1_000_000, 'a');
    const big = await startUpstream('big', (_req, res) => {
      res.end(answer);
    });
    // On this loaded run an idle pooled connection can reach Node's 5 s
    // keep-alive close just as the gateway reuses it (a 502 "reset" with no
    // retry): a race of the pool, not of what this test measures.
    big.server.keepAliveTimeout = 120_000;
    const file = join(tmp.dir, 'bytes.yaml');
    writeFileSync(
      file,
      `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { primary: ${big.url}, hung: ${hung.url} }
routes:
  - name: all
    backends: [{ upstream: primary }]
    shadow: [{ upstream: hung }]
`,
    );
    const serve = await spawnServe(['-c', file]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    const body = randomBytes(1_000_000);
    try {
      const metricsText = async () => (await request(serve.adminUrl + '/metrics')).text;
      const rssBefore = metricValue(await metricsText(), 'process_resident_memory_bytes');
      let failed = 0;
      const failures = new Set<string>();
      let rssPeak = 0;
      const copyBodies: number[] = [];
      // The earlier test's copies (no bodies) went to the same upstream.
      hung.received.length = 0;
      await runConcurrently(1000, 20, async (i) => {
        const r = await request(`${serve.url}/x/${i}`, { agent, body, timeoutMs: 30_000 });
        if (r.status !== 200 || r.body.length !== answer.length) {
          failed++;
          failures.add(`${r.status} ${r.body.length === answer.length ? '' : r.text.slice(0, 200)}`);
        }
        if (i % 100 === 99) {
          // A GET copy carries its body framed by its length, whole.
          for (const copy of hung.received) copyBodies.push(copy.body.length);
          // The test upstreams keep what they received; that is not the gateway's.
          big.received.length = 0;
          hung.received.length = 0;
          rssPeak = Math.max(rssPeak, metricValue(await metricsText(), 'process_resident_memory_bytes'));
        }
      });
      const metrics = await metricsText();
      rssPeak = Math.max(rssPeak, metricValue(metrics, 'process_resident_memory_bytes'));
      const dropped = metricValue(metrics, METRIC.shadowRequests, { outcome: 'dropped' });
      const mb = (bytes: number) => (bytes / 1048576).toFixed(0);
      const outcomes = ['completed', 'timeout', 'error'].map((outcome) => `${outcome} ${metricValue(metrics, METRIC.shadowRequests, { outcome })}`).join(', ');
      t.diagnostic(`RSS ${mb(rssBefore)} MB before, peak ${mb(rssPeak)} MB; dropped ${dropped} copies, ${outcomes}, in flight ${metricValue(metrics, METRIC.shadowInflight)}`);
      assert.equal(failed, 0, `every user response is correct: ${[...failures].join('; ')}`);
      assert.ok(dropped > 500, `copies beyond the byte budget are dropped: ${dropped}`);
      assert.ok(copyBodies.length > 0 && copyBodies.every((n) => n === body.length), `copies arrive whole: ${copyBodies.slice(0, 5).join(', ')}`);
      assert.ok(rssPeak / 1048576 < 300, `RSS peak ${mb(rssPeak)} MB`);
    } finally {
      agent.destroy();
      await serve.stop('SIGKILL');
      await big.close();
    }
  });
});

describe('shadow answers held by the copying thread', () => {
  const tmp = tempDir();
  after(() => tmp.remove());

  // Found measuring 6 MB answers: the copying thread kept each answer's
  // captured prefix (up to diff.maxBodyBytes) while the copy was in flight,
  // and the byte budget counted it only once the answer had arrived. 300
  // shadow answers that sent 1 MB and then paused held 380 MB (86 MB idle).
  test('400 shadow answers that pause after 1 MB: captures in flight stay within the byte budget, pairs left out are counted', async (t) => {
    const primary = await startUpstream('primary', (_req, res) => {
      res.end('{"ok":true}');
    });
    const prefix = Buffer.alloc(1_000_000, 'x');
    const pausing = await startUpstream('pausing', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(prefix.length + 1) });
      res.write(prefix);
      setTimeout(() => res.end('y'), 3000).unref();
    });
    const file = join(tmp.dir, 'pausing.yaml');
    writeFileSync(
      file,
      `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
timeouts: { shadow: 20s }
# The byte budget is what is tested: 40 requests at once capturing 1 MB
# answers saturate the serving thread, which would shed copies.
limits: { shadowShedAbove: 1 }
upstreams: { primary: ${primary.url}, pausing: ${pausing.url} }
routes:
  - name: all
    backends: [{ upstream: primary }]
    shadow: [{ upstream: pausing }]
`,
    );
    const serve = await spawnServe(['-c', file]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 40 });
    try {
      const metricsText = async () => (await request(serve.adminUrl + '/metrics')).text;
      const rssBefore = metricValue(await metricsText(), 'process_resident_memory_bytes');
      let failed = 0;
      let rssPeak = 0;
      await runConcurrently(400, 40, async (i) => {
        const r = await request(`${serve.url}/item/${i}`, { agent });
        if (r.status !== 200) failed++;
        if (i % 50 === 49) rssPeak = Math.max(rssPeak, metricValue(await metricsText(), 'process_resident_memory_bytes'));
      });
      // The copies now hold what the shadow sent until it ends the answers;
      // then the pairs are compared (or counted as not) in a comparing thread.
      let metrics = await metricsText();
      const settled = () => metricValue(metrics, METRIC.shadowComparisons) + metricValue(metrics, METRIC.compareDropped);
      for (let i = 0; i < 150 && (metricValue(metrics, METRIC.shadowInflight) > 0 || settled() < 400); i++) {
        rssPeak = Math.max(rssPeak, metricValue(metrics, 'process_resident_memory_bytes'));
        await new Promise((r) => setTimeout(r, 200));
        metrics = await metricsText();
      }
      const compared = metricValue(metrics, METRIC.shadowComparisons);
      const notCompared = metricValue(metrics, METRIC.compareDropped);
      const mb = (bytes: number) => (bytes / 1048576).toFixed(0);
      t.diagnostic(`RSS ${mb(rssBefore)} MB before, peak ${mb(rssPeak)} MB; ${compared} pairs compared, ${notCompared} not`);
      assert.equal(failed, 0, 'every user response is correct');
      assert.equal(metricValue(metrics, METRIC.shadowInflight), 0, 'the copies ended');
      assert.equal(metricValue(metrics, METRIC.shadowRequests, { outcome: 'completed' }), 400);
      // Growth, not the peak: Node 24 starts about 20 MB higher. Before the bound it grew
      // 440-460 MB (Node 20 and 24); with it 160-230 MB.
      assert.ok((rssPeak - rssBefore) / 1048576 < 300, `RSS grew ${mb(rssPeak - rssBefore)} MB, to ${mb(rssPeak)} MB`);
      // 400 MB of answers through a 32 MB budget: most pairs are left out, and each is counted.
      assert.ok(notCompared > 300, `${notCompared} pairs counted as not compared`);
      assert.equal(compared + notCompared, 400, 'every pair is compared or counted as not compared');
    } finally {
      agent.destroy();
      await serve.stop('SIGKILL');
      await primary.close();
      await pausing.close();
    }
  });
});

/** Starts test/helpers/big-answers.ts in its own process: its upstreams' writes cost this process nothing. */
async function startBigAnswers(bytes: number): Promise<{ primary: string; shadow: string; close(): void }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../helpers/big-answers.js', import.meta.url)), '--bytes', String(bytes)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`big-answers exited with ${code}`)));
  });
  const ports = JSON.parse(line) as { primary: number; shadow: number };
  return {
    primary: `http://127.0.0.1:${ports.primary}`,
    shadow: `http://127.0.0.1:${ports.shadow}`,
    close: () => child.kill('SIGKILL'),
  };
}

// Reported: with 6 MB shadow answers at 100 req/s an unrelated route's
// requests took 40–180 ms instead of 2.5 ms: the shadow's answers were
// captured, decoded and compared on the thread that serves users.
describe('shadow isolation: heavy shadow answers', () => {
  let upstreams: Awaited<ReturnType<typeof startBigAnswers>>;
  // The light route's upstream has a process of its own, as in
  // bench/heavy-shadow.mjs: in one shared with the heavy answers, its small
  // answers would wait behind the 6 MB writes in that process's event loop,
  // and the shadowed rounds add the shadow's writes there. What is measured
  // is the gateway, not its upstream.
  let lightUpstream: Awaited<ReturnType<typeof startBigAnswers>>;
  let serve: ServeProcess;
  const tmp = tempDir();
  before(async () => {
    [upstreams, lightUpstream] = await Promise.all([startBigAnswers(6 * 1024 * 1024), startBigAnswers(1024)]);
    const file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(
      file,
      `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { primary: ${upstreams.primary}, shadow: ${upstreams.shadow}, light: ${lightUpstream.primary} }
routes:
  - { name: light, match: { prefix: /light }, backends: [{ upstream: light }] }
  - { name: plain, match: { prefix: /plain }, backends: [{ upstream: primary }] }
  - { name: shadowed, match: { prefix: /shadowed }, backends: [{ upstream: primary }], shadow: [{ upstream: shadow }] }
`,
    );
    serve = await spawnServe(['-c', file]);
  });
  after(async () => {
    await serve.stop('SIGKILL');
    upstreams.close();
    lightUpstream.close();
    tmp.remove();
  });

  test('an unrelated route keeps its p95 within 1.5x (+10 ms) while another route mirrors 6 MB answers', async (t) => {
    const heavyAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const lightAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const latencies: Record<'plain' | 'shadowed', number[]> = { plain: [], shadowed: [] };
    let heavyFailed = 0;
    // Rounds alternate between the heavy route without and with its shadow,
    // so whatever else the machine does hits both alike. The first two, one
    // for each, are not measured: a new gateway compiles its code, and its
    // shadow thread's, under the first requests (bench/heavy-shadow.mjs
    // warms up each phase the same way). A round's p95 ranged 9-70 ms on a
    // loaded 2-core machine, and the pooled p95s of five rounds each sat
    // 3-7 ms inside the bound below (20.2 -> 36.7 and 22.7 -> 33.6 ms, on
    // Node 20 and 24): eight rounds of each are pooled, so that one
    // disturbed round weighs less.
    const warmupRounds = 2;
    const measuredRounds = 16;
    for (let round = 0; round < warmupRounds + measuredRounds; round++) {
      const heavy = round % 2 === 0 ? 'plain' : 'shadowed';
      const measured = round >= warmupRounds;
      const loads: Promise<void>[] = [];
      // 8 heavy requests a second, answers drained unread.
      const pace = setInterval(() => {
        loads.push(
          new Promise<void>((resolve) => {
            const req = http.get(`${serve.url}/${heavy}/export`, { agent: heavyAgent }, (res) => {
              if (res.statusCode !== 200) heavyFailed++;
              res.resume();
              res.once('end', resolve);
              res.once('error', () => resolve());
            });
            req.setTimeout(20_000, () => req.destroy());
            req.once('error', () => {
              heavyFailed++;
              resolve();
            });
          }),
        );
      }, 125);
      const until = performance.now() + (measured ? 2000 : 1000);
      while (performance.now() < until) {
        const started = performance.now();
        const r = await request(`${serve.url}/light/item`, { agent: lightAgent });
        if (measured) latencies[heavy].push(performance.now() - started);
        assert.equal(r.status, 200);
        await sleep(20);
      }
      clearInterval(pace);
      await Promise.all(loads);
    }
    heavyAgent.destroy();
    lightAgent.destroy();
    const p95 = { plain: percentile(latencies.plain, 95), shadowed: percentile(latencies.shadowed, 95) };
    const metrics = (await request(serve.adminUrl + '/metrics')).text;
    const completed = metricValue(metrics, 'gatewayctl_shadow_requests_total', { route: 'shadowed', outcome: 'completed' });
    const compared = metricValue(metrics, 'gatewayctl_shadow_comparisons_total', { route: 'shadowed' });
    t.diagnostic(
      `light p95 ms: heavy route unshadowed ${p95.plain.toFixed(2)}, shadowed ${p95.shadowed.toFixed(2)} ` +
        `(${latencies.plain.length}/${latencies.shadowed.length} probes); shadow copies completed ${completed}, compared ${compared}`,
    );
    assert.equal(heavyFailed, 0);
    // The property needs the shadow to have really carried and compared 6 MB answers.
    assert.ok(completed >= 20, `shadow copies completed: ${completed}`);
    assert.ok(compared >= 10, `pairs compared: ${compared}`);
    // The slack was 5 ms while the primary's hash ran on the serving thread, and this route's p95
    // read 42-64 ms without the shadow and 47-77 with it. Hashed on a shadow thread, both halved
    // or better (16-31 and 23-46 ms, fifteen runs on Node 20 and 24), and the shadow's few
    // milliseconds then passed 1.5x + 5 in about one run in three: below this machine's spread.
    assert.ok(p95.shadowed <= p95.plain * 1.5 + 10, `light p95 ${p95.shadowed.toFixed(2)} ms with the shadow vs ${p95.plain.toFixed(2)} ms without`);
  });

  test('answers past diff.maxBodyBytes are compared by length and whole-body hash, and the event says so', async () => {
    const metrics = (await request(serve.adminUrl + '/metrics')).text;
    // The shadow's body differs (one price in a thousand), also past the first megabyte: every pair differs, by body.
    assert.ok(metricValue(metrics, 'gatewayctl_shadow_comparisons_total', { route: 'shadowed', result: 'diff' }) >= 10);
    assert.equal(metricValue(metrics, 'gatewayctl_shadow_comparisons_total', { route: 'shadowed', result: 'match' }), 0);
    const stream = await openSse(serve.adminUrl + '/diffs?route=shadowed&replay=1');
    try {
      const [message] = await stream.waitFor(1);
      const event = JSON.parse(message!.data) as DiffEvent;
      assert.equal(event.truncated, true);
      assert.ok(event.primary.bytes! >= 6 * 1024 * 1024);
      assert.equal(event.differences.length, 1);
      const body = event.differences[0]!;
      assert.equal(body.kind, 'body');
      assert.equal(body.change, 'binary');
      assert.match(String(body.primary), new RegExp(`^${event.primary.bytes} bytes, sha256 [0-9a-f]{16}$`));
      assert.match(body.note ?? '', /compared by length and SHA-256 of the whole body, not parsed/);
    } finally {
      stream.close();
    }
  });
});
