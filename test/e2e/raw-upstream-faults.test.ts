/**
 * Broken upstreams, seen from both ends: refused, reset before or during
 * the response, never answering, answering garbage or ambiguous framing.
 * The client gets 502 or 504 (or, after a partial response, a cut
 * connection: never a short body passed off as complete); the bad upstream
 * connection is never reused; and a client that goes away releases its
 * upstream connection at once, over a thousand aborts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { deadPort } from '../helpers/upstream.js';
import { exchange, ok, openTcpHandles, RawClient, sleep, startCapture, withClient, type CaptureUpstream, type Reply } from '../helpers/raw.js';
import { METRIC } from '../../src/metrics/names.js';

const H = 'Host: gw.test\r\n';

/** What the faulty upstream answers, by path. */
const replies: Record<string, Reply> = {
  '/fault/reset-early': 'reset',
  '/fault/close-early': { then: 'close' },
  '/fault/reset-mid': { bytes: 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial', then: 'reset', delayMs: 0 },
  '/fault/close-mid': { bytes: 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial', then: 'close' },
  '/fault/chunked-cut': { bytes: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7\r\npartial\r\n', then: 'close' },
  '/fault/hang': 'hang',
  '/fault/head-then-hang': { bytes: 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial', then: 'hang' },
  '/fault/garbage': { bytes: 'this is not http\r\n\r\n', then: 'keep' },
  '/fault/bad-status': 'HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n',
  '/fault/bad-version': 'HTTP/9.9 200 OK\r\ncontent-length: 0\r\n\r\n',
  '/fault/cl-te': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  '/fault/dup-cl': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!',
  '/fault/nul-header': 'HTTP/1.1 200 OK\r\nx-a: b\x00c\r\ncontent-length: 2\r\n\r\nok',
  '/fault/obs-fold': 'HTTP/1.1 200 OK\r\nx-a: b\r\n c\r\ncontent-length: 2\r\n\r\nok',
  '/fault/bad-chunk': { bytes: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n', then: 'keep' },
  '/fault/switch': 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n',
  '/fault/head-body': 'HTTP/1.1 200 OK\r\nx-head: yes\r\ncontent-length: 5\r\n\r\nhello',
  '/fault/head-chunked': 'HTTP/1.1 200 OK\r\nx-head: yes\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  '/fault/switch-bare': { bytes: 'HTTP/1.1 101 Switching Protocols\r\n\r\n', then: 'hang' },
  '/fault/switch-upgrade-only': { bytes: 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n', then: 'hang' },
  '/fault/switch-then-ok': 'HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  '/fault/switch-upgrade-then-ok': 'HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  '/fault/stray': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nEVIL',
  '/fault/no-length': { bytes: 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nclose-delimited body', then: 'close' },
  '/fault/trailer': 'HTTP/1.1 200 OK\r\ntrailer: x-sum\r\ncontent-length: 2\r\n\r\nok',
  '/fault/chunked-trailers': 'HTTP/1.1 200 OK\r\ntrailer: x-sum\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-sum: 1\r\n\r\n',
  '/fault/informational': 'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
};

interface Case {
  readonly path: string;
  /** Status the client gets; 0 = the connection is cut (after a partial response). */
  readonly status: number;
  readonly body?: string;
  readonly reason?: 'connect' | 'reset' | 'timeout';
  /** The upstream connection that carried it must be closed afterwards. */
  readonly upstreamClosed?: boolean;
}

const cases: Case[] = [
  { path: '/dead/x', status: 502, reason: 'connect' },
  { path: '/fault/reset-early', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/close-early', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/reset-mid', status: 0, upstreamClosed: true },
  { path: '/fault/close-mid', status: 0, upstreamClosed: true },
  { path: '/fault/chunked-cut', status: 0, upstreamClosed: true },
  { path: '/fault/hang', status: 504, reason: 'timeout', upstreamClosed: true },
  { path: '/fault/head-then-hang', status: 0, upstreamClosed: true },
  { path: '/fault/garbage', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/bad-status', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/bad-version', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/cl-te', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/dup-cl', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/nul-header', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/obs-fold', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/bad-chunk', status: 0, upstreamClosed: true },
  { path: '/fault/switch', status: 502, reason: 'reset', upstreamClosed: true },
  // A 101 to a plain request (reported: relayed, and the socket reused).
  { path: '/fault/switch-bare', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/switch-upgrade-only', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/switch-then-ok', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/switch-upgrade-then-ok', status: 502, reason: 'reset', upstreamClosed: true },
  { path: '/fault/no-length', status: 200, body: 'close-delimited body', upstreamClosed: true },
  { path: '/fault/trailer', status: 200, body: 'ok' },
  { path: '/fault/chunked-trailers', status: 200, body: 'ok' },
  { path: '/fault/informational', status: 200, body: 'ok' },
];

describe('raw upstream faults', () => {
  let faulty: CaptureUpstream;
  let holding: CaptureUpstream;
  let early: CaptureUpstream;
  let gw: TestGateway;
  let port: number;
  before(async () => {
    faulty = await startCapture((req, conn) => {
      if (req.target === '/fault/head-body-later') {
        conn.socket.write('HTTP/1.1 200 OK\r\nx-head: yes\r\ncontent-length: 5\r\n\r\n');
        return { bytes: 'hello', delayMs: 50 };
      }
      return replies[req.target] ?? ok(`fine ${req.target}`);
    });
    holding = await startCapture(
      (req) => {
        if (req.target === '/hold/streaming') return { bytes: 'HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n' + 'x'.repeat(1000), then: 'hang' };
        return 'hang';
      },
      { replyAfterHead: true },
    );
    // Answers as soon as a head arrives, while the request body is still coming.
    early = await startCapture(
      (req) => {
        if (req.target === '/early/reset') return 'reset';
        return { bytes: 'HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo much', then: 'close' };
      },
      { replyAfterHead: true },
    );
    const dead = await deadPort();
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  faulty: { url: ${faulty.url}, timeout: 600ms }
  holding: ${holding.url}
  stuck: { url: ${holding.url}, timeout: 600ms }
  early: ${early.url}
  dead: http://127.0.0.1:${dead}
timeouts: { upstream: 30s }
limits: { maxBodyBytes: 64mb }
routes:
  - { name: fault, match: { prefix: /fault }, backends: [{ upstream: faulty }] }
  - { name: hold, match: { prefix: /hold }, backends: [{ upstream: holding }] }
  - { name: stuck, match: { prefix: /stuck }, backends: [{ upstream: stuck }] }
  - { name: dead, match: { prefix: /dead }, backends: [{ upstream: dead }] }
  - { name: early, match: { prefix: /early }, backends: [{ upstream: early }] }
`);
    port = gw.port;
  });
  after(async () => {
    await gw.close();
    await faulty.close();
    await holding.close();
    await early.close();
  });

  for (const c of cases) {
    test(`${c.path} -> ${c.status === 0 ? 'connection cut' : c.status}`, async () => {
      const metrics = async () => (await request(gw.adminUrl + '/metrics')).text;
      const route = c.path.split('/')[1]!;
      const errorsBefore = c.reason ? metricValue(await metrics(), METRIC.upstreamErrors, { route, reason: c.reason }) : 0;
      const connsBefore = faulty.connections.length;
      const started = Date.now();
      const got = await exchange(port, `GET ${c.path} HTTP/1.1\r\n${H}\r\n`, { timeoutMs: 4000 });
      assert.equal(got.malformed, false, got.text);
      if (c.status === 0) {
        assert.ok(got.closed, 'connection cut');
        const complete = got.responses.some((r) => r.status === 200);
        assert.ok(!complete, `a partial response must not look complete: ${JSON.stringify(got.text)}`);
      } else {
        assert.equal(got.first.status, c.status, got.text);
        if (c.body !== undefined) assert.equal(got.first.body.toString(), c.body);
        if (c.status >= 500) assert.equal(got.first.header('content-type'), 'application/json');
      }
      if (c.reason === 'timeout') assert.ok(Date.now() - started < 2500, `answered after ${Date.now() - started} ms (timeout 600 ms)`);
      if (c.reason) {
        const after = metricValue(await metrics(), METRIC.upstreamErrors, { route, reason: c.reason });
        assert.equal(after, errorsBefore + 1, `counted as ${c.reason}`);
      }
      if (c.upstreamClosed) {
        const used = faulty.connections.slice(connsBefore);
        const deadline = Date.now() + 2000;
        while (used.some((u) => !u.closed) && Date.now() < deadline) await sleep(10);
        assert.ok(used.every((u) => u.closed), 'the upstream connection that failed is closed, not pooled');
      }
      // Whatever happened, the next request on a fresh exchange is served.
      const next = await exchange(port, `GET /fault/fine HTTP/1.1\r\n${H}\r\n`);
      assert.equal(next.first.status, 200);
      assert.equal(next.first.body.toString(), 'fine /fault/fine');
    });
  }

  test('an upstream that resets while the request body is still coming: 502, the upload stops', async () => {
    await withClient(port, async (client) => {
      await client.write(`POST /early/reset HTTP/1.1\r\n${H}Content-Length: 1000000\r\n\r\n${'u'.repeat(1000)}`);
      const got = await client.read({ timeoutMs: 3000, settleMs: 300 });
      assert.equal(got.first.status, 502, got.text);
      assert.ok(got.closed, 'the connection is closed: the rest of the body will not be read');
    });
  });

  test('an upstream that stops reading the request body: 504 at its timeout, both connections closed', async () => {
    const size = 48 * 1024 * 1024;
    await withClient(port, async (client) => {
      const before = holding.connections.length;
      // Written without waiting: the upstream never reads, so this never drains.
      client.socket.write(`POST /stuck/upload HTTP/1.1\r\n${H}Content-Length: ${size}\r\n\r\n`);
      client.socket.write(Buffer.alloc(size, 'u'));
      const got = await client.read({ timeoutMs: 8000, settleMs: 300 });
      assert.equal(got.first.status, 504, got.text.slice(0, 300));
      // The upstream reads again: it drains what was buffered, then must find the connection closed.
      const used = holding.connections.slice(before);
      for (const u of used) u.socket.resume();
      const deadline = Date.now() + 3000;
      while (used.some((u) => !u.closed) && Date.now() < deadline) await sleep(10);
      assert.ok(used.length > 0 && used.every((u) => u.closed), 'the upstream connection is closed');
    });
  });

  test('an upstream that answers before the request body is complete: the answer is relayed', async () => {
    await withClient(port, async (client) => {
      await client.write(`POST /early/refuse HTTP/1.1\r\n${H}Content-Length: 1000000\r\n\r\n${'u'.repeat(1000)}`);
      const got = await client.read({ timeoutMs: 3000, settleMs: 300 });
      assert.equal(got.first.status, 413, got.text);
      assert.equal(got.first.body.toString(), 'too much');
      assert.ok(got.closed, 'the connection is closed: the rest of the body will not be read');
    });
  });

  test('stray bytes after a response never become the answer to another request', async () => {
    const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        assert.equal((await request(`${gw.url}/fault/stray`, { agent })).text, 'ok');
        const next = await request(`${gw.url}/fault/after-stray-${i}`, { agent });
        assert.equal(next.text, `fine /fault/after-stray-${i}`);
      }
    } finally {
      agent.destroy();
    }
  });

  // A HEAD answer followed by body bytes (reported: a bare close, no status).
  for (const [name, path] of [
    ['with Content-Length, in the same packet', '/fault/head-body'],
    ['chunked, in the same packet', '/fault/head-chunked'],
    ['with Content-Length, the body a moment later', '/fault/head-body-later'],
  ] as const) {
    test(`HEAD answered with a body (${name}): status and headers relayed, stray bytes dropped, socket not reused`, async () => {
      const connsBefore = faulty.connections.length;
      const got = await exchange(port, `HEAD ${path} HTTP/1.1\r\n${H}\r\n`, { headRequests: new Set([0]), settleMs: 100 });
      assert.equal(got.malformed, false, got.text);
      assert.equal(got.first.status, 200, got.text);
      assert.equal(got.first.header('x-head'), 'yes');
      assert.ok(!got.text.includes('hello'), `no stray bytes reach the client: ${JSON.stringify(got.text)}`);
      const used = faulty.connections.slice(connsBefore);
      const deadline = Date.now() + 2000;
      while (used.some((u) => !u.closed) && Date.now() < deadline) await sleep(10);
      assert.ok(used.every((u) => u.closed), 'the upstream connection is closed, not pooled');
      const next = await exchange(port, `GET /fault/after-head HTTP/1.1\r\n${H}\r\n`);
      assert.equal(next.first.body.toString(), 'fine /fault/after-head');
    });
  }

  test('a client that goes away mid-request releases the upstream connection at once', async () => {
    const client = new RawClient(port);
    await client.connected;
    const heads = holding.heads;
    await client.write(`GET /hold/one HTTP/1.1\r\n${H}\r\n`);
    await holding.waitForHeads(heads + 1);
    const t = Date.now();
    client.close();
    await holding.waitForIdle(2000);
    assert.ok(Date.now() - t < 1000);
  });

  test('1,000 aborted requests leak no socket, upstream or local', async () => {
    await holding.waitForIdle(2000);
    const handlesBefore = openTcpHandles();
    const heads = holding.heads;
    const kinds = ['before-response', 'mid-response', 'mid-upload'] as const;
    await runConcurrently(1000, 25, async (i) => {
      const kind = kinds[i % 3]!;
      const client = new RawClient(port);
      try {
        await client.connected;
        // Abort once the upstream has the request (or, mid-response, once the response started).
        if (kind === 'before-response') {
          await client.write(`GET /hold/a${i} HTTP/1.1\r\n${H}\r\n`);
          await client.until(() => holding.headTargets.has(`/hold/a${i}`), 2000);
        } else if (kind === 'mid-response') {
          await client.write(`GET /hold/streaming HTTP/1.1\r\n${H}\r\n`);
          await client.until(() => client.bytes.length > 0, 2000);
        } else {
          await client.write(`POST /hold/up${i} HTTP/1.1\r\n${H}Content-Length: 100000\r\n\r\n${'u'.repeat(500)}`);
          await client.until(() => holding.headTargets.has(`/hold/up${i}`), 2000);
        }
      } finally {
        if (i % 2 === 0) client.resetNow();
        else client.close();
      }
    });
    assert.ok(holding.heads - heads >= 900, `the upstream saw ${holding.heads - heads} of 1000 requests`);
    await holding.waitForIdle(5000);
    const deadline = Date.now() + 3000;
    while (openTcpHandles() > handlesBefore && Date.now() < deadline) await sleep(20);
    assert.ok(openTcpHandles() <= handlesBefore, `TCP handles: ${openTcpHandles()} now, ${handlesBefore} before`);
    const metrics = (await request(gw.adminUrl + '/metrics')).text;
    assert.equal(metricValue(metrics, METRIC.connections, { listener: 'gateway' }), 0);
    // and the gateway still serves
    assert.equal((await request(`${gw.url}/fault/fine`)).status, 200);
  });
});
