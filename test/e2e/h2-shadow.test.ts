/**
 * Shadow copies to HTTP/2 upstreams beyond gRPC, through the real gateway
 * with real node:http2 servers: a shadow over TLS h2 (https:// with
 * `protocol: h2` and the test CA) is compared like any other, with a
 * baseline over h2c masking the primary's own noise; an h2c shadow that
 * never answers times out on its own, counted, while every user gets the
 * primary's answer.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { metricValue } from '../helpers/metrics.js';
import { fixture, pem } from '../helpers/tls.js';
import { METRIC } from '../../src/metrics/names.js';

interface H2Upstream {
  readonly port: number;
  /** The x-shadow-request header of each request it got. */
  readonly marks: string[];
  close(): Promise<void>;
}

/** An HTTP/2 server answering JSON with a fresh id each time (noise) and `price`; or never, when `price` is undefined. */
async function startH2(price: number | undefined, secure = false): Promise<H2Upstream> {
  const marks: string[] = [];
  const server = secure ? http2.createSecureServer({ cert: pem('localhost.pem'), key: pem('localhost.key') }) : http2.createServer();
  server.on('stream', (stream, headers) => {
    marks.push(String(headers['x-shadow-request'] ?? ''));
    stream.on('error', () => undefined);
    if (price === undefined) return;
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(JSON.stringify({ id: randomUUID(), name: 'Widget', price }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  return {
    port: (server.address() as AddressInfo).port,
    marks,
    close: () => {
      for (const s of sessions) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function get(session: http2.ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path });
    let status = 0;
    let body = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
  });
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('HTTP/2 shadows: TLS h2, a baseline over h2c, a shadow that never answers', () => {
  let v1: H2Upstream;
  let v1b: H2Upstream;
  let v2: H2Upstream;
  let hung: H2Upstream;
  let gw: TestGateway;
  let session: http2.ClientHttp2Session;

  before(async () => {
    [v1, v1b, v2, hung] = await Promise.all([startH2(10), startH2(10), startH2(12, true), startH2(undefined)]);
    gw = await startGateway(`
listen: { address: 127.0.0.1:0, h2c: true }
admin: 127.0.0.1:0
timeouts: { shadow: 300ms }
upstreams:
  v1: { url: http://127.0.0.1:${v1.port}, protocol: h2c }
  v1b: { url: http://127.0.0.1:${v1b.port}, protocol: h2c }
  v2: { url: https://127.0.0.1:${v2.port}, protocol: h2, tls: { ca: ${fixture('ca.pem')}, serverName: localhost } }
  hung: { url: http://127.0.0.1:${hung.port}, protocol: h2c }
routes:
  - name: tls
    match: { prefix: /tls }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2 }]
    diff: { baseline: v1b }
  - name: hung
    match: { prefix: /hung }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: hung }]
`);
    session = http2.connect(gw.url);
  });

  after(async () => {
    session?.close();
    await gw?.close();
    await Promise.all([v1, v1b, v2, hung].map((u) => u?.close()));
  });

  test('a TLS h2 shadow is compared: the price is the one real difference, the id is masked by the baseline', async () => {
    for (let i = 0; i < 5; i++) {
      const answer = await get(session, `/tls/item/${i}`);
      assert.equal(answer.status, 200);
      assert.equal((JSON.parse(answer.body) as { price: number }).price, 10, 'the user gets the primary');
    }
    await until(() => v2.marks.length === 5 && v1b.marks.length === 5);
    assert.deepEqual(v2.marks, ['1', '1', '1', '1', '1'], 'copies over TLS h2 are marked');
    await until(() => gw.diffs.store.recent({ route: 'tls' }, { limit: 10 }).length === 5);
    await gw.settled();
    const events = gw.diffs.store.recent({ route: 'tls' }, { limit: 10 });
    for (const event of events) {
      assert.deepEqual(
        event.differences.map((d) => [d.kind, d.path, d.primary, d.shadow]),
        [['body', '/price', 10, 12]],
      );
      assert.ok(event.noise >= 1, 'the id differs between primary and baseline: noise');
    }
  });

  test('an h2c shadow that never answers times out after timeouts.shadow; users are answered, the copies counted', async () => {
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => get(session, `/hung/${i}`)));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200, 200],
    );
    const metrics = async () => (await (await fetch(gw.adminUrl + '/metrics')).text());
    await until(async () => metricValue(await metrics(), METRIC.shadowRequests, { route: 'hung', outcome: 'timeout' }) === 5, 5000);
    assert.equal(hung.marks.length, 5);
    assert.equal(metricValue(await metrics(), METRIC.shadowRequests, { route: 'hung', outcome: 'completed' }), 0);
  });
});

