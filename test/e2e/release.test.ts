/**
 * Progressive releases end to end, with real upstreams and short intervals.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { runCli, spawnServe } from '../helpers/cli.js';
import { startGateway, tempDir } from '../helpers/gateway.js';
import { StickyPicker } from '../../src/routing/sticky.js';
import { request } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A bounded request loop against one or more gateways. */
function traffic(urls: string[], concurrency = 4, maxMs = 60_000) {
  let stop = false;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency * urls.length });
  const deadline = Date.now() + maxMs;
  let n = 0;
  const loops = urls.flatMap((url) =>
    Array.from({ length: concurrency }, async () => {
      while (!stop && Date.now() < deadline) {
        await request(`${url}/shop/item`, { agent, headers: { 'x-user-id': `user-${n++ % 500}` } }).catch(() => undefined);
      }
    }),
  );
  return async () => {
    stop = true;
    await Promise.all(loops);
    agent.destroy();
  };
}

async function releases(adminUrl: string): Promise<any[]> {
  return (await request(adminUrl + '/releases')).json().releases;
}

async function waitFor<T>(probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  do {
    last = await probe();
    if (ok(last)) return last;
    await sleep(50);
  } while (Date.now() < deadline);
  throw new Error(`${what} not reached in ${timeoutMs}ms; last: ${JSON.stringify(last)}`);
}

const config = (v1: TestUpstream, v2: TestUpstream, stateDir: string, release: string) => `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
stateDir: ${stateDir}
upstreams: { v1: ${v1.url}, v2: ${v2.url} }
routes:
  - name: shop
    match: { prefix: /shop }
    backends: [{ upstream: v1 }]
    sticky: { header: x-user-id }
    release:
${release
  .trim()
  .split('\n')
  .map((l) => '      ' + l)
  .join('\n')}
`;

