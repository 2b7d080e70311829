/**
 * The CLI as users run it: exit codes, config discovery, serve's lifecycle.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { runCli, spawnServe } from '../helpers/cli.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

describe('gatewayctl CLI', () => {
  const tmp = tempDir();
  let upstream: TestUpstream;
  const validConfig = (port = 0) => `
listen: 127.0.0.1:${port}
admin: 127.0.0.1:0
upstreams:
  v1: ${upstream.url}
routes:
  - name: all
    backends: [{ upstream: v1 }]
`;
  before(async () => {
    upstream = await startUpstream('v1');
  });
  after(async () => {
    await upstream.close();
    tmp.remove();
  });

  test('--help exits 0 and shows examples', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: gatewayctl/);
    const serve = await runCli(['serve', '--help']);
    assert.equal(serve.code, 0);
    assert.match(serve.stdout, /Examples:/);
    assert.match(serve.stdout, /--workers/);
  });

  test('--version exits 0', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  });

  test('usage errors exit 2', async () => {
    assert.equal((await runCli(['frobnicate'])).code, 2);
    assert.equal((await runCli(['validate', '--no-such-flag'])).code, 2);
    assert.equal((await runCli(['serve', '--log-format', 'xml', '-c', 'config/gateway.yaml'])).code, 2);
  });

  test('a missing or unreadable config file exits 2', async () => {
    const r = await runCli(['validate', '-c', join(tmp.dir, 'nope.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no such file/);
    assert.equal((await runCli(['validate', '-c', tmp.dir])).code, 2);
    assert.equal((await runCli(['serve', '-c', join(tmp.dir, 'nope.yaml')])).code, 2);
  });

  test('config discovery: --config, then $GATEWAYCTL_CONFIG, then ./gateway.yaml', async () => {
    const file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(file, validConfig());
    assert.equal((await runCli(['validate'], { cwd: tmp.dir })).code, 0);
    const env = await runCli(['validate'], { env: { GATEWAYCTL_CONFIG: file } });
    assert.equal(env.code, 0);
    assert.match(env.stderr, /valid: 1 route/);
    const bad = join(tmp.dir, 'bad.yaml');
    writeFileSync(bad, 'routes: nope\n');
    const flagWins = await runCli(['validate', '-c', bad], { env: { GATEWAYCTL_CONFIG: file } });
    assert.equal(flagWins.code, 1);
  });

  test('validate --json prints {severity, message, path, line, column}', async () => {
    const r = await runCli(['validate', '--json', '-c', 'test/fixtures/validate/unknown-keys.yaml']);
    assert.equal(r.code, 1);
    const problems = JSON.parse(r.stdout);
    assert.deepEqual(
      problems.map((p: any) => [p.severity, p.path, p.line, p.column]),
      [
        ['error', 'routes[0].match.prefx', 7, 7],
        ['error', 'routes[0].backends[0].wieght', 10, 9],
        ['error', 'timeout', 11, 1],
      ],
    );
    assert.match(problems[0].message, /did you mean "prefix"/);
  });

  test('validate shows a code frame when asked', async () => {
    const r = await runCli(['validate', '--frame', '-c', 'test/fixtures/validate/weights.yaml']);
    assert.match(r.stdout, /> 16 \|         weight: -5\n\s+\|\s+\^/);
  });

  test('a huge config is refused quickly with a clear error', async () => {
    const file = join(tmp.dir, 'huge.yaml');
    writeFileSync(file, '# filler\n'.repeat(600_000));
    const started = Date.now();
    const r = await runCli(['validate', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /huge\.yaml:1:1: error: config is \d+ bytes; the limit is/);
    assert.ok(Date.now() - started < 3000);
  });

  test('serve refuses an invalid config with the same messages, exit 1', async () => {
    const r = await runCli(['serve', '-c', 'test/fixtures/validate/undefined-upstreams.yaml']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /undefined-upstreams\.yaml:8:19: error: routes\[0\]\.backends\[1\]\.upstream: upstream "shop-v9" is not defined/);
    assert.match(r.stderr, /not starting/);
  });

  test('serve proxies, logs JSON lines, and exits 0 on SIGTERM', async () => {
    const file = join(tmp.dir, 'serve.yaml');
    writeFileSync(file, validConfig());
    const serve = await spawnServe(['-c', file]);
    try {
      const r = await request(serve.url + '/hello');
      assert.equal(r.status, 200);
      assert.equal(r.json().upstream, 'v1');
      assert.ok(serve.logs.every((l) => typeof l.time === 'string' && typeof l.level === 'string' && typeof l.msg === 'string'));
    } finally {
      assert.equal(await serve.stop('SIGTERM'), 0);
    }
  });

  test('init writes a starter config that validates cleanly, and never overwrites', async () => {
    const file = join(tmp.dir, 'starter.yaml');
    const first = await runCli(['init', '-c', file]);
    assert.equal(first.code, 0);
    const check = await runCli(['validate', '-c', file]);
    assert.equal(check.code, 0);
    assert.equal(check.stdout, '', 'no warnings either');
    const again = await runCli(['init', '-c', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);
  });

  test('serve fails cleanly when the port is taken', async () => {
    const file = join(tmp.dir, 'taken.yaml');
    writeFileSync(file, validConfig(upstream.port));
    const r = await runCli(['serve', '-c', file, '--log-format', 'json']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot listen: EADDRINUSE/);
  });
});
