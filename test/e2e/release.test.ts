/**
 * Progressive releases end to end, with real upstreams and short intervals.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { runCli, spawnServe } from '../helpers/cli.js';
import { startGateway, tempDir } from '../helpers/gateway.js';
import { Logger } from '../../src/log/logger.js';
import type { Evidence } from '../../src/release/evidence.js';
import { ExternalReleaseRunner } from '../../src/release/external.js';
import { StickyPicker } from '../../src/routing/sticky.js';
import { request } from '../helpers/http.js';
import { releaseConfig, releases, traffic, waitFor } from '../helpers/release.js';
import { metricValue } from '../helpers/metrics.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';

const config = releaseConfig;

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
      assert.equal(metricValue(metrics, METRIC.releaseWeight, { route: 'shop' }), 100);
      assert.equal(metricValue(metrics, METRIC.releaseTransitions, { route: 'shop', to: 'promoted' }), 1);
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

  test('a step deadline passes an identical build at 10% within the deadline', async (t) => {
    // Identical builds with jittery latency and a tight latency limit: the
    // gate may never become conclusive on its own; the deadline decides.
    const jittery = (name: string) => (_req: unknown, res: import('node:http').ServerResponse) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ upstream: name }));
      }, Math.random() * 6);
    };
    const stable = await startUpstream('stable', jittery('v1'));
    const candidate = await startUpstream('candidate', jittery('v2'));
    const gw = await startGateway(
      config(stable, candidate, join(tmp.dir, 'deadline'), `
candidate: v2
steps: [10, 100]
interval: 500ms
minRequests: 10
gates: { maxLatencyRatio: 1.02 }
maxStepDuration: 4s
onTimeout: pass
`),
    );
    const stop = traffic([gw.url]);
    try {
      const left = await waitFor(() => releases(gw.adminUrl), (r) => r[0]?.step !== '10%' || r[0]?.status !== 'running', 10_000, 'the 10% step left');
      assert.equal(left[0].status === 'promoted' || left[0].step === '100%', true, JSON.stringify(left[0].history));
      const passed = left[0].history[1];
      t.diagnostic(passed.reason);
      assert.equal(passed.to, '100%');
      assert.match(passed.reason, /^10% (passed after|reached its deadline \(maxStepDuration 4s\) with no gate failing on \d+ requests; passed)/);
      assert.ok(passed.at - left[0].history[0].at <= 4000 + 1500, `left 10% after ${passed.at - left[0].history[0].at}ms`);
      const metrics = (await request(gw.adminUrl + '/metrics')).text;
      assert.ok(metricValue(metrics, METRIC.releaseWeight, { route: 'shop', candidate: 'v2' }) >= 10, 'release gauges carry the candidate');
    } finally {
      await stop();
      await gw.close();
      await stable.close();
      await candidate.close();
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
      assert.ok(metricValue(metrics, METRIC.shadowComparisons, { route: 'shop', upstream: 'v2', result: 'match' }) >= 30);
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

  test('a state of the wrong shape is refused and changes nothing, in memory or in stateDir', async () => {
    const stateDir = join(tmp.dir, 'shapes');
    const gw = await startGateway(config(v1, v2, stateDir, `
candidate: v2
steps: [10, 100]
interval: 1h
controller: external
`), { watch: false });
    try {
      const post = (path: string, body: string) =>
        request(gw.adminUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const [view] = await releases(gw.adminUrl);
      const state = view.state;
      await post('/releases/shop/pause', '{}');
      const saved = readFileSync(join(stateDir, 'releases.json'), 'utf8');
      const wrong: Record<string, unknown>[] = [
        { state: { ...state, since: 'garbage' } },
        { state: { ...state, since: 1e20 } },
        { state: { ...state, stepIndex: '1' } },
        { state: { ...state, stepIndex: 0.5 } },
        { state: { ...state, status: 'weird' } },
        { state: { ...state, history: [{}] } },
        { state: { ...state, failure: { gates: 'x' } } },
        { state, judgement: { verdict: 'pass', reason: 'x', gates: [1] } },
        { state: null },
        {},
      ];
      for (const body of wrong) {
        const r = await post('/releases/shop/state', JSON.stringify(body));
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
        assert.equal(r.json().code, 'GW_BAD_REQUEST');
      }
      const big = await post('/releases/shop/state', JSON.stringify({ state, pad: 'x'.repeat(70_000) }));
      assert.equal(big.status, 400, 'an oversized body is answered, not cut off');
      assert.equal((await post('/releases/%zz/pause', '{}')).status, 404, 'a malformed escape names no release');
      const [after] = await releases(gw.adminUrl);
      assert.equal(after.status, 'paused');
      assert.equal(readFileSync(join(stateDir, 'releases.json'), 'utf8'), saved);
      assert.equal((await post('/releases/shop/state', JSON.stringify({ state: { ...state, stepIndex: 1 } }))).status, 200);
      assert.equal((await releases(gw.adminUrl))[0].stepIndex, 1);
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

  test('release run --admin-dns finds the replicas on every check, and --until-done exits with the outcome', async () => {
    const yaml = (dir: string) => config(v1, v2, join(tmp.dir, dir), `
candidate: v2
steps: [10, 100]
interval: 1h
controller: external
`);
    // Two replicas on one port, as a headless Service's pods: 127.0.0.1 and ::1.
    const a = await startGateway(yaml('dns-a'), { watch: false });
    const port = Number(new URL(a.adminUrl).port);
    const b = await startGateway(yaml('dns-b'), { watch: false, admin: { host: '::1', port } });
    try {
      const names = ['127.0.0.1'];
      const logs: string[] = [];
      const runner = new ExternalReleaseRunner({
        admins: [],
        adminDns: [`gatewayctl-admin.test:${port}`],
        resolve: async (name) => (name === 'gatewayctl-admin.test' ? [...names] : []),
        logger: new Logger((r) => logs.push(`${r.level} ${r.message}`), 'debug'),
      });
      assert.deepEqual(await runner.replicas(), [`http://127.0.0.1:${port}`]);
      assert.equal((await request(a.adminUrl + '/releases/shop/pause', { method: 'POST', headers: { 'x-requested-by': 'test' } })).status, 200);
      await runner.tick();
      assert.equal((await releases(b.adminUrl))[0].status, 'running', 'b is not known yet');
      names.push('::1');
      const outcome = await runner.tick();
      assert.equal((await releases(b.adminUrl))[0].status, 'paused', 'b, found on this check, follows the leader');
      assert.deepEqual([...outcome.statuses], [['shop', { status: 'paused', failed: false }]]);

      // Promote both; the CLI finds them by name and exits 0 at once.
      await request(a.adminUrl + '/releases/shop/promote', { method: 'POST', headers: { 'x-requested-by': 'test' } });
      await request(b.adminUrl + '/releases/shop/promote', { method: 'POST', headers: { 'x-requested-by': 'test' } });
      const done = await runCli(['release', 'run', '--admin-dns', `localhost:${port}`, '--until-done', '--json', '--every', '100ms']);
      assert.equal(done.code, 0, done.stdout + done.stderr);
      assert.match(done.stdout, /every external release is finished: shop promoted/);
      await request(a.adminUrl + '/releases/shop/rollback', { method: 'POST', headers: { 'x-requested-by': 'test' } });
      const rolled = await runCli(['release', 'run', '--admin', a.adminUrl, '--until-done', '--json']);
      assert.equal(rolled.code, 1, 'a rolled-back release is a failed outcome');
      const usage = await runCli(['release', 'run', '--prometheus', 'http://127.0.0.1:9090']);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /--admin URL for each replica, or --admin-dns NAME:PORT/);
      const noPort = await runCli(['release', 'run', '--admin-dns', 'gatewayctl-admin']);
      assert.equal(noPort.code, 2);
      assert.match(noPort.stderr, /--admin-dns gatewayctl-admin: expected NAME:PORT/);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('release run counts a step from its own first observation, not from when the gateway entered it', async () => {
    const gw = await startGateway(
      config(v1, v2, join(tmp.dir, 'late-runner'), `
candidate: v2
steps: [10, 100]
interval: 10s
minRequests: 50
controller: external
`),
      { watch: false },
    );
    try {
      // The runner starts an hour into the step (a fake clock), and the
      // evidence source says 100 healthy candidate requests in any window.
      let clock = (await releases(gw.adminUrl))[0].state.since + 3_600_000;
      const windows: [number, number][] = [];
      const healthy: Evidence = {
        bounds: [0.01, 0.1],
        routes: { shop: { backends: { v1: { requests: 900, errors: 0, latency: [900, 0, 0] }, v2: { requests: 100, errors: 0, latency: [100, 0, 0] } }, comparisons: {} } },
      };
      const runner = new ExternalReleaseRunner({
        admins: [gw.adminUrl],
        now: () => clock,
        logger: new Logger(() => undefined),
        evidence: {
          description: 'a fake',
          refresh: async () => undefined,
          window: async (_route, start, now) => {
            windows.push([start, now]);
            return { evidence: healthy, coverage: { ok: true, scrapes: 10, expected: 10, intervalMs: 1000 } };
          },
        },
      });
      const firstSight = clock;
      await runner.tick();
      let [view] = await releases(gw.adminUrl);
      assert.equal(view.step, '10%', 'an hour in the step is not an hour of evidence');
      assert.match(view.reason, /gates pass; 10s left in this step/);
      assert.deepEqual(windows[0], [firstSight, firstSight]);
      clock += 9_000;
      await runner.tick();
      assert.equal((await releases(gw.adminUrl))[0].step, '10%');
      clock += 1_000;
      await runner.tick();
      [view] = await releases(gw.adminUrl);
      assert.equal(view.step, '100%');
      assert.match(view.history.at(-1).reason, /10% passed after 10s and 100 requests/);
      assert.deepEqual(windows.at(-1), [firstSight, firstSight + 10_000]);
    } finally {
      await gw.close();
    }
  });
});
