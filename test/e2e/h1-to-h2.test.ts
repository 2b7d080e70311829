/**
 * HTTP/1.1 clients (node:http and curl --http1.1) through the real gateway
 * to real node:http2 upstreams (`protocol: h2c`, and `h2` over TLS): the
 * HTTP/1.1 path forwards on the pooled HTTP/2 sessions with the same
 * hygiene, deadlines, failures, trailers, cancellation, canary split and
 * shadow copies as it has towards HTTP/1.1 upstreams.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { fixture, pem } from '../helpers/tls.js';
import { deadPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';

const run = promisify(execFile);
const FIVE_MB = 5 * 1024 * 1024;
const BIG = randomBytes(FIVE_MB);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

interface SeenStream {
  readonly path: string;
  readonly headers: http2.IncomingHttpHeaders;
  /** Resolves with the stream's RST_STREAM code once it closed (0: ended normally). */
  readonly closed: Promise<number>;
}

/** A real HTTP/2 upstream (no HTTP/1.1 fallback) answering by path; it records the streams it got. */
class H2Upstream {
  readonly seen: SeenStream[] = [];
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly waiting: ((s: SeenStream) => void)[] = [];
  private constructor(
    readonly name: string,
    readonly server: http2.Http2Server | http2.Http2SecureServer,
  ) {
    server.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.on('error', () => undefined);
      session.once('close', () => this.sessions.delete(session));
    });
    server.on('stream', (stream, headers) => this.answer(stream, headers));
  }

  static async start(name: string, secure: boolean): Promise<H2Upstream> {
    const server = secure ? http2.createSecureServer({ cert: pem('localhost.pem'), key: pem('localhost.key') }) : http2.createServer();
    const upstream = new H2Upstream(name, server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return upstream;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The next stream this upstream receives. */
  nextStream(): Promise<SeenStream> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private answer(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const path = String(headers[':path']);
    const closed = new Promise<number>((resolve) => stream.once('close', () => resolve(stream.rstCode ?? 0)));
    const seen = { path, headers, closed };
    this.seen.push(seen);
    for (const w of this.waiting.splice(0)) w(seen);
    if (path.includes('/hang')) return; // never answers
    if (path.includes('/big')) {
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'x-sha256': sha256(BIG) });
      // In 64 KB pieces, with backpressure.
      let offset = 0;
      const more = () => {
        while (offset < BIG.length) {
          const piece = BIG.subarray(offset, (offset += 64 * 1024));
          if (!stream.write(piece)) return void stream.once('drain', more);
        }
        stream.end();
      };
      return more();
    }
    if (path.includes('/cut')) {
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.write('part of the answer');
      // RST_STREAM INTERNAL_ERROR with the answer unfinished (close() would end it first).
      setTimeout(() => stream.destroy(new Error('upstream fails mid-answer')), 50);
      return;
    }
    const hash = createHash('sha256');
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    stream.on('end', () => {
      const body = JSON.stringify({ upstream: this.name, method: headers[':method'], path, bodyBytes: bytes, sha256: hash.digest('hex') });
      if (path.includes('/trailers')) {
        stream.respond({ ':status': 200, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), trailer: 'x-checksum' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc123', 'x-count': '2' }));
      } else {
        stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-upstream': this.name });
      }
      stream.end(body);
    });
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: Buffer;
}

/** One HTTP/1.1 request on a fresh connection, its body (if any) written in 64 KB pieces. */
function h1(port: number, path: string, options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: { host: 'shop.example.com', ...options.headers }, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('response aborted')));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) }));
    });
    const body = options.body;
    if (!body) return void req.end();
    let offset = 0;
    const more = () => {
      while (offset < body.length) {
        if (!req.write(body.subarray(offset, (offset += 64 * 1024)))) return void req.once('drain', more);
      }
      req.end();
    };
    more();
  });
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

const metricsText = async (gw: TestGateway) => (await request(gw.adminUrl + '/metrics')).text;

