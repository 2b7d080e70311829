/**
 * The egress in operation: bounded memory, a slow dependency, TLS as for
 * upstreams, passthrough, simulation reloads, and `record export`.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { exchange } from '../helpers/raw.js';
import { metricValue } from '../helpers/metrics.js';
import { fixture, startTlsUpstream, type TlsUpstream } from '../helpers/tls.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}

const simulation = (body: string) =>
  JSON.stringify({
    data: { pairs: [{ request: { path: [{ matcher: 'exact', value: '/send' }] }, response: { status: 200, body, encodedBody: false, headers: {}, templated: false } }] },
    meta: { schemaVersion: 'v5' },
  });

describe('egress operations', () => {
  let fast: TestUpstream;
  let slow: TestUpstream;
  let secure: TlsUpstream;
  let gw: TestGateway;
  let live = '';
  let dark = '';
  const tmp = tempDir();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

  before(async () => {
    fast = await startUpstream('fast');
    slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"slow":true}');
      }, 300);
    });
    secure = await startTlsUpstream('internal', 'upstream');
    writeFileSync(join(tmp.dir, 'mailer.json'), simulation('first'));
    const framing = { 'Transfer-Encoding': ['chunked'], Connection: ['close'], 'Keep-Alive': ['timeout=1'], 'X-Kept': ['yes'] };
    writeFileSync(join(tmp.dir, 'framed.json'), simulation('framed').replace('"headers":{}', JSON.stringify({ headers: framing }).slice(1, -1)));
    writeFileSync(join(tmp.dir, 'empty.json'), simulation('ignored').replace('"status":200', '"status":204'));
    const config = join(tmp.dir, 'gateway.yaml');
    writeFileSync(
      config,
      `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { a: ${fast.url} }
routes: [{ name: r, backends: [{ upstream: a }] }]
egress: { live: 127.0.0.1:0, dark: 127.0.0.1:0 }
limits: { recordBytes: 1mb }
dependencies:
  fast: { url: ${fast.url}, passthrough: [GET], wait: 1ms }
  slow: { url: ${slow.url} }
  secure: { url: ${secure.url}, tls: { ca: ${fixture('ca.pem')}, serverName: upstream.internal } }
  mailer: { url: "http://127.0.0.1:9", simulation: mailer.json, wait: 1ms }
  framed: { url: "http://127.0.0.1:9", simulation: framed.json, wait: 1ms }
  empty: { url: "http://127.0.0.1:9", simulation: empty.json, wait: 1ms }
`,
    );
    gw = await startGateway('', { configFile: config });
    live = `http://127.0.0.1:${gw.egress.addresses.live!.port}`;
    dark = `http://127.0.0.1:${gw.egress.addresses.dark!.port}`;
  });

  after(async () => {
    agent.destroy();
    await gw?.close();
    await fast?.close();
    await slow?.close();
    await secure?.close();
    tmp.remove();
  });

  test('memory stays bounded with 10,000 unpaired recordings', async () => {
    const body = JSON.stringify({ pad: 'x'.repeat(200) });
    await runConcurrently(10_000, 16, (i) =>
      request(`${live}/fast/items?n=${i}`, { method: 'POST', agent, headers: { 'x-request-id': `unpaired-${i}`, 'content-type': 'application/json' }, body }),
    );
    const recordings = gw.egress.recordings;
    assert.ok(recordings.bytes <= 1024 * 1024, `held ${recordings.bytes} bytes`);
    assert.ok(recordings.size < 10_000 && recordings.size > 100, `held ${recordings.size} groups`);
    assert.equal(recordings.dropped + recordings.size, 10_000);
    const metrics = (await request(`${gw.adminUrl}/metrics`)).text;
    assert.ok(metricValue(metrics, METRIC.egressRecordedBytes) <= 1024 * 1024);
    assert.equal(metricValue(metrics, METRIC.egressRecordingsDropped), recordings.dropped);
    assert.equal(fast.received.length, 10_000);
    // The oldest went first.
    assert.ok(recordings.take('unpaired-9999'));
    assert.equal(recordings.take('unpaired-0'), undefined);
  });

  test('a slow dependency does not slow the live path beyond its own latency', async () => {
    const direct: number[] = [];
    const through: number[] = [];
    const fastCalls: number[] = [];
    for (let i = 0; i < 4; i++) {
      let t = performance.now();
      await request(`${slow.url}/x`);
      direct.push(performance.now() - t);
      t = performance.now();
      // Slow calls in flight must not hold up another dependency's calls.
      const slowCall = request(`${live}/slow/x`, { headers: { 'x-request-id': `slow-${i}` } });
      const f = performance.now();
      await request(`${live}/fast/y`, { headers: { 'x-request-id': `fast-${i}` } });
      fastCalls.push(performance.now() - f);
      assert.equal((await slowCall).status, 200);
      through.push(performance.now() - t);
    }
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
    assert.ok(median(through) / median(direct) < 1.5, `through ${median(through)}ms, direct ${median(direct)}ms`);
    assert.ok(median(fastCalls) < median(direct) / 2, `fast calls took ${median(fastCalls)}ms while slow ones were in flight`);
  });

  test('https dependencies are verified as upstreams are', async () => {
    const answer = await request(`${live}/secure/ping`, { headers: { 'x-request-id': 'tls-1' } });
    assert.equal(answer.status, 200);
    assert.equal(answer.json().url, '/ping');
    assert.equal(secure.received.at(-1)!.headers.host, `127.0.0.1:${secure.port}`);
  });

  test('passthrough methods reach the dependency; others are refused; unknown names 404', async () => {
    const before = fast.received.length;
    const get = await request(`${dark}/fast/catalog`, { headers: { 'x-request-id': 'pt-1' } });
    assert.equal(get.status, 200);
    assert.equal(get.headers['x-gatewayctl-egress'], 'passthrough');
    const post = await request(`${dark}/fast/orders`, { method: 'POST', headers: { 'x-request-id': 'pt-2' }, body: '{}' });
    assert.equal(post.status, 502);
    assert.equal(post.headers['x-gatewayctl-egress'], 'refused');
    assert.equal(fast.received.length, before + 1);
    assert.equal((await request(`${dark}/nope/x`)).status, 404);
  });

  test('a simulation change is reloaded like the config; a broken one keeps the last good one', async () => {
    const first = await request(`${dark}/mailer/send`, { method: 'POST', body: '{}' });
    assert.equal(first.text, 'first');
    assert.equal(first.headers['x-gatewayctl-egress'], 'simulated');
    writeFileSync(join(tmp.dir, 'mailer.json'), simulation('second'));
    await until(async () => (await request(`${dark}/mailer/send`, { method: 'POST', body: '{}' })).text === 'second');
    writeFileSync(join(tmp.dir, 'mailer.json'), '{"data": {"pairs": [{"request": {"path": [{"matcher": "xpath", "value": "/"}]}}]}}');
    await until(() => gw.logs.some((l) => l.event === 'config.rejected' || /xpath/.test(JSON.stringify(l))));
    assert.equal((await request(`${dark}/mailer/send`, { method: 'POST', body: '{}' })).text, 'second');
  });

  test("a simulated answer's recorded framing and connection headers give way to the gateway's", async () => {
    const ask = 'GET /framed/send HTTP/1.1\r\nHost: x\r\n\r\n';
    const got = await exchange(gw.egress.addresses.dark!.port, [ask, ask], { responses: 2, timeoutMs: 2000 });
    assert.equal(got.responses.length, 2, got.text);
    for (const r of got.responses) {
      assert.deepEqual([r.header('transfer-encoding'), r.header('connection'), r.header('x-kept')], [undefined, 'keep-alive', 'yes'], got.text);
      assert.notEqual(r.header('keep-alive'), 'timeout=1');
      assert.equal(r.body.toString(), 'framed');
    }
  });

  test('a simulated 204 states no length, and the connection goes on', async () => {
    const ask = 'GET /empty/send HTTP/1.1\r\nHost: x\r\n\r\n';
    const got = await exchange(gw.egress.addresses.dark!.port, [ask, ask], { responses: 2, timeoutMs: 2000 });
    assert.deepEqual(
      got.responses.map((r) => [r.status, r.header('content-length'), r.body.length]),
      [
        [204, undefined, 0],
        [204, undefined, 0],
      ],
      got.text,
    );
  });

  test('record export prints the live recordings as a Hoverfly simulation', async () => {
    await request(`${live}/secure/charges?x=1`, { method: 'POST', headers: { 'x-request-id': 'export-cli', 'content-type': 'application/json' }, body: '{"amount":3}' });
    const cli = await runCli(['record', 'export', 'secure', '--admin', gw.adminUrl]);
    assert.equal(cli.code, 0, cli.stderr);
    const sim = JSON.parse(cli.stdout);
    assert.ok(sim.meta.schemaVersion.startsWith('v5'));
    const pair = sim.data.pairs.find((p: any) => p.request.path[0].value === '/charges');
    assert.deepEqual(pair.request.query, { x: [{ matcher: 'exact', value: '1' }] });
    assert.deepEqual(pair.request.body, [{ matcher: 'json', value: '{"amount":3}' }]);
    assert.equal(pair.request.destination[0].value, `127.0.0.1:${secure.port}`);
    assert.equal(pair.response.templated, false);
    const missing = await runCli(['record', 'export', 'nope', '--admin', gw.adminUrl]);
    assert.notEqual(missing.code, 0);
  });

  test("record export leaves out the gateway's own answers: a dependency that never answered is not simulated as failing", async () => {
    // Nothing listens on port 9: the live call gets the gateway's 502, and its dark twin is replayed that 502.
    const failed = await request(`${live}/mailer/send`, { method: 'POST', headers: { 'x-request-id': 'export-unreachable' }, body: 'hi' });
    assert.equal(failed.status, 502);
    const twin = await request(`${dark}/mailer/send`, { method: 'POST', headers: { 'x-request-id': 'export-unreachable' }, body: 'hi' });
    assert.equal(twin.status, 502);
    assert.equal(twin.headers['x-gatewayctl-egress'], 'replayed', 'the dark side sees what the live side saw');
    const answer = await request(`${gw.adminUrl}/egress/recordings?dependency=mailer`);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json().data.pairs, []);
    assert.equal(answer.headers['x-gatewayctl-left-out'], '1');
    const cli = await runCli(['record', 'export', 'mailer', '--admin', gw.adminUrl]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual(JSON.parse(cli.stdout).data.pairs, []);
    assert.match(cli.stderr, /left out 1 recorded call that mailer never answered/);
    // A dependency that answered: nothing left out, nothing said.
    const secureExport = await runCli(['record', 'export', 'secure', '--admin', gw.adminUrl]);
    assert.equal(secureExport.stderr, '');
  });

  test('drain lets a live call in flight finish, then the egress stops accepting', async () => {
    const inFlight = request(`${live}/slow/last`, { headers: { 'x-request-id': 'drain-1' } });
    await sleep(100);
    await gw.gateway.drain();
    assert.equal((await inFlight).status, 200);
    await assert.rejects(request(`${live}/fast/after`, { timeoutMs: 2000 }));
  });
});
