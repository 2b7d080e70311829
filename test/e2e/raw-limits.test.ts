/**
 * Limits and timeouts on the wire: header count and size (431), body size
 * (413, from Content-Length before reading and while a chunked body
 * streams), Expect: 100-continue answered only for acceptable requests,
 * and the header, keep-alive idle and body idle timeouts, which cut off
 * slow clients without slowing anyone else.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { exchange, ok, RawClient, runRawCase, sleep, startCapture, withClient, type CaptureUpstream, type Chunk, type RawCase } from '../helpers/raw.js';
import { METRIC } from '../../src/metrics/names.js';

const H = 'Host: gw.test\r\n';
const BIG = 8 * 1024 * 1024;
const headers = (n: number) => Array.from({ length: n }, (_, i) => `X-H-${i}: v\r\n`).join('');
const chunked = (size: number, pieces: number) => {
  const piece = Math.ceil(size / pieces);
  let out = '';
  for (let sent = 0; sent < size; sent += piece) {
    const n = Math.min(piece, size - sent);
    out += `${n.toString(16)}\r\n${'c'.repeat(n)}\r\n`;
  }
  return out + '0\r\n\r\n';
};

interface Case extends RawCase {
  /** The client must not get 100 Continue. */
  readonly noContinue?: boolean;
}

// maxHeaderCount 20, maxHeaderBytes 2kb, maxBodyBytes 1kb (see the config below)
const cases: Case[] = [
  { name: '20 header lines pass', send: `GET /api/a HTTP/1.1\r\n${H}${headers(19)}\r\n`, status: 200, upstream: 1 },
  { name: '21 header lines: 431', send: `GET /api/a HTTP/1.1\r\n${H}${headers(20)}\r\n`, status: 431, upstream: 0, closes: true },
  { name: 'a head over 2kb: 431', send: `GET /api/a HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(2100)}\r\n\r\n`, status: 431, upstream: 0, closes: true },
  { name: 'a request line over 2kb: 431', send: `GET /api/${'p'.repeat(2100)} HTTP/1.1\r\n${H}\r\n`, status: 431, upstream: 0, closes: true },
  { name: 'a body of exactly 1kb passes', send: `POST /api/a HTTP/1.1\r\n${H}Content-Length: 1024\r\n\r\n${'x'.repeat(1024)}`, status: 200, upstream: 1 },
  // The head alone: the 413 comes before a byte of body is sent.
  { name: 'Content-Length over 1kb: 413 before the body is read', send: `POST /api/a HTTP/1.1\r\n${H}Content-Length: 1025\r\n\r\n`, status: 413, upstream: 0, closes: true },
  { name: 'a huge Content-Length: 413', send: `POST /api/a HTTP/1.1\r\n${H}Content-Length: 9007199254740993\r\n\r\n`, status: 413, upstream: 0, closes: true },
  { name: 'a chunked body within 1kb passes', send: `POST /api/a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunked(1024, 4)}`, status: 200, upstream: 1 },
  { name: 'a chunked body over 1kb: 413 while streaming', send: `POST /api/a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunked(3000, 6)}`, status: 413, upstream: 0, closes: true },
  { name: 'Expect: 100-continue over the limit: 413, no 100', send: `POST /api/a HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n`, status: 413, upstream: 0, closes: true, noContinue: true },
  { name: 'Expect: 100-continue with no route: 404, no 100', send: `POST /nowhere HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n`, status: 404, upstream: 0, closes: true, noContinue: true },
  { name: 'Expect: 100-continue with a bad path: 400, no 100', send: `POST /api/../x HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n`, status: 400, upstream: 0, closes: true, noContinue: true },
  { name: 'Expect: 100-continue with too many headers: 431, no 100', send: `POST /api/a HTTP/1.1\r\n${H}Expect: 100-continue\r\n${headers(20)}Content-Length: 5\r\n\r\n`, status: 431, upstream: 0, closes: true, noContinue: true },
  { name: 'Expect other than 100-continue: 417', send: `POST /api/a HTTP/1.1\r\n${H}Expect: something\r\nContent-Length: 5\r\n\r\nhello`, status: 417, upstream: 0, closes: true },
  { name: 'chunk extensions over Node\'s limit: 413', send: `POST /api/a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(20000)}\r\nx\r\n0\r\n\r\n`, status: 413, upstream: 0, closes: true },
];