describe('progressive releases', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  let v2Failing = false;
  const tmp = tempDir();
  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2', (_req, res) => {
      res.writeHead(v2Failing ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ upstream: 'v2' }));
    });
  });
  after(async () => {
    await v1.close();
    await v2.close();
    tmp.remove();
  });

  test('a healthy candidate goes from 10% to promoted', async () => {
    v2Failing = false;
    const gw = await startGateway(
      config(v1, v2, join(tmp.dir, 'healthy'), `
candidate: v2
steps: [10, 50, 100]
interval: 300ms
minRequests: 30
`),
    );
    const stop = traffic([gw.url]);
    try {
      const done = await waitFor(() => releases(gw.adminUrl), (r) => r[0]?.status === 'promoted', 20_000, 'promotion');
      assert.deepEqual(done[0].history.map((h: any) => h.to), ['10%', '50%', '100%', 'promoted']);
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => request(gw.url + '/shop/x', { headers: { 'x-user-id': `u${i}` } })));
      assert.ok(answers.every((a) => a.json().upstream === 'v2'));
      const metrics = (await request(gw.adminUrl + '/metrics')).text;
      assert.equal(metricValue(metrics, 'gatewayctl_release_weight', { route: 'shop' }), 100);
      assert.equal(metricValue(metrics, 'gatewayctl_release_transitions_total', { route: 'shop', to: 'promoted' }), 1);
      assert.ok(gw.logs.some((l) => l.event === 'release.transition' && /50% -> 100%: 50% passed/.test(l.message)));
    } finally {
      await stop();
      await gw.close();
    }
  });

  test('a candidate whose errors rise at 25% is rolled back within one check, with the reason kept', async () => {
    v2Failing = false;
    const gw = await startGateway(
      config(v1, v2, join(tmp.dir, 'faulty'), `
candidate: v2
steps: [10, 25, 100]
interval: 400ms
minRequests: 40
`),
    );
    const stop = traffic([gw.url]);
    try {
      await waitFor(() => releases(gw.adminUrl), (r) => r[0]?.step === '25%', 20_000, 'the 25% step');
      v2Failing = true;
      const reached = Date.now();
      const rolled = await waitFor(() => releases(gw.adminUrl), (r) => r[0]?.status === 'rolled-back', 10_000, 'rollback');
      const took = Date.now() - reached;
      assert.equal(rolled[0].weight, 0);
      assert.match(rolled[0].reason, /25% failed: errorRate/);
      assert.equal(rolled[0].failure.verdict, 'fail');
      assert.ok(rolled[0].failure.candidateRequests >= 40, 'never judged on fewer requests than the minimum');
      // Time to gather the minimum of failing requests, plus at most one check.
      assert.ok(took < 5000, `rollback took ${took}ms`);
      const after = await Promise.all(Array.from({ length: 30 }, (_, i) => request(gw.url + '/shop/x', { headers: { 'x-user-id': `u${i}` } })));
      assert.ok(after.every((a) => a.json().upstream === 'v1'), 'all traffic back on v1');
      assert.ok(gw.logs.some((l) => l.event === 'release.transition' && l.level === 'warn' && /rolled-back/.test(l.message)));
      const status = await runCli(['release', 'status', '--admin', gw.adminUrl]);
      assert.equal(status.code, 0);
      assert.match(status.stdout, /shop\s+v2\s+rolled-back\s+weight 0%/);
      assert.match(status.stdout, /FAIL\s+errorRate/);
    } finally {
      await stop();
      await gw.close();
    }
  });

  test('a healthy candidate goes from the shadow step to promoted', async () => {
    const same = (name: string) => (_req: unknown, res: import('node:http').ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-instance': name });
      res.end(JSON.stringify({ items: [{ id: 1, qty: 2 }], currency: 'EUR' }));
    };
    const stable = await startUpstream('stable', same('stable'));
    const candidate = await startUpstream('candidate', same('candidate'));
    const gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
stateDir: ${join(tmp.dir, 'shadow-healthy')}
upstreams: { v1: ${stable.url}, v2: ${candidate.url} }
routes:
  - name: shop
    match: { prefix: /shop }
    backends: [{ upstream: v1 }]
    diff: { ignoreHeaders: [x-instance] }
    release: { candidate: v2, steps: [shadow, 50, 100], interval: 300ms, minRequests: 30 }
`);
    const stop = traffic([gw.url]);
    try {
      const done = await waitFor(() => releases(gw.adminUrl), (r) => r[0]?.status === 'promoted', 20_000, 'promotion');
      assert.deepEqual(done[0].history.map((h: any) => h.to), ['shadow', '50%', '100%', 'promoted']);
      assert.match(done[0].history[1].reason, /shadow passed after \d+s and \d+ requests/);
      const metrics = (await request(gw.adminUrl + '/metrics')).text;
      assert.ok(metricValue(metrics, 'gatewayctl_shadow_comparisons_total', { route: 'shop', upstream: 'v2', result: 'match' }) >= 30);
    } finally {
      await stop();
      await gw.close();
      await stable.close();
      await candidate.close();
    }
  });

  test('a candidate whose shadow answers differ never leaves the shadow step', async () => {
    const stable = await startUpstream('stable', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ total: 10 }));
    });
    const candidate = await startUpstream('candidate', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ total: 11 }));
    });
    const gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
stateDir: ${join(tmp.dir, 'shadow-bad')}
upstreams: { v1: ${stable.url}, v2: ${candidate.url} }
routes:
  - name: shop
    match: { prefix: /shop }
    backends: [{ upstream: v1 }]
    release: { candidate: v2, steps: [shadow, 10, 100], interval: 300ms, minRequests: 30 }
`);
    const stop = traffic([gw.url]);
    try {
      const rolled = await waitFor(() => releases(gw.adminUrl), (r) => r[0]?.status === 'rolled-back', 20_000, 'rollback');
      assert.deepEqual(rolled[0].history.map((h: any) => h.to), ['shadow', 'rolled-back']);
      assert.match(rolled[0].reason, /shadow failed: diffRate/);
      assert.ok(candidate.received.every((r) => r.headers['x-shadow-request'] === '1'), 'no user request ever reached the candidate');
    } finally {
      await stop();
      await gw.close();
      await stable.close();
      await candidate.close();
    }
  });

  test('a restart mid-release resumes the same step', async () => {
    const stateDir = join(tmp.dir, 'restart');
    const file = join(tmp.dir, 'restart.yaml');
    writeFileSync(
      file,
      config(v1, v2, stateDir, `
candidate: v2
steps: [10, 50, 100]
interval: 300ms
minRequests: 30
`),
    );
    v2Failing = false;
    let serve = await spawnServe(['-c', file]);
    const stop = traffic([serve.url]);
    let before: any;
    try {
      before = await waitFor(() => releases(serve.adminUrl), (r) => r[0]?.step === '50%', 20_000, 'the 50% step');
    } finally {
      await stop();
    }
    // No traffic now: the 50% step cannot complete. Kill hard, start again.
    await serve.stop('SIGKILL');
    serve = await spawnServe(['-c', file]);
    try {
      const after = await releases(serve.adminUrl);
      assert.equal(after[0].step, '50%');
      assert.equal(after[0].status, 'running');
      assert.equal(after[0].since, before[0].since, 'the same step, not a repeat');
      assert.deepEqual(after[0].history.map((h: any) => h.to), ['10%', '50%']);
      // Fewer requests than the step's minimum, so it cannot move on while we
      // look: each sticky key lands exactly where a 50% split puts it.
      const expected = new StickyPicker([
        { name: 'v1', item: 'v1', weight: 1 },
        { name: 'v2', item: 'v2', weight: 1 },
      ]);
      const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
      for (const key of keys) {
        const answer = await request(serve.url + '/shop/x', { headers: { 'x-user-id': key } });
        assert.equal(answer.json().upstream, expected.pick(key), key);
      }
    } finally {
      await serve.stop();
    }
  });

  test('operators pause, resume, promote and roll back, with the token', async () => {
    const stateDir = join(tmp.dir, 'ops');
    const yaml = config(v1, v2, stateDir, `
candidate: v2
steps: [10, 100]
interval: 1h
`).replace('admin: 127.0.0.1:0', 'admin: { listen: 127.0.0.1:0, token: release-token-0123456789 }');
    const gw = await startGateway(yaml, { watch: false });
    try {
      const cli = (...args: string[]) => runCli(['release', ...args, '--admin', gw.adminUrl], { env: { GATEWAYCTL_ADMIN_TOKEN: 'release-token-0123456789' } });
      assert.equal((await request(gw.adminUrl + '/releases/shop/pause', { method: 'POST', headers: { 'x-requested-by': 'test' } })).status, 401);
      let r = await cli('pause', 'shop');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /shop paused at 10%/);
      assert.equal((await runCli(['release', 'pause', 'shop', '--admin', gw.adminUrl, '--token', 'release-token-0123456789'])).code, 1, 'pausing twice is refused');
      r = await cli('resume', 'shop');
      assert.match(r.stdout, /shop running at 10%/);
      r = await cli('promote', 'shop');
      assert.match(r.stdout, /shop promoted \(weight 100%\)/);
      r = await cli('rollback', 'shop');
      assert.match(r.stdout, /shop rolled-back \(weight 0%\)/);
      const missing = await cli('pause', 'nope');
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /no release/);
    } finally {
      await gw.close();
    }
  });

  test('gatewayctl release run drives two replicas in step', async () => {
    v2Failing = false;
    const yaml = (dir: string) =>
      config(v1, v2, join(tmp.dir, dir), `
candidate: v2
steps: [10, 50, 100]
interval: 500ms
minRequests: 40
controller: external
`);
    const a = await startGateway(yaml('replica-a'), { watch: false });
    const b = await startGateway(yaml('replica-b'), { watch: false });
    const stop = traffic([a.url, b.url], 2);
    const runner = (await import('node:child_process')).spawn(
      process.execPath,
      [join(process.cwd(), 'bin/gatewayctl'), 'release', 'run', '--admin', a.adminUrl, '--admin', b.adminUrl, '--every', '200ms', '--log-format', 'json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let disagreeingSince: number | undefined;
    let longestDisagreement = 0;
    try {
      // Without the runner, external releases do not move by themselves.
      await waitFor(
        async () => Promise.all([releases(a.adminUrl), releases(b.adminUrl)]),
        ([ra, rb]) => {
          const same = ra[0].stepIndex === rb[0].stepIndex && ra[0].status === rb[0].status;
          if (!same) disagreeingSince ??= Date.now();
          else if (disagreeingSince !== undefined) {
            longestDisagreement = Math.max(longestDisagreement, Date.now() - disagreeingSince);
            disagreeingSince = undefined;
          }
          return ra[0].status === 'promoted' && rb[0].status === 'promoted';
        },
        30_000,
        'both replicas promoted',
      );
      assert.ok(longestDisagreement < 400, `replicas disagreed for ${longestDisagreement}ms`);
    } finally {
      runner.kill('SIGTERM');
      await new Promise((r) => runner.once('exit', r));
      await stop();
      await a.close();
      await b.close();
    }
  });
});