describe('HTTP/2 shadows: captures of answers still arriving count against the byte budget', () => {
  // Copies to HTTP/2 upstreams are sent and read on the serving thread. Their
  // captures (up to diff.maxBodyBytes each) were held outside the byte
  // budget until the answer ended: 150 answers that sent 1 MB and paused
  // held 150 MB of array buffers through an 8 MB budget.
  const prefix = Buffer.alloc(1_000_000, 'x');
  let primary: H2Upstream;
  let pausing: http2.Http2Server;
  let gw: TestGateway;
  let session: http2.ClientHttp2Session;

  before(async () => {
    primary = await startH2(10);
    // Node's default (10 MB of a session's data in flight) would refuse the streams past it.
    pausing = http2.createServer({ maxSessionMemory: 400 });
    pausing.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.write(prefix);
      setTimeout(() => stream.end('y'), 2000).unref();
    });
    await new Promise<void>((resolve) => pausing.listen(0, '127.0.0.1', resolve));
    gw = await startGateway(`
listen: { address: 127.0.0.1:0, h2c: true }
admin: 127.0.0.1:0
timeouts: { shadow: 10s }
limits: { shadowInflightBytes: 8mb }
upstreams:
  v1: { url: http://127.0.0.1:${primary.port}, protocol: h2c }
  pausing: { url: http://127.0.0.1:${(pausing.address() as AddressInfo).port}, protocol: h2c }
routes:
  - name: pausing
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: pausing }]
    diff: { maxBodyBytes: 2mb }
`);
    session = http2.connect(gw.url);
  });

  after(async () => {
    session?.close();
    await gw?.close();
    await primary?.close();
    pausing?.close();
  });

  test('150 answers that pause after 1 MB, 8 MB budget: what the captures hold stays near it, pairs left out are counted', async (t) => {
    const copies = 150;
    const before = process.memoryUsage().arrayBuffers;
    const answers = await Promise.all(Array.from({ length: copies }, (_, i) => get(session, `/item/${i}`)));
    assert.ok(answers.every((a) => a.status === 200 && (JSON.parse(a.body) as { price: number }).price === 10), 'users get the primary');
    const metrics = async () => (await (await fetch(gw.adminUrl + '/metrics')).text());
    const completed = async () => metricValue(await metrics(), METRIC.shadowRequests, { route: 'pausing', outcome: 'completed' });
    // While the answers pause (this process is the gateway, so its array buffers are the captures').
    let peak = 0;
    while ((await completed()) < copies) {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
      await new Promise((r) => setTimeout(r, 50));
    }
    await gw.settled();
    const text = await metrics();
    const compared = metricValue(text, METRIC.shadowComparisons, { route: 'pausing' });
    const notCompared = metricValue(text, METRIC.compareDropped, { route: 'pausing' });
    const mb = (bytes: number) => (bytes / 1048576).toFixed(0);
    t.diagnostic(`array buffers grew ${mb(peak)} MB; ${compared} pairs compared, ${notCompared} not`);
    // The build before this bound grew 238 MB; with it about 50, most of that
    // chunks read and let go that no collection has freed yet.
    assert.ok(peak < 120 * 1048576, `array buffers grew ${mb(peak)} MB while the answers paused`);
    assert.equal(compared + notCompared, copies, `${compared} compared and ${notCompared} not: every pair is one or the other`);
    assert.ok(notCompared >= copies - 10, `${notCompared} pairs counted as not compared`);
  });
});
