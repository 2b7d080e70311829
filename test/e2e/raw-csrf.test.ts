/**
 * The admin API cannot be driven from a web page: with no token (the
 * default, on loopback), state-changing calls refuse cross-site requests
 * and need JSON or an X-Requested-By header, which no form can send. The
 * CLI and its admin client keep working.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { adminJson } from '../../src/admin/http-client.js';
import { runCli } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { exchange } from '../helpers/raw.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

describe('admin API against cross-site requests', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  let gw: TestGateway;
  let port: number;
  const state = tempDir();
  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
stateDir: ${state.dir}
upstreams: { v1: ${v1.url}, v2: ${v2.url} }
routes:
  - name: shop
    match: { prefix: /shop }
    backends: [{ upstream: v1 }]
    release: { candidate: v2, steps: [10, 100], interval: 10m, minRequests: 1000 }
`);
    port = Number(new URL(gw.adminUrl).port);
  });
  after(async () => {
    await gw.close();
    await v1.close();
    await v2.close();
    state.remove();
  });

  const post = (path: string, headers: string, body = '') =>
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const cases: { name: string; send: string; status: number }[] = [
    { name: 'a cross-site text/plain reload (what a web page can send)', send: post('/reload', 'Origin: http://evil.example\r\nContent-Type: text/plain\r\n', '{}'), status: 403 },
    { name: 'a cross-site form post to a release', send: post('/releases/shop/rollback', 'Origin: http://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\n', 'a=1'), status: 403 },
    { name: 'an opaque origin (sandboxed frame)', send: post('/reload', 'Origin: null\r\nContent-Type: application/json\r\n', '{}'), status: 403 },
    { name: 'another port of the same host (same-site, not same-origin)', send: post('/reload', 'Origin: http://127.0.0.1:1\r\nX-Requested-By: x\r\n'), status: 403 },
    { name: 'Sec-Fetch-Site: cross-site, even with JSON', send: post('/reload', 'Sec-Fetch-Site: cross-site\r\nContent-Type: application/json\r\n', '{}'), status: 403 },
    { name: 'Sec-Fetch-Site: same-site', send: post('/reload', 'Sec-Fetch-Site: same-site\r\nX-Requested-By: x\r\n'), status: 403 },
    { name: 'text/plain with no Origin (an old browser)', send: post('/reload', 'Content-Type: text/plain\r\n', '{}'), status: 403 },
    { name: 'no content type and no X-Requested-By', send: post('/reload', ''), status: 403 },
    { name: 'application/json from a tool', send: post('/reload', 'Content-Type: application/json; charset=utf-8\r\n', '{}'), status: 200 },
    { name: 'X-Requested-By from a tool', send: post('/reload', 'X-Requested-By: curl\r\n'), status: 200 },
    { name: 'the same origin (the console)', send: post('/reload', 'Origin: http://127.0.0.1:PORT\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/json\r\n', '{}'), status: 200 },
    { name: 'reads stay open to simple requests', send: 'GET /releases HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n\r\n', status: 200 },
  ];
  for (const c of cases) {
    test(`${c.name}: ${c.status}`, async () => {
      const got = await exchange(port, c.send.replaceAll('PORT', String(port)), { settleMs: 50 });
      assert.equal(got.first.status, c.status, got.text);
    });
  }

  test('a refused cross-site call changes nothing', async () => {
    const got = await exchange(port, post('/releases/shop/pause', 'Origin: http://evil.example\r\nContent-Type: text/plain\r\n', 'x').replace('PORT', String(port)), { settleMs: 50 });
    assert.equal(got.first.status, 403);
    const [release] = (await adminJson<{ releases: { status: string }[] }>(gw.adminUrl, '/releases')).releases;
    assert.equal(release!.status, 'running');
  });

  test('the CLI still changes state: its admin client reloads, `release pause` pauses', async () => {
    const generation = gw.gateway.config.current.generation;
    gw.writeConfig(readFileSync(gw.configFile, 'utf8').replace('interval: 10m', 'interval: 11m'));
    const reply = await adminJson<{ generation: number }>(gw.adminUrl, '/reload', { method: 'POST' });
    assert.ok(reply.generation > generation, JSON.stringify(reply));
    const cli = await runCli(['release', 'pause', 'shop', '--admin', gw.adminUrl]);
    assert.equal(cli.code, 0, cli.stderr);
    const [release] = (await adminJson<{ releases: { status: string }[] }>(gw.adminUrl, '/releases')).releases;
    assert.equal(release!.status, 'paused');
  });
});