describe('HTTP/1.1 clients to HTTP/2 upstreams', () => {
  let clear: H2Upstream;
  let secure: H2Upstream;
  let other: H2Upstream;
  let plain: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    clear = await H2Upstream.start('h2c-upstream', false);
    secure = await H2Upstream.start('tls-upstream', true);
    other = await H2Upstream.start('other-h2c', false);
    plain = await startUpstream('http1-upstream');
    const dead = await deadPort();
    gw = await startGateway(`
listen: { address: 127.0.0.1:0, h2c: true }
admin: 127.0.0.1:0
upstreams:
  clear: { url: http://127.0.0.1:${clear.port}/base, protocol: h2c }
  secure: { url: https://127.0.0.1:${secure.port}, protocol: h2, tls: { ca: ${fixture('ca.pem')} } }
  slow: { url: http://127.0.0.1:${clear.port}, protocol: h2c, timeout: 300ms }
  down: { url: http://127.0.0.1:${dead}, protocol: h2c }
  downplain: { url: http://127.0.0.1:${dead} }
  plain: ${plain.url}
  other: { url: http://127.0.0.1:${other.port}, protocol: h2c }
  pair: { endpoints: [http://127.0.0.1:${dead}, http://127.0.0.1:${clear.port}], protocol: h2c, retry: { attempts: 2, on: [connect] } }
routes:
  - name: clear
    match: { prefix: /c }
    backends: [{ upstream: clear }]
  - name: secure
    match: { prefix: /s }
    backends: [{ upstream: secure }]
  - name: slow
    match: { prefix: /hang-slow }
    backends: [{ upstream: slow }]
  - name: down
    match: { prefix: /down }
    backends: [{ upstream: down }]
  - name: downplain
    match: { prefix: /plaindown }
    backends: [{ upstream: downplain }]
  - name: canary
    match: { prefix: /canary }
    backends: [{ upstream: plain, weight: 50 }, { upstream: other, weight: 50 }]
    sticky: { header: x-user }
  - name: shadowed
    match: { prefix: /shadowed }
    backends: [{ upstream: clear }]
    shadow: [{ upstream: other }]
  - name: pair
    match: { prefix: /pair }
    backends: [{ upstream: pair }]
  - name: rest
    match: { prefix: / }
    backends: [{ upstream: clear }]
`);
  });
  after(async () => {
    await gw.close();
    await clear.close();
    await secure.close();
    await other.close();
    await plain.close();
  });

  test('a GET over h2c: Host becomes :authority, connection-specific headers stay behind, the answer is relayed', async () => {
    const seen = clear.nextStream();
    const reply = await h1(gw.port, '/c/items?x=1', { headers: { connection: 'keep-alive, x-drop', 'x-drop': '1', 'keep-alive': 'timeout=5', te: 'gzip', 'x-kept': 'yes' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-upstream'], 'h2c-upstream');
    assert.ok(reply.headers['x-request-id']);
    const { headers } = await seen;
    assert.equal(headers[':authority'], 'shop.example.com');
    assert.equal(headers[':path'], '/base/c/items?x=1');
    assert.equal(headers[':scheme'], 'http');
    assert.equal(headers['x-kept'], 'yes');
    assert.equal(headers['x-request-id'], reply.headers['x-request-id']);
    assert.equal(headers['x-forwarded-proto'], 'http');
    for (const name of ['host', 'connection', 'keep-alive', 'x-drop', 'te', 'transfer-encoding']) assert.equal(headers[name], undefined, name);
    // Counted once the gateway's response has closed, which may come just after the client read it.
    await until(async () => metricValue(await metricsText(gw), METRIC.requests, { route: 'clear', upstream: 'clear', code: '200' }) >= 1);
  });

  test('curl --http1.1 to an h2c and to a TLS h2 upstream', async () => {
    for (const path of ['/c/curl', '/s/curl']) {
      const out = await run('curl', ['-sS', '--http1.1', '-H', 'Host: shop.example.com', '-w', '\n%{http_version} %{http_code}', `http://127.0.0.1:${gw.port}${path}`]);
      const [body, status] = out.stdout.split('\n');
      assert.equal(status, '1.1 200');
      assert.equal(JSON.parse(body!).upstream, path === '/c/curl' ? 'h2c-upstream' : 'tls-upstream');
    }
    assert.equal(secure.seen.at(-1)!.headers[':scheme'], 'https');
  });

  test('a 5 MB body streams up (POST) and down (GET), over h2c and TLS h2', async () => {
    for (const prefix of ['/c', '/s']) {
      const posted = await h1(gw.port, `${prefix}/upload`, { method: 'POST', body: BIG, headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(posted.status, 200);
      const answer = JSON.parse(posted.body.toString());
      assert.equal(answer.bodyBytes, FIVE_MB);
      assert.equal(answer.sha256, sha256(BIG));
      // Chunked upload, its length unknown in advance.
      const chunked = await h1(gw.port, `${prefix}/upload`, { method: 'POST', body: BIG, headers: { 'transfer-encoding': 'chunked' } });
      assert.equal(JSON.parse(chunked.body.toString()).bodyBytes, FIVE_MB);
      const downloaded = await h1(gw.port, `${prefix}/big`);
      assert.equal(downloaded.body.length, FIVE_MB);
      assert.equal(sha256(downloaded.body), downloaded.headers['x-sha256']);
    }
    const curl = await run('curl', ['-sS', '--http1.1', '-o', '/dev/null', '-w', '%{size_download}', `http://127.0.0.1:${gw.port}/c/big`]);
    assert.equal(Number(curl.stdout), FIVE_MB);
  });

  test('trailers reach a client that said TE: trailers, in a chunked answer; others get none', async () => {
    const seenWith = clear.nextStream();
    const withTe = await h1(gw.port, '/c/trailers', { headers: { te: 'trailers' } });
    assert.equal((await seenWith).headers['te'], 'trailers');
    assert.equal(withTe.status, 200);
    assert.equal(withTe.headers['transfer-encoding'], 'chunked');
    assert.equal(withTe.headers['content-length'], undefined);
    assert.deepEqual(withTe.trailers, { 'x-checksum': 'abc123', 'x-count': '2' });
    assert.equal(JSON.parse(withTe.body.toString()).upstream, 'h2c-upstream');

    const seenWithout = clear.nextStream();
    const without = await h1(gw.port, '/c/trailers');
    assert.equal((await seenWithout).headers['te'], undefined);
    assert.equal(without.status, 200);
    assert.deepEqual(without.trailers, {});
    assert.equal(JSON.parse(without.body.toString()).upstream, 'h2c-upstream');
  });

  test('an upstream that is down: the same 502 as an HTTP/1.1 upstream that is down', async () => {
    const h2Down = await h1(gw.port, '/down/x');
    const h1Down = await h1(gw.port, '/plaindown/x');
    assert.equal(h1Down.status, 502);
    assert.equal(h2Down.status, 502);
    assert.deepEqual(JSON.parse(h2Down.body.toString()).error, JSON.parse(h1Down.body.toString()).error);
    assert.ok(metricValue(await metricsText(gw), METRIC.upstreamErrors, { route: 'down', upstream: 'down', reason: 'connect' }) >= 1);
  });

  test('a failed connect is tried again on the other endpoint, the request body kept whole until then', async () => {
    const body = BIG.subarray(0, 1024 * 1024);
    for (let i = 0; i < 4; i++) {
      const reply = await h1(gw.port, `/pair/${i}`, { method: 'POST', body });
      assert.equal(reply.status, 200);
      assert.equal(JSON.parse(reply.body.toString()).sha256, sha256(body));
    }
    const text = await metricsText(gw);
    assert.ok(metricValue(text, METRIC.upstreamRetries, { route: 'pair', upstream: 'pair' }) >= 1);
    assert.ok(metricValue(text, METRIC.upstreamErrors, { route: 'pair' }) === 0, 'every request was answered by the live endpoint');
  });

  test('an upstream that does not answer within its timeout: 504, and its stream is cancelled', async () => {
    const seen = clear.nextStream();
    const reply = await h1(gw.port, '/hang-slow');
    assert.equal(reply.status, 504);
    assert.equal(await (await seen).closed, http2.constants.NGHTTP2_CANCEL);
    assert.equal(metricValue(await metricsText(gw), METRIC.upstreamErrors, { route: 'slow', upstream: 'slow', reason: 'timeout' }), 1);
  });

  test('a client that leaves cancels the upstream stream (RST_STREAM CANCEL), mid-upload too', async () => {
    for (const method of ['GET', 'POST']) {
      const seen = clear.nextStream();
      const req = http.request({ host: '127.0.0.1', port: gw.port, path: '/hang', method, headers: method === 'POST' ? { 'transfer-encoding': 'chunked' } : {}, agent: false });
      req.on('error', () => undefined);
      if (method === 'POST') req.write(Buffer.alloc(1024));
      else req.end();
      const stream = await seen;
      req.destroy();
      assert.equal(await stream.closed, http2.constants.NGHTTP2_CANCEL);
    }
  });

  test('an upstream reset mid-answer ends the client answer abruptly', async () => {
    await assert.rejects(h1(gw.port, '/c/cut'), /aborted|socket hang up|ECONNRESET/);
    // The gateway and the pooled session go on serving.
    assert.equal((await h1(gw.port, '/c/after')).status, 200);
  });

  test('the HTTP/2 path relays the same way: a whole answer ends, a reset one is reset', async () => {
    const session = http2.connect(`http://127.0.0.1:${gw.port}`);
    session.on('error', () => undefined);
    const fetch = (path: string) =>
      new Promise<{ status: number; bytes: number; error?: string }>((resolve) => {
        const stream = session.request({ ':path': path });
        let status = 0;
        let bytes = 0;
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', (c: Buffer) => (bytes += c.length));
        stream.on('error', (err: NodeJS.ErrnoException) => resolve({ status, bytes, error: err.code ?? 'error' }));
        stream.on('end', () => resolve({ status, bytes }));
      });
    try {
      const whole = await fetch('/c/big');
      assert.deepEqual(whole, { status: 200, bytes: FIVE_MB });
      const cut = await fetch('/c/cut');
      assert.equal(cut.status, 200);
      assert.equal(cut.error, 'ERR_HTTP2_STREAM_ERROR');
    } finally {
      session.close();
    }
  });

  test('a canary split between an HTTP/1.1 and an h2c upstream; a sticky key stays on one', async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const reply = await h1(gw.port, `/canary/${i}`, { headers: { 'x-user': `user-${i}` } });
      assert.equal(reply.status, 200);
      const upstream = JSON.parse(reply.body.toString()).upstream as string;
      counts.set(upstream, (counts.get(upstream) ?? 0) + 1);
    }
    assert.ok((counts.get('http1-upstream') ?? 0) >= 5, JSON.stringify([...counts]));
    assert.ok((counts.get('other-h2c') ?? 0) >= 5, JSON.stringify([...counts]));
    const sticky = new Set<string>();
    for (let i = 0; i < 8; i++) sticky.add(JSON.parse((await h1(gw.port, '/canary/me', { headers: { 'x-user': 'carol' } })).body.toString()).upstream);
    assert.equal(sticky.size, 1);
  });

  test('shadow copies of such requests go out, and the pair is compared', async () => {
    const reply = await h1(gw.port, '/shadowed/item');
    assert.equal(reply.status, 200);
    await until(() => gw.diffs.store.recent({ route: 'shadowed' }, { limit: 10 }).length > 0);
    await gw.diffs.engine.idle();
    const diffs = gw.diffs.store.recent({ route: 'shadowed' }, { limit: 10 });
    assert.equal(diffs.length, 1);
    const copy = other.seen.find((s) => s.path === '/shadowed/item')!;
    assert.equal(copy.headers['x-shadow-request'], '1');
    // The primary's HTTP/2 answer was captured: the pair differs where the two upstreams' answers do.
    const differences = diffs.flatMap((e) => e.differences.map((d) => [d.kind, d.path, d.primary, d.shadow]));
    assert.deepEqual(
      differences.find((d) => d[0] === 'body' && d[1] === '/upstream'),
      ['body', '/upstream', 'h2c-upstream', 'other-h2c'],
    );
  });
});

