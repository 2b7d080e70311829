/**
 * HTTP/2 clients at the edge, browser-style: Node's http2 client and curl
 * over TLS (h2 chosen by ALPN) and over h2c (prior knowledge), with
 * HTTP/1.1 still served on the same port.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { fixture, pem } from '../helpers/tls.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const run = promisify(execFile);

function h2Get(url: string, path: string, headers: http2.OutgoingHttpHeaders = {}, options: http2.SecureClientSessionOptions = {}): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, options);
    session.on('error', reject);
    const req = session.request({ ':path': path, ...headers });
    let body = '';
    let head: http2.IncomingHttpHeaders = {};
    req.setEncoding('utf8');
    req.on('response', (h) => (head = h));
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      session.close();
      resolve({ status: Number(head[':status']), headers: head, body });
    });
    req.on('error', reject);
  });
}

const routes = `
upstreams:
  v1: \${V1}
  v2: \${V2}
routes:
  - name: api
    match: { prefix: /api }
    backends: [{ upstream: v1, weight: 50 }, { upstream: v2, weight: 50 }]
    sticky: { header: x-user }
  - name: other
    match: { host: other.example.com }
    backends: [{ upstream: v2 }]
`;

describe('HTTP/2 at the edge', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  let clear: TestGateway;
  let secure: TestGateway;
  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
    const body = routes.replace('${V1}', v1.url).replace('${V2}', v2.url);
    clear = await startGateway(`listen: { address: 127.0.0.1:0, h2c: true }\nadmin: 127.0.0.1:0\n${body}`);
    secure = await startGateway(`listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\ntls:\n  cert: ${fixture('example.pem')}\n  key: ${fixture('example.key')}\n${body}`);
  });
  after(async () => {
    await clear.close();
    await secure.close();
    await v1.close();
    await v2.close();
  });

  test('over TLS a client offering h2 gets h2; the upstream sees an ordinary HTTP/1.1 request', async () => {
    const answer = await h2Get(`https://127.0.0.1:${secure.port}`, '/api/items?x=1', { ':authority': 'shop.example.com', 'x-user': 'u1' }, { ca: pem('ca.pem'), servername: 'shop.example.com' });
    assert.equal(answer.status, 200);
    const echoed = JSON.parse(answer.body);
    assert.equal(echoed.url, '/api/items?x=1');
    const seen = [...v1.received, ...v2.received].find((r) => r.url === '/api/items?x=1')!;
    assert.equal(seen.headers.host, 'shop.example.com');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.ok(answer.headers['x-request-id']);
    // No pseudo-header leaks upstream.
    assert.ok(!Object.keys(seen.headers).some((h) => h.startsWith(':')));
  });

  test(':authority routes like Host, and a sticky key keeps a user on one backend', async () => {
    const other = await h2Get(`http://127.0.0.1:${clear.port}`, '/anything', { ':authority': 'other.example.com' });
    assert.equal(JSON.parse(other.body).upstream, 'v2');
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(JSON.parse((await h2Get(`http://127.0.0.1:${clear.port}`, '/api/x', { 'x-user': 'carol' })).body).upstream);
    assert.equal(seen.size, 1);
  });

  test('HTTP/1.1 on the h2c listener is unchanged', async () => {
    const answer = await request(clear.url + '/api/plain');
    assert.equal(answer.status, 200);
  });

  test('no route: 404 over h2, counted like HTTP/1.1', async () => {
    const answer = await h2Get(`http://127.0.0.1:${clear.port}`, '/nowhere', { ':authority': 'unknown.example.org' });
    assert.equal(answer.status, 404);
    assert.equal(JSON.parse(answer.body).error, 'no route matches this request');
  });

  test('curl --http2 over TLS and --http2-prior-knowledge over cleartext', async () => {
    const tls = await run('curl', ['-sS', '--http2', '--cacert', fixture('ca.pem'), '--resolve', `shop.example.com:${secure.port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://shop.example.com:${secure.port}/api/curl`]);
    assert.equal(tls.stdout, '2 200');
    const h2c = await run('curl', ['-sS', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `http://127.0.0.1:${clear.port}/api/curl`]);
    assert.equal(h2c.stdout, '2 200');
    // A request body streams through too.
    const post = await run('curl', ['-sS', '--http2-prior-knowledge', '--data-binary', 'hello body', `http://127.0.0.1:${clear.port}/api/post`]);
    assert.equal(JSON.parse(post.stdout).bodyBytes, 'hello body'.length);
  });

  test('without h2c, a cleartext HTTP/2 preface is not HTTP/2', async () => {
    const plain = await startGateway(`listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${routes.replace('${V1}', v1.url).replace('${V2}', v2.url)}`);
    try {
      const h2c = await run('curl', ['-sS', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `http://127.0.0.1:${plain.port}/api/curl`]).catch((err: { stdout: string }) => err);
      assert.notEqual(h2c.stdout, '2 200');
    } finally {
      await plain.close();
    }
  });
});
