/**
 * The access log on real sockets: one line per request with the exact
 * fields, secrets kept out, the combined format, and rotation by rename plus
 * SIGUSR1 against a real serve process, losing no line.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateConfigFile } from '../../src/config/validate.js';
import { ACCESS_LOG_FIELDS } from '../../src/config/schema.js';
import { spawnServe } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';

const lines = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.length > 0)
    : [];

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('access log', () => {
  const tmp = tempDir('gatewayctl-access-');
  let primary: TestUpstream;
  let shadow: TestUpstream;
  before(async () => {
    primary = await startUpstream('primary');
    shadow = await startUpstream('shadow');
  });
  after(async () => {
    await primary.close();
    await shadow.close();
    tmp.remove();
  });

  test('json: one line per request, the exact fields, secrets left out', async () => {
    const file = join(tmp.dir, 'access.json.log');
    const gw: TestGateway = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { primary: ${primary.url}, shadow: ${shadow.url} }
accessLog: { path: ${file}, format: json, headers: [user-agent, x-tenant] }
routes:
  - name: mirrored
    match: { prefix: /m }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: shadow }]
  - name: api
    match: { prefix: /api }
    backends: [{ upstream: primary }]
`);
    try {
      await request(gw.url + '/api/items?token=s3cr3t-value&page=2', {
        headers: { authorization: 'Bearer s3cr3t-bearer', cookie: 'session=s3cr3t-cookie', 'user-agent': 'probe/1', 'x-tenant': 't1', 'x-request-id': 'rid-1' },
      });
      await request(gw.url + '/nowhere', { headers: { 'x-request-id': 'rid-2' } });
      await request(gw.url + '/m/x', { headers: { 'x-request-id': 'rid-3' } });
      await request(gw.url + '/api/%2Fbad', { headers: { 'x-request-id': 'rid-4' } });
      await until('four lines', () => lines(file).length >= 4);
      await new Promise((r) => setTimeout(r, 200));
      const text = readFileSync(file, 'utf8');
      assert.doesNotMatch(text, /s3cr3t/, 'no secret in the log');
      const got = lines(file).map((l) => JSON.parse(l));
      assert.equal(got.length, 4, 'one line per request');
      const byId = new Map(got.map((l) => [l.requestId, l]));
      for (const line of got) assert.deepEqual(Object.keys(line), [...ACCESS_LOG_FIELDS, 'headers']);

      const api = byId.get('rid-1');
      assert.equal(api.route, 'api');
      assert.equal(api.upstream, 'primary');
      assert.equal(api.endpoint, '0');
      assert.equal(api.method, 'GET');
      assert.equal(api.path, '/api/items?token=(redacted)&page=2');
      assert.equal(api.status, 200);
      assert.equal(api.client, '127.0.0.1');
      assert.equal(api.retries, 0);
      assert.equal(api.shadow, null);
      assert.ok(api.bytes > 0);
      assert.ok(api.durationMs >= api.upstreamMs && api.upstreamMs > 0);
      assert.ok(!Number.isNaN(Date.parse(api.time)));
      assert.deepEqual(api.headers, { 'user-agent': 'probe/1', 'x-tenant': 't1' });

      const none = byId.get('rid-2');
      assert.equal(none.status, 404);
      assert.equal(none.route, null);
      assert.equal(none.upstreamMs, null);

      const mirrored = byId.get('rid-3');
      assert.equal(mirrored.route, 'mirrored');
      assert.equal(mirrored.shadow, 'completed', "the copy's outcome");

      assert.equal(byId.get('rid-4').status, 400);
    } finally {
      await gw.close();
    }
  });

  test('combined: the usual format, then the gateway fields', async () => {
    const file = join(tmp.dir, 'access.combined.log');
    const gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { primary: ${primary.url} }
accessLog: { path: ${file}, format: combined }
routes:
  - name: api
    backends: [{ upstream: primary }]
`);
    try {
      await request(gw.url + '/a?b="c"', { headers: { 'user-agent': 'probe "2"', referer: 'http://x/?password=hunter2', 'x-request-id': 'rid-9' } });
      await until('a line', () => lines(file).length >= 1);
      const [line] = lines(file);
      assert.match(
        line!,
        /^127\.0\.0\.1 - - \[\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/a\?b=%22c%22 HTTP\/1\.1" 200 \d+ "http:\/\/x\/\?password=\(redacted\)" "probe \\x222\\x22" requestId=rid-9 route=api upstream=primary endpoint=0 durationMs=[\d.]+ upstreamMs=[\d.]+ retries=0 shadow=-$/,
      );
    } finally {
      await gw.close();
    }
  });

  test('a full disk: requests are served, lines dropped and counted', { skip: !existsSync('/dev/full') && 'no /dev/full here' }, async () => {
    const gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { primary: ${primary.url} }
accessLog: { path: /dev/full }
routes:
  - name: api
    backends: [{ upstream: primary }]
`);
    try {
      for (let i = 0; i < 20; i++) assert.equal((await request(gw.url + '/x')).status, 200);
      const dropped = async () => metricValue((await request(gw.adminUrl + '/metrics')).text, METRIC.accessLogDropped);
      const end = Date.now() + 5000;
      while ((await dropped()) < 20 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await dropped(), 20);
      assert.ok(gw.logs.some((l) => l.event === 'access-log.error' && /ENOSPC/.test(l.message)));
    } finally {
      await gw.close();
    }
  });

  test('a credential header in the allow-list is refused', () => {
    const file = join(tmp.dir, 'bad.yaml');
    writeFileSync(file, `upstreams: { a: http://127.0.0.1:1 }\naccessLog: { path: stdout, headers: [Authorization, x-api-key] }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n`);
    const result = validateConfigFile(file);
    assert.equal(result.config, undefined);
    assert.equal(result.diagnostics.filter((d) => d.code === 'secret-header').length, 2);
  });

  test('rotation by rename plus SIGUSR1 loses no line', async () => {
    const file = join(tmp.dir, 'rotate.log');
    const config = join(tmp.dir, 'rotate.yaml');
    writeFileSync(
      config,
      `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nupstreams: { primary: ${primary.url} }\naccessLog: { path: ${file} }\nroutes: [{ name: r, backends: [{ upstream: primary }] }]\n`,
    );
    const serve = await spawnServe(['-c', config]);
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const total = 600;
      let sent = 0;
      const loop = async () => {
        while (sent < total) {
          const n = sent++;
          const a = await request(`${serve.url}/r/${n}`, { agent, headers: { 'x-request-id': `n-${n}` } });
          assert.equal(a.status, 200);
        }
      };
      const loops = [loop(), loop(), loop(), loop()];
      await until('some traffic', () => sent > 150);
      renameSync(file, file + '.1');
      serve.child.kill('SIGUSR1');
      await until('the new file', () => existsSync(file) && lines(file).length > 0);
      await Promise.all(loops);
      agent.destroy();
      await until('every line', () => lines(file + '.1').length + lines(file).length >= total);
      await new Promise((r) => setTimeout(r, 300));
      const ids = [...lines(file + '.1'), ...lines(file)].map((l) => JSON.parse(l).requestId);
      assert.equal(ids.length, total, 'no line lost or doubled');
      assert.equal(new Set(ids).size, total);
      assert.ok(lines(file + '.1').length > 0 && lines(file).length > 0, 'both files have lines');
      assert.ok(serve.logs.some((l) => l.event === 'gateway.reopen-logs'));
    } finally {
      await serve.stop('SIGTERM');
    }
  });
});
