/**
 * The admin API's guard rails on the wire: loopback unless configured
 * otherwise, the token for every state change when one is set, requests
 * naming a foreign host refused (DNS rebinding), and metric series that
 * never grow with values a client chooses.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateConfigSource } from '../../src/config/validate.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { exchange, ok, prng, startCapture, type CaptureUpstream } from '../helpers/raw.js';

const TOKEN = 'admin-token-0123456789';

describe('raw admin API', () => {
  let upstream: CaptureUpstream;
  let gw: TestGateway;
  let adminPort: number;
  before(async () => {
    upstream = await startCapture((req) => ok(req.method === 'HEAD' ? '' : req.target));
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, token: ${TOKEN} }
upstreams: { cap: ${upstream.url} }
routes:
  - { name: app, match: { prefix: /app }, backends: [{ upstream: cap }] }
`);
    adminPort = Number(new URL(gw.adminUrl).port);
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  test('the admin API binds loopback unless told otherwise', () => {
    const minimal = 'upstreams: { a: http://127.0.0.1:1 }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n';
    for (const admin of ['', 'admin: 9999\n', 'admin: { listen: 9999 }\n']) {
      const result = validateConfigSource({ file: 'g.yaml', text: admin + minimal });
      assert.ok(result.config, JSON.stringify(result.diagnostics));
      assert.equal(result.config.admin.host, '127.0.0.1', admin || '(no admin key)');
    }
  });

  const cases: { name: string; send: string; status: number }[] = [
    { name: 'loopback Host', send: 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n', status: 200 },
    { name: 'localhost Host', send: 'GET /healthz HTTP/1.1\r\nHost: localhost:PORT\r\n\r\n', status: 200 },
    { name: 'IPv6 loopback Host', send: 'GET /healthz HTTP/1.1\r\nHost: [::1]:PORT\r\n\r\n', status: 200 },
    { name: 'no Host on HTTP/1.0', send: 'GET /healthz HTTP/1.0\r\n\r\n', status: 200 },
    { name: 'a foreign Host (DNS rebinding)', send: 'GET /config HTTP/1.1\r\nHost: evil.example:PORT\r\n\r\n', status: 403 },
    { name: 'a Host that only starts like localhost', send: 'GET /config HTTP/1.1\r\nHost: localhost.evil.example\r\n\r\n', status: 403 },
    { name: 'a Host with an unclosed IPv6 bracket', send: 'GET /config HTTP/1.1\r\nHost: [::1\r\n\r\n', status: 403 },
    { name: 'a loopback Host line followed by a foreign one', send: 'GET /config HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n', status: 403 },
    { name: 'an absolute-form target naming a foreign host', send: 'GET http://evil.example/config HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', status: 403 },
    { name: 'a malformed absolute-form target', send: 'GET http://[::1/config HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', status: 400 },
    { name: 'an absolute-form target with a port out of range', send: 'GET http://127.0.0.1:99999/config HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', status: 400 },
    { name: 'a path starting with two slashes is a path, not a host', send: 'GET //evil.example/config HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', status: 404 },
    { name: 'reload without the token', send: 'POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Requested-By: test\r\nContent-Length: 0\r\n\r\n', status: 401 },
    { name: 'reload with a wrong token of the same length', send: `POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${'x'.repeat(TOKEN.length)}\r\nX-Requested-By: test\r\nContent-Length: 0\r\n\r\n`, status: 401 },
    { name: 'reload with the token as Basic', send: `POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic ${TOKEN}\r\nX-Requested-By: test\r\nContent-Length: 0\r\n\r\n`, status: 401 },
    { name: 'reload with the token but a foreign Host', send: `POST /reload HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${TOKEN}\r\nX-Requested-By: test\r\nContent-Length: 0\r\n\r\n`, status: 403 },
    { name: 'reload with the token', send: `POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nX-Requested-By: test\r\nContent-Length: 0\r\n\r\n`, status: 200 },
    { name: 'reload by GET', send: `GET /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`, status: 405 },
    { name: 'reads need no token', send: 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', status: 200 },
    { name: 'a malformed request', send: 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', status: 0 },
  ];
  for (const c of cases) {
    test(`${c.name}: ${c.status || 'closed'}`, async () => {
      const got = await exchange(adminPort, c.send.replace('PORT', String(adminPort)), { settleMs: 50 });
      if (c.status === 0) assert.ok(got.closed && got.responses.length === 0, got.text);
      else assert.equal(got.first.status, c.status, got.text);
      if (c.status === 401) assert.equal(got.first.header('www-authenticate'), 'Bearer');
      if (c.status === 200 && c.send.startsWith('GET /config')) assert.ok(!got.text.includes(TOKEN));
    });
  }

  test('the config view never shows the token', async () => {
    const text = (await request(gw.adminUrl + '/config')).text;
    assert.ok(!text.includes(TOKEN));
  });

  test('metric series never grow with values a client chooses', async () => {
    const seriesOf = async () =>
      new Set(
        (await request(gw.adminUrl + '/metrics')).text
          .split('\n')
          .filter((l) => l.startsWith('gatewayctl_'))
          .map((l) => l.slice(0, l.lastIndexOf(' '))),
      );
    // Warm up the series a normal request creates.
    await request(`${gw.url}/app/warm`);
    await request(`${gw.url}/nowhere`);
    const before = await seriesOf();
    const random = prng(99);
    const token = () => `zq${random.next(1e9).toString(36)}`;
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
    await runConcurrently(300, 10, async (i) => {
      const path = i % 3 === 0 ? `/app/${token()}` : `/${token()}/${token()}`;
      const method = random.pick(methods);
      const headers = `Host: ${token()}.example\r\nX-Request-Id: ${token()}\r\nUser-Agent: ${token()}\r\nX-${token()}: ${token()}\r\n`;
      const bad = i % 5 === 0 ? `X-Bad: a\x00b\r\n` : '';
      await exchange(gw.port, `${method} ${path}?q=${token()} HTTP/1.1\r\n${headers}${bad}\r\n`, { settleMs: 0, headRequests: new Set(method === 'HEAD' ? [0] : []) });
      if (i % 10 === 0) await exchange(adminPort, `GET /${token()} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, { settleMs: 0 });
    });
    const after = await seriesOf();
    const added = [...after].filter((s) => !before.has(s));
    assert.ok(!added.some((s) => s.includes('zq')), added.join('\n'));
    // New series may only be new status codes or refusal reasons, from a fixed set.
    for (const s of added) {
      assert.match(s, /^gatewayctl_(requests_total\{route="(app|unmatched)",upstream="(cap|none)",code="\d{3}"\}|rejected_requests_total\{reason="[a-z_]+"\})$/, s);
    }
    assert.ok(added.length <= 10, added.join('\n'));
  });
});
