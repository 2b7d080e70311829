/**
 * Message framing on the wire: what the client wrote, what the upstream
 * received (exact bytes), what the client got back. A request is either
 * refused before anything reaches an upstream, or forwarded with framing
 * headers in canonical form; never forwarded in a way the upstream could
 * frame differently from the gateway.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { exchange, ok, runRawCase, startCapture, type CaptureUpstream, type CapturedRequest, type RawCase, type RawResult } from '../helpers/raw.js';

interface Case extends RawCase {
  readonly check?: (got: RawResult, received: CapturedRequest[]) => void;
}

const H = 'Host: gw.test\r\n';
const fillers = (n: number) => Array.from({ length: n }, (_, i) => `X-Filler-${i}: a\r\n`).join('');
const smuggled = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
/** host:port of the capturing upstream, once it listens. */
let upstreamHost = '';

const cases: Case[] = [
  // Content-Length / Transfer-Encoding conflicts
  { name: 'Content-Length with Transfer-Encoding', send: `POST /a HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Transfer-Encoding then Content-Length', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'duplicate identical Content-Length', send: `POST /a HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, status: 400, upstream: 0, closes: true },
  { name: 'duplicate differing Content-Length', send: `POST /a HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, status: 400, upstream: 0, closes: true },
  { name: 'Content-Length list', send: `POST /a HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`, status: 400, upstream: 0, closes: true },
  { name: 'Content-Length with sign', send: `POST /a HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`, status: 400, upstream: 0, closes: true },
  { name: 'Content-Length in hex', send: `POST /a HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\nhello`, status: 400, upstream: 0, closes: true },
  { name: 'empty Content-Length', send: `POST /a HTTP/1.1\r\n${H}Content-Length: \r\n\r\nhello`, status: 400, upstream: 0, closes: true },
  { name: 'Content-Length overflow', send: `POST /a HTTP/1.1\r\n${H}Content-Length: 99999999999999999999999\r\n\r\nhello`, status: 400, upstream: 0, closes: true },
  {
    name: 'Content-Length with leading zeros is forwarded canonical',
    send: `POST /a HTTP/1.1\r\n${H}Content-Length: 005\r\n\r\nhello`,
    status: 200,
    upstream: 1,
    check: (_, [r]) => {
      assert.deepEqual(r!.headerAll('content-length'), ['5']);
      assert.equal(r!.body.toString(), 'hello');
    },
  },
  // Transfer-Encoding values
  { name: 'Transfer-Encoding: gzip, chunked', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Transfer-Encoding: chunked, gzip', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Transfer-Encoding: identity', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\nhello`, status: 400, upstream: 0, closes: true },
  { name: 'Transfer-Encoding: xchunked', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Transfer-Encoding twice', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Transfer-Encoding with a vertical tab', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding:\x0bchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Transfer-Encoding folded (obs-fold)', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: \r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Transfer-Encoding on HTTP/1.0', send: `POST /a HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  {
    name: 'Transfer-Encoding: Chunked is forwarded as chunked',
    send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    status: 200,
    upstream: 1,
    check: (_, [r]) => {
      assert.deepEqual(r!.headerAll('transfer-encoding'), ['chunked']);
      assert.equal(r!.header('content-length'), undefined);
      assert.equal(r!.body.toString(), 'hello');
    },
  },
  {
    name: 'chunk extensions and trailer fields are not forwarded',
    send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n`,
    status: 200,
    upstream: 1,
    check: (_, [r]) => {
      assert.equal(r!.body.toString(), 'hello');
      assert.equal(r!.header('trailer'), undefined);
      assert.ok(!r!.raw.toString('latin1').includes('ext=1'));
      assert.ok(!r!.raw.toString('latin1').includes('X-Sum'));
    },
  },
  { name: 'bad chunk size', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'chunk size overflow', send: `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: 0, closes: true },
  // Header syntax
  { name: 'whitespace before colon', send: `POST /a HTTP/1.1\r\n${H}Content-Length : 5\r\n\r\nhello`, status: 400, upstream: 0, closes: true },
  { name: 'obs-fold continuation line', send: `GET /a HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'bare LF line ends', send: `GET /a HTTP/1.1\n${H.trim()}\n\n`, status: 400, upstream: 0, closes: true },
  { name: 'bare CR in a header line', send: `GET /a HTTP/1.1\r\n${H}X-A: b\rX-B: c\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'NUL in a header value', send: `GET /a HTTP/1.1\r\n${H}X-A: b\x00c\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'space in a header name', send: `GET /a HTTP/1.1\r\n${H}X A: b\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'lower-case method', send: `get /a HTTP/1.1\r\n${H}\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'unknown method', send: `FOO /a HTTP/1.1\r\n${H}\r\n`, status: 400, upstream: 0, closes: true },
  // Host
  { name: 'two Host headers', send: `GET /a HTTP/1.1\r\nHost: gw.test\r\nHost: evil.test\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'two Host headers, different case', send: `GET /a HTTP/1.1\r\nhost: gw.test\r\nHOST: gw.test\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'no Host on HTTP/1.1', send: `GET /a HTTP/1.1\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Host with a space', send: `GET /a HTTP/1.1\r\nHost: gw test\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Host with userinfo', send: `GET /a HTTP/1.1\r\nHost: user@gw.test\r\n\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'Host with a path', send: `GET /a HTTP/1.1\r\nHost: gw.test/x\r\n\r\n`, status: 400, upstream: 0, closes: true },
  {
    name: 'HTTP/1.0 without Host reaches the upstream with its own Host',
    send: `GET /a HTTP/1.0\r\n\r\n`,
    status: 200,
    upstream: 1,
    closes: true,
    check: (_, [r]) => assert.deepEqual(r!.headerAll('host'), [upstreamHost]),
  },
  // A request without a body: unframed where Node frames none by default, else declared empty, never chunked
  ...['POST', 'PUT', 'PATCH', 'PROPFIND'].map(
    (method): Case => ({
      name: `${method} without a body is forwarded with Content-Length: 0`,
      send: `${method} /a HTTP/1.1\r\n${H}\r\n`,
      status: 200,
      upstream: 1,
      check: (_, [r]) => {
        assert.deepEqual(r!.headerAll('content-length'), ['0']);
        assert.deepEqual(r!.headerAll('transfer-encoding'), []);
      },
    }),
  ),
  ...['GET', 'DELETE', 'OPTIONS'].map(
    (method): Case => ({
      name: `${method} without a body is forwarded without framing headers`,
      send: `${method} /a HTTP/1.1\r\n${H}\r\n`,
      status: 200,
      upstream: 1,
      check: (_, [r]) => {
        assert.deepEqual(r!.headerAll('content-length'), []);
        assert.deepEqual(r!.headerAll('transfer-encoding'), []);
      },
    }),
  ),
  // Versions
  { name: 'HTTP/0.9 request line', send: `GET /a\r\n\r\n`, status: 505, upstream: 0, closes: true },
  { name: 'HTTP/2.0 request line', send: `GET /a HTTP/2.0\r\n${H}\r\n`, status: 505, upstream: 0, closes: true },
  { name: 'HTTP/1.2', send: `GET /a HTTP/1.2\r\n${H}\r\n`, status: 400, upstream: 0, closes: true },
  { name: 'HTTP/2 preface', send: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 400, upstream: 0, closes: true },
  // Smuggling
  {
    name: 'a request inside a Content-Length body stays body',
    send: `POST /a HTTP/1.1\r\n${H}Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
    status: 200,
    upstream: 1,
    check: (_, [r]) => {
      assert.equal(r!.target, '/a');
      assert.equal(r!.body.toString('latin1'), smuggled);
    },
  },
  {
    name: '1,000 filler headers and Content-Length (reported): 431, nothing forwarded',
    send: `POST /a HTTP/1.1\r\n${H}${fillers(1000)}Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
    status: 431,
    upstream: 0,
    closes: true,
  },
  {
    name: 'pipelined requests are answered in order',
    send: `GET /p1 HTTP/1.1\r\n${H}\r\nGET /p2 HTTP/1.1\r\n${H}\r\n`,
    status: 200,
    responses: 2,
    upstream: 2,
    check: (got, received) => {
      assert.equal(got.responses.length, 2);
      assert.deepEqual(received.map((r) => r.target), ['/p1', '/p2']);
    },
  },
  {
    name: 'nothing pipelined behind a refused request is forwarded',
    send: `GET /a/../b HTTP/1.1\r\n${H}\r\nGET /after HTTP/1.1\r\n${H}\r\n`,
    status: 400,
    upstream: 0,
    closes: true,
    check: (got) => assert.equal(got.responses.length, 1),
  },
  {
    name: 'nothing pipelined behind an oversized body is forwarded',
    send: `POST /a HTTP/1.1\r\n${H}Content-Length: 5000\r\n\r\n${'x'.repeat(5000)}GET /after HTTP/1.1\r\n${H}\r\n`,
    status: 413,
    upstream: 0,
    closes: true,
  },
  // Hop-by-hop hygiene, both ways
  {
    name: 'hop-by-hop request headers never reach the upstream',
    send:
      `GET /hop HTTP/1.1\r\n${H}Connection: keep-alive, X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n` +
      `Trailer: X-T\r\nUpgrade: h2c\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nX-Shadow-Request: 1\r\nX-Keep: yes\r\n\r\n`,
    status: 200,
    upstream: 1,
    check: (got, [r]) => {
      for (const name of ['x-private', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection', 'x-shadow-request']) {
        assert.equal(r!.header(name), undefined, `${name} must not reach the upstream`);
      }
      assert.equal(r!.header('x-keep'), 'yes');
      assert.equal(r!.header('x-forwarded-for'), '127.0.0.1');
      // and the upstream's hop-by-hop answer headers never reach the client
      for (const name of ['x-upstream-private', 'proxy-authenticate', 'trailer', 'upgrade']) {
        assert.equal(got.first.header(name), undefined, `${name} must not reach the client`);
      }
      // The gateway states its own keep-alive, not the upstream's.
      assert.notEqual(got.first.header('keep-alive'), 'timeout=5');
      assert.equal(got.first.header('x-visible'), 'yes');
      assert.equal(got.first.body.toString(), 'hop');
    },
  },
  {
    name: 'Trailer header with Content-Length in one packet (reported)',
    send: `POST /a HTTP/1.1\r\n${H}Trailer: X-Checksum\r\nContent-Length: 5\r\n\r\nhello`,
    status: 200,
    upstream: 1,
    check: (_, [r]) => {
      assert.equal(r!.header('trailer'), undefined);
      assert.equal(r!.body.toString(), 'hello');
    },
  },
];

describe('raw framing', () => {
  let upstream: CaptureUpstream;
  let gw: TestGateway;
  before(async () => {
    upstream = await startCapture((req) => {
      if (req.target === '/hop') {
        return (
          'HTTP/1.1 200 OK\r\nConnection: X-Upstream-Private\r\nX-Upstream-Private: 1\r\nKeep-Alive: timeout=5\r\n' +
          'Proxy-Authenticate: Basic\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Visible: yes\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhop\r\n0\r\nX-T: 1\r\n\r\n'
        );
      }
      if (req.target === '/slow') return { bytes: ok('slow'), delayMs: 150 };
      if (req.method === 'HEAD') return 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n';
      return ok(`${req.method} ${req.target}`);
    });
    upstreamHost = new URL(upstream.url).host;
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { cap: ${upstream.url} }
limits: { maxBodyBytes: 4kb }
routes:
  - { name: all, backends: [{ upstream: cap }] }
`);
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  for (const c of cases) {
    test(c.name, async () => {
      const { got, received } = await runRawCase(gw.port, upstream, c);
      c.check?.(got, received);
    });
  }

  for (const [name, tail] of [
    ['a malformed head', 'GARBAGE\r\n\r\n'],
    ['a malformed chunked body', `POST /b HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n`],
  ]) {
    test(`${name} pipelined behind a pending request is never answered as that request`, async () => {
      const got = await exchange(gw.port, `GET /slow HTTP/1.1\r\n${H}\r\n${tail}`, { responses: 2, timeoutMs: 2000 });
      assert.equal(got.malformed, false, got.text);
      // Either the slow answer, or a closed connection; never a 400 in its place.
      assert.ok(got.responses.every((r) => r.status === 200), got.text);
      assert.ok(got.closed);
    });
  }

  // Request smuggling through `Connection` (reported): a token naming a
  // framing header once removed it, and Node wrote a GET/HEAD/DELETE/OPTIONS
  // body onto the pooled upstream connection unframed, where it was read as
  // a second request. Every method, both framings, tokens naming framing,
  // Host and the gateway's own headers: exactly one upstream request per
  // client request, framed as parsed, and the next request on the pool is
  // answered as itself.
  const inner = 'GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n';
  const framings = {
    'Content-Length': `Content-Length: ${inner.length}\r\n\r\n${inner}`,
    'Transfer-Encoding': `Transfer-Encoding: chunked\r\n\r\n${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`,
  };
  const tokens = ['content-length', 'Transfer-Encoding', 'host', 'keep-alive, Content-Length, Transfer-Encoding, Host, X-Forwarded-For, X-Forwarded-Host, X-Request-Id'];
  let n = 0;
  for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST', 'PUT', 'PATCH']) {
    for (const [framing, tail] of Object.entries(framings)) {
      for (const token of tokens) {
        test(`${method} framed by ${framing}, Connection: ${token}: one upstream request, body framed`, async () => {
          const id = `/public/${++n}`;
          const before = upstream.requests.length;
          const got = await exchange(gw.port, `${method} ${id} HTTP/1.1\r\nHost: a\r\nConnection: ${token}\r\nX-Request-Id: rid-${n}\r\n${tail}`, {
            headRequests: method === 'HEAD' ? new Set([0]) : new Set(),
          });
          assert.equal(got.first.status, 200, got.text);
          // The next request shares the pooled upstream connection: it must get its own answer.
          const next = await exchange(gw.port, `GET /next/${n} HTTP/1.1\r\nHost: a\r\n\r\n`);
          assert.equal(next.first.body.toString(), `GET /next/${n}`);
          const received = upstream.requests.slice(before);
          assert.deepEqual(
            received.map((r) => `${r.method} ${r.target}`),
            [`${method} ${id}`, `GET /next/${n}`],
          );
          assert.ok(!upstream.headTargets.has('/admin'), 'nothing smuggled reached the upstream');
          assert.deepEqual(upstream.unparsable, []);
          const r = received[0]!;
          assert.equal(r.body.toString('latin1'), inner);
          if (framing === 'Content-Length') assert.deepEqual(r.headerAll('content-length'), [String(inner.length)]);
          else assert.deepEqual(r.headerAll('transfer-encoding'), ['chunked']);
          assert.deepEqual(r.headerAll('host'), ['a']);
          assert.equal(r.header('x-forwarded-for'), '127.0.0.1');
          assert.equal(r.header('x-forwarded-host'), 'a');
          assert.equal(r.header('x-request-id'), `rid-${n}`);
        });
      }
    }
  }
});
