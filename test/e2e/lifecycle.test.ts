/**
 * The process lifecycle as systemd drives it: SIGHUP reloads, SIGTERM drains,
 * and `--workers 2` behaves as one gateway.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ALLOCATOR_DEFAULTS } from '../../src/control/process-defaults.js';
import { spawnServe } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const config = (upstream: TestUpstream, slow: TestUpstream) => `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { ${upstream.name}: ${upstream.url}, ${slow.name}: ${slow.url} }
timeouts: { drain: 5s }
routes:
  - { name: slow, match: { prefix: /slow }, backends: [{ upstream: ${slow.name} }] }
  - { name: app, backends: [{ upstream: ${upstream.name} }] }
`;

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('process lifecycle', () => {
  let a: TestUpstream;
  let b: TestUpstream;
  let slow: TestUpstream;
  const tmp = tempDir();
  before(async () => {
    a = await startUpstream('a');
    b = await startUpstream('b');
    slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => res.end('{"upstream":"slow"}'), 1500);
    });
  });
  after(async () => {
    await Promise.all([a.close(), b.close(), slow.close()]);
    tmp.remove();
  });

  test('SIGHUP reloads the config', async () => {
    const file = join(tmp.dir, 'hup.yaml');
    writeFileSync(file, config(a, slow));
    const serve = await spawnServe(['-c', file]);
    try {
      assert.equal((await request(serve.url + '/x')).json().upstream, 'a');
      // Same content, other upstream; the file watcher is not what we test here.
      writeFileSync(file, config(b, slow));
      serve.child.kill('SIGHUP');
      await serve.waitForLog((l) => l.event === 'config.reloaded');
      assert.equal((await request(serve.url + '/x')).json().upstream, 'b');
    } finally {
      assert.equal(await serve.stop(), 0);
    }
  });

  test('SIGTERM with slow requests in flight: all complete with Connection: close, readiness fails, new connections refused, exit 0', async () => {
    const file = join(tmp.dir, 'drain.yaml');
    writeFileSync(file, config(a, slow));
    const serve = await spawnServe(['-c', file]);
    const port = Number(new URL(serve.url).port);
    // Keep-alive connections: a client that asked to close would be told so anyway.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    const inflight = Array.from({ length: 20 }, () => request(serve.url + '/slow/x', { agent }));
    await slow.waitFor(slow.received.length + 20);
    serve.child.kill('SIGTERM');
    await serve.waitForLog((l) => l.event === 'gateway.draining');
    const ready = await request(serve.adminUrl + '/readyz');
    assert.equal(ready.status, 503);
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(undefined);
        });
        socket.once('error', reject);
      }),
      /ECONNREFUSED/,
    );
    const answers = await Promise.all(inflight);
    assert.deepEqual(answers.map((r) => r.status), Array(20).fill(200));
    // Reported: 0 of 20 said so, and clients kept using connections about to close.
    assert.deepEqual(answers.map((r) => r.headers.connection), Array(20).fill('close'));
    agent.destroy();
    assert.equal(await serve.exited, 0);
  });

  test('a second signal exits at once', async () => {
    const file = join(tmp.dir, 'twice.yaml');
    writeFileSync(file, config(a, slow).replace('drain: 5s', 'drain: 30s'));
    const serve = await spawnServe(['-c', file]);
    const pending = request(serve.url + '/slow/x').catch(() => undefined);
    await slow.waitFor(slow.received.length + 1);
    serve.child.kill('SIGTERM');
    await serve.waitForLog((l) => l.event === 'gateway.draining');
    const started = Date.now();
    serve.child.kill('SIGINT');
    assert.equal(await serve.exited, 1);
    assert.ok(Date.now() - started < 1000);
    await pending;
  });

  test('--workers 2 serves, reloads and reports metrics as one gateway', async () => {
    const file = join(tmp.dir, 'workers.yaml');
    writeFileSync(file, config(a, slow));
    const serve = await spawnServe(['-c', file, '--workers', '2']);
    try {
      const workers = childPids(serve.child.pid!);
      assert.equal(workers.length, 2, 'two worker processes');
      // The unit's process settings reach the workers (the operator's own, where set).
      for (const pid of workers) {
        const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
        for (const [name, value] of Object.entries(ALLOCATOR_DEFAULTS)) {
          assert.ok(environ.includes(`${name}=${process.env[name] ?? value}`), `worker ${pid} starts with ${name}`);
        }
        assert.ok(environ.some((e) => /^NODE_OPTIONS=.*--max[-_]semi[-_]space[-_]size/.test(e)), `worker ${pid} has a young-generation bound`);
      }
      // Separate connections so both workers take a share.
      const first = await runConcurrently(200, 8, async () => (await request(serve.url + '/x')).json().upstream);
      assert.ok(first.every((u) => u === 'a'));
      let metrics = (await request(serve.adminUrl + '/metrics')).text;
      assert.equal(metricValue(metrics, METRIC.requests, { route: 'app', upstream: 'a', code: '200' }), 200);
      // A share, merged as the lowest of the processes (a sum would read 3).
      assert.equal(metricValue(metrics, METRIC.shadowAdmittedRatio), 1);

      writeFileSync(file, config(b, slow));
      const reload = await request(serve.adminUrl + '/reload', { method: 'POST', headers: { 'x-requested-by': 'test' } });
      assert.equal(reload.status, 200);
      const second = await runConcurrently(100, 8, async () => (await request(serve.url + '/x')).json().upstream);
      assert.ok(second.every((u) => u === 'b'), 'every worker applied the reload before it was acknowledged');
      metrics = (await request(serve.adminUrl + '/metrics')).text;
      assert.equal(metricValue(metrics, METRIC.requests, { route: 'app', upstream: 'b', code: '200' }), 100);
      // Upstream a left the config: every worker forgot its series.
      for (const until = Date.now() + 5000; metrics.includes('upstream="a"') && Date.now() < until; await sleep(50)) {
        metrics = (await request(serve.adminUrl + '/metrics')).text;
      }
      assert.equal(metrics.includes('upstream="a"'), false);
      assert.equal(metricValue(metrics, METRIC.configGeneration), 2);

      // A worker that dies is replaced and counted; the gateway keeps serving.
      process.kill(workers[0]!, 'SIGKILL');
      await serve.waitForLog((l) => l.event === 'worker.exited');
      const deadline = Date.now() + 10_000;
      while (childPids(serve.child.pid!).length < 2 && Date.now() < deadline) await sleep(50);
      assert.equal(childPids(serve.child.pid!).length, 2);
      const agent = new http.Agent({ keepAlive: false });
      const third = await runConcurrently(50, 4, async () => (await request(serve.url + '/x', { agent })).status);
      assert.ok(third.every((s) => s === 200));
      metrics = (await request(serve.adminUrl + '/metrics')).text;
      assert.equal(metricValue(metrics, METRIC.workerRestarts), 1);
    } finally {
      assert.equal(await serve.stop(), 0);
    }
  });
});
