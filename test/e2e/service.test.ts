/**
 * Running under a service manager: `gatewayctl reload` confirms or refuses
 * a reload with the gateway's own verdict (what the systemd unit's
 * ExecReload runs), a reverted bad edit clears the reload-failure gauge, and
 * `serve` speaks systemd's notify protocol through the real systemd-notify.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, spawnServe, type ServeProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { notifyUnavailable, startNotifySocket, type NotifySocket } from '../helpers/notify.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';

const configFor = (upstream: TestUpstream, prefix: string) => `listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  ${upstream.name}: ${upstream.url}
routes:
  - name: app
    match: { prefix: ${prefix} }
    backends: [{ upstream: ${upstream.name} }]
`;

async function reloadGauge(serve: ServeProcess): Promise<number> {
  const text = (await request(serve.adminUrl + '/metrics')).body.toString();
  return metricValue(text, METRIC.configLastReloadSuccessful);
}

describe('gatewayctl reload and the service manager', () => {
  let upstream: TestUpstream;
  let tmp: ReturnType<typeof tempDir>;
  let file: string;
  let serve: ServeProcess;
  let notify: NotifySocket | undefined;
  const unavailable = notifyUnavailable();

  before(async () => {
    upstream = await startUpstream('v1');
    tmp = tempDir();
    file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(file, configFor(upstream, '/'));
    if (!unavailable) notify = await startNotifySocket();
    serve = await spawnServe(['-c', file], notify ? { env: { NOTIFY_SOCKET: notify.path } } : {});
  });

  after(async () => {
    await serve?.stop('SIGKILL');
    notify?.close();
    await upstream?.close();
    tmp?.remove();
  });

  test('a valid edit: exit 0 with the new generation', async () => {
    writeFileSync(file, configFor(upstream, '/api'));
    const result = await runCli(['reload', '--admin', serve.adminUrl]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /config (generation 2 applied|unchanged \(generation 2\))/);
    assert.equal((await request(serve.url + '/api/x')).status, 200);
    assert.equal((await request(serve.url + '/other')).status, 404);
  });

  test('a refused edit: exit 1 with the errors; the previous config keeps serving', async () => {
    writeFileSync(file, configFor(upstream, '/api').replace('backends: [{ upstream: v1 }]', 'backends: [{ upstream: nowhere }]'));
    const result = await runCli(['reload', '--admin', serve.adminUrl]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, /config refused/);
    assert.match(result.stderr, /^ {2}\d+:\d+: error: .*nowhere/m);
    assert.equal(await reloadGauge(serve), 0);
    assert.equal((await request(serve.url + '/api/x')).status, 200);

    const json = await runCli(['reload', '--admin', serve.adminUrl, '--json']);
    assert.equal(json.code, 1);
    const answer = JSON.parse(json.stdout);
    assert.equal(answer.status, 422);
    assert.ok(answer.errors.length >= 1);
  });

  test('reverting the bad edit byte for byte clears the failure', async () => {
    writeFileSync(file, configFor(upstream, '/api'));
    const result = await runCli(['reload', '--admin', serve.adminUrl]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /config unchanged \(generation 2\)/);
    assert.equal(await reloadGauge(serve), 1);
  });

  test('an unreachable admin API: exit 1, naming it', async () => {
    const result = await runCli(['reload', '--admin', 'http://127.0.0.1:1']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot reach the admin API at http:\/\/127\.0\.0\.1:1/);
  });

  test('systemd notify: READY=1 when listening, RELOADING=1 then READY=1 per reload, STOPPING=1 on drain', { skip: unavailable }, async () => {
    const messages = notify!.messages;
    assert.match(messages[0]!, /^READY=1 STATUS=serving config generation 1 with 1 worker$/);
    const reloadsBefore = messages.filter((m) => m.startsWith('RELOADING=1')).length;
    assert.ok(reloadsBefore >= 3, `one RELOADING=1 per reload so far: ${JSON.stringify(messages)}`);
    for (let i = 1; i < messages.length; i++) {
      if (messages[i]!.startsWith('RELOADING=1')) {
        assert.match(messages[i]!, /^RELOADING=1 MONOTONIC_USEC=\d+$/);
        assert.equal(messages[i + 1], 'READY=1', `READY=1 follows each RELOADING=1: ${JSON.stringify(messages)}`);
      }
    }
    const code = await serve.stop('SIGTERM');
    assert.equal(code, 0);
    await notify!.waitFor((m) => m.at(-1) === 'STOPPING=1');
  });
});

describe('serve --drain-delay (behind a load balancer)', () => {
  test('on SIGTERM readiness fails at once, new connections are still served for the delay, then it drains and exits 0', async () => {
    const upstream = await startUpstream('v1');
    const tmp = tempDir();
    const file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(file, configFor(upstream, '/'));
    const serve = await spawnServe(['-c', file, '--drain-delay', '3s']);
    try {
      assert.equal((await request(serve.adminUrl + '/readyz')).status, 200);
      serve.child.kill('SIGTERM');
      await serve.waitForLog((l) => l.event === 'gateway.signal');
      assert.equal((await request(serve.adminUrl + '/readyz')).status, 503, 'not ready while withdrawing');
      const answer = await request(serve.url + '/still-served', { headers: { connection: 'close' } });
      assert.equal(answer.status, 200, 'a new connection during the delay is served');
      assert.equal(await serve.exited, 0);
      const signal = serve.logs.find((l) => l.event === 'gateway.signal')!;
      const stopped = serve.logs.find((l) => l.event === 'gateway.draining')!;
      assert.ok(Date.parse(stopped.time) - Date.parse(signal.time) >= 2900, 'draining began after the delay');
    } finally {
      await serve.stop('SIGKILL');
      await upstream.close();
      tmp.remove();
    }
  });
});