describe('raw limits and timeouts', () => {
  let upstream: CaptureUpstream;
  let gw: TestGateway;
  let port: number;
  before(async () => {
    upstream = await startCapture((req) => {
      if (req.target.startsWith('/big')) return `HTTP/1.1 200 OK\r\ncontent-length: ${BIG}\r\n\r\n${'b'.repeat(BIG)}`;
      if (req.target === '/up/hang') return 'hang';
      return ok(`${req.method} ${req.target} ${req.body.length}`);
    });
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { cap: ${upstream.url}, big: { url: ${upstream.url}, timeout: 600ms } }
limits: { maxHeaderCount: 20, maxHeaderBytes: 2kb, maxBodyBytes: 1kb }
timeouts: { header: 600ms, idle: 500ms, body: 500ms, upstream: 5s }
routes:
  - { name: api, match: { prefix: /api }, backends: [{ upstream: cap }] }
  - { name: big, match: { prefix: /big }, backends: [{ upstream: big }] }
  - { name: up, match: { prefix: /up }, backends: [{ upstream: big }] }
`);
    port = gw.port;
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  for (const c of cases) {
    test(c.name, async () => {
      const { got } = await runRawCase(port, upstream, c);
      if (c.noContinue) assert.ok(!got.text.includes('100 Continue'), got.text);
    });
  }

  test('Expect: 100-continue: 100 comes first, then the body is forwarded, without Expect and with hop-by-hop clean-up', async () => {
    await withClient(port, async (client) => {
      await client.write(`POST /api/continue HTTP/1.1\r\n${H}Expect: 100-continue\r\nConnection: X-Secret\r\nX-Secret: 1\r\nX-Shadow-Request: 1\r\nContent-Length: 5\r\n\r\n`);
      assert.ok(await client.until(() => client.text().includes('\r\n\r\n'), 2000), 'an interim answer arrives before the body is sent');
      assert.match(client.text(), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
      assert.equal(upstream.requests.filter((r) => r.target === '/api/continue').length, 0);
      await client.write('hello');
      const got = await client.read({ responses: 2 });
      assert.deepEqual(got.responses.map((r) => r.status), [100, 200]);
      const r = upstream.requests.find((x) => x.target === '/api/continue')!;
      assert.equal(r.body.toString(), 'hello');
      for (const name of ['expect', 'x-secret', 'x-shadow-request']) assert.equal(r.header(name), undefined, name);
      assert.equal(r.header('connection'), 'keep-alive', "the gateway's own connection to the upstream");
    });
  });

  test('slowloris: slow heads get 408 at the header timeout; other clients are unaffected', async () => {
    const slow = Array.from({ length: 30 }, () => new RawClient(port));
    const silent = new RawClient(port);
    try {
      await Promise.all([...slow, silent].map((c) => c.connected));
      const started = Date.now();
      let dripping = true;
      const drip = (async () => {
        await Promise.all(slow.map((c) => c.write(`GET /api/slow HTTP/1.1\r\n${H}`)));
        for (let i = 0; dripping && i < 40; i++) {
          await sleep(100);
          await Promise.all(slow.filter((c) => !c.closed).map((c) => c.write(`X-${i}: v\r\n`)));
        }
      })();
      // Meanwhile, ordinary requests are served promptly.
      const latencies: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t = Date.now();
        assert.equal((await request(`${gw.url}/api/normal`)).status, 200);
        latencies.push(Date.now() - t);
      }
      const done = await Promise.all([...slow, silent].map((c) => c.until(() => c.closed, 4000)));
      const elapsed = Date.now() - started;
      dripping = false;
      await drip;
      assert.ok(done.every(Boolean), 'every slow connection was closed');
      assert.ok(elapsed < 3000, `closed after ${elapsed} ms (header timeout 600 ms)`);
      for (const c of slow) assert.match(c.text(), /^HTTP\/1\.1 408 /, c.text());
      assert.ok(Math.max(...latencies) < 1000, `other requests took ${latencies.join(', ')} ms`);
      const metrics = (await request(gw.adminUrl + '/metrics')).text;
      assert.ok(metricValue(metrics, METRIC.rejectedRequests, { reason: 'header_timeout' }) >= 30);
    } finally {
      for (const c of [...slow, silent]) c.close();
    }
  });

  test('an idle keep-alive connection is closed after timeouts.idle', async () => {
    await withClient(port, async (client) => {
      await client.write(`GET /api/idle HTTP/1.1\r\n${H}\r\n`);
      const got = await client.read();
      assert.equal(got.first.status, 200);
      const t = Date.now();
      assert.ok(await client.until(() => client.closed, 4000), 'closed');
      // Node keeps the socket up to 1 s past the advertised keep-alive time.
      assert.ok(Date.now() - t < 3000, `closed after ${Date.now() - t} ms`);
    });
  });

  test('a body that stops arriving: 408 at the body timeout, upstream request torn down', async () => {
    const before = upstream.connections.length;
    await withClient(port, async (client) => {
      const t = Date.now();
      await client.write(`POST /api/stall HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\n${'s'.repeat(10)}`);
      const got = await client.read({ timeoutMs: 4000, settleMs: 500 });
      assert.equal(got.first.status, 408, got.text);
      assert.ok(Date.now() - t < 2500, `answered after ${Date.now() - t} ms (body timeout 500 ms)`);
      assert.ok(got.closed, 'connection closed');
      const conns = upstream.connections.slice(before);
      await upstream.waitForIdle(2000);
      assert.ok(conns.every((c) => c.closed));
      assert.ok(!upstream.requests.some((r) => r.target === '/api/stall'), 'the incomplete request was never completed upstream');
    });
  });

  test('a slow but steady body is not cut off', async () => {
    const chunks: Chunk[] = [`POST /api/drip HTTP/1.1\r\n${H}Content-Length: 8\r\n\r\n`];
    for (let i = 0; i < 8; i++) chunks.push({ delayMs: 150 }, 'd');
    const got = await exchange(port, chunks, { timeoutMs: 4000 });
    assert.equal(got.first.status, 200, got.text);
    assert.equal(got.first.body.toString(), 'POST /api/drip 8');
  });

  // Reported: a client sending 1 KB every 500 ms got 504 at the upstream
  // timeout, mid-upload. The upstream's timeout (600 ms here) starts once
  // the body has been sent; while it streams, only pauses count.
  const drip = (target: string, bytes: number) => {
    const chunks: Chunk[] = [`POST ${target} HTTP/1.1\r\n${H}Content-Length: ${bytes}\r\n\r\n`];
    for (let i = 0; i < bytes; i++) chunks.push({ delayMs: 150 }, 'd');
    return chunks;
  };

  test('an upload that takes longer than the upstream timeout, steadily, is served', async () => {
    const got = await exchange(port, drip('/up/steady', 10), { timeoutMs: 6000 });
    assert.equal(got.first.status, 200, got.text);
    assert.equal(got.first.body.toString(), 'POST /up/steady 10');
  });

  test('the upstream response timeout counts from the end of the upload', async () => {
    await withClient(port, async (client) => {
      await client.write(...drip('/up/hang', 8));
      const sent = Date.now();
      const got = await client.read({ timeoutMs: 5000 });
      assert.equal(got.first.status, 504, got.text);
      // Never before the upstream timeout has run from the last byte.
      assert.ok(Date.now() - sent >= 500, `504 ${Date.now() - sent} ms after the body was sent`);
    });
  });

  test('a client that stops reading a large response is cut off; its upstream connection is released', async () => {
    await withClient(port, async (client) => {
      client.socket.pause();
      await client.write(`GET /big/file HTTP/1.1\r\n${H}\r\n`);
      await upstream.waitForHeads(1);
      const conn = () => upstream.connections.find((c) => c.targets.includes('/big/file'));
      await client.until(() => conn() !== undefined, 2000);
      const t = Date.now();
      // Backpressure stops reads from the upstream, whose connection then
      // idles into the upstream timeout (600 ms): both sides are closed.
      await client.until(() => conn()!.closed, 5000);
      assert.ok(conn()!.closed, 'upstream connection released');
      assert.ok(Date.now() - t < 4000, `after ${Date.now() - t} ms`);
      client.socket.resume();
      assert.ok(await client.until(() => client.closed, 3000), 'client connection closed');
      assert.ok(client.bytes.length < BIG, 'the response was not completed');
    });
  });

  test('a chunked body that stops arriving: 408', async () => {
    const got = await exchange(port, `POST /api/stall2 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`, { timeoutMs: 4000 });
    assert.equal(got.first.status, 408, got.text);
  });
});
