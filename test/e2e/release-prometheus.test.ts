/**
 * `gatewayctl release run --prometheus` against a real Prometheus (1 s
 * scrapes, loopback, temporary storage) scraping real gateways: scoping by
 * selector, a scrape gap at step start, a path-prefixed Prometheus behind
 * TLS and auth. Intervals are short so each case takes seconds.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, onJsonLines, REPO_ROOT } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { startForwarder, startPrometheus, type Forwarder, type TestPrometheus } from '../helpers/prometheus.js';
import { releaseConfig, releases, sleep, traffic, waitFor } from '../helpers/release.js';
import { fixture, pem } from '../helpers/tls.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

interface Runner {
  readonly logs: Record<string, any>[];
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** `gatewayctl release run ... --json`, its log lines parsed as they come. */
function startRunner(args: string[], timeoutMs = 45_000): Runner {
  const child = spawn(process.execPath, [BIN, 'release', 'run', '--json', '--every', '300ms', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, any>[] = [];
  onJsonLines(child.stdout!, (line) => logs.push({ ...line, receivedAt: Date.now() }));
  child.stderr!.on('data', (d: Buffer) => logs.push({ stderr: d.toString() }));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    }),
  );
  return {
    logs,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

// These cases are about scope and gaps, judged on error rates, with every
// gate at its default: an identical build checked every 300 ms must not be
// rolled back by the latency gate's repeated looks.
const gatewayYaml = (v1: TestUpstream, v2: TestUpstream, stateDir: string) =>
  releaseConfig(
    v1,
    v2,
    stateDir,
    '{ candidate: v2, steps: [10, 100], interval: 2s, minRequests: 30, controller: external }',
  );

/** Resolves once Prometheus holds `n` scrapes of every target matching `selector`. */
async function scraped(prometheus: string, selector: string, targets: number, n = 3): Promise<void> {
  const query = `count_over_time(gatewayctl_config_generation${selector}[1m]) >= ${n}`;
  await waitFor(
    async () => (await request(`${prometheus}/api/v1/query?query=${encodeURIComponent(query)}`)).json().data?.result?.length ?? 0,
    (found: number) => found >= targets,
    20_000,
    `${targets} targets scraped ${n} times`,
  );
}

const transitions = (runner: Runner) => runner.logs.filter((l) => l.event === 'release.transition');

describe('release run with a real Prometheus', () => {
  const tmp = tempDir();
  let v1: TestUpstream;
  let v2: TestUpstream;
  let v2Failing: TestUpstream;
  let prod: TestGateway;
  let staging: TestGateway;
  let prometheus: TestPrometheus;

  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
    v2Failing = await startUpstream('v2-broken', (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"error":"broken build"}');
    });
    // Same route and upstream names in both; staging's candidate fails.
    prod = await startGateway(gatewayYaml(v1, v2, join(tmp.dir, 'prod')), { watch: false });
    staging = await startGateway(gatewayYaml(v1, v2Failing, join(tmp.dir, 'staging')), { watch: false });
    prometheus = await startPrometheus([
      { target: new URL(prod.adminUrl).host, labels: { namespace: 'prod' } },
      { target: new URL(staging.adminUrl).host, labels: { namespace: 'staging' } },
    ]);
  });
  after(async () => {
    await prometheus?.close();
    await prod?.close();
    await staging?.close();
    await v1?.close();
    await v2?.close();
    await v2Failing?.close();
    tmp.remove();
  });

  test('unreachable Prometheus is reported as Prometheus, not as the admin API', async () => {
    const runner = startRunner(['--admin', prod.adminUrl, '--prometheus', 'http://127.0.0.1:1/prom', '--log-level', 'error']);
    try {
      const line = await waitFor(async () => runner.logs.find((l) => l.level === 'error'), (l) => l !== undefined, 10_000, 'an error');
      assert.match(line!.msg, /^cannot reach Prometheus at http:\/\/127\.0\.0\.1:1\/prom\/: ECONNREFUSED/);
      assert.equal(line!.component, 'prometheus');
      assert.ok(runner.logs.every((l) => l.level !== 'info'), '--log-level error keeps info lines out');
    } finally {
      await runner.stop();
    }
  });

  test('scoped by selector: prod is promoted while staging, same names and failing, is rolled back', async () => {
    const stop = traffic([prod.url, staging.url], 3);
    const prodRun = startRunner(['--admin', prod.adminUrl, '--prometheus', prometheus.url, '--selector', '{job="gatewayctl",namespace="prod"}', '--until-done']);
    const stagingRun = startRunner(['--admin', staging.adminUrl, '--prometheus', prometheus.url, '--selector', '{namespace="staging"}', '--until-done']);
    try {
      const [prodCode, stagingCode] = await Promise.all([prodRun.exited, stagingRun.exited]);
      const [p] = await releases(prod.adminUrl);
      const [s] = await releases(staging.adminUrl);
      assert.equal(prodCode, 0, JSON.stringify(prodRun.logs.slice(-5)));
      assert.equal(p.status, 'promoted');
      assert.deepEqual(p.history.map((h: any) => h.to), ['10%', '100%', 'promoted'], 'never rolled back on staging\'s errors');
      assert.equal(stagingCode, 1, 'the outcome is the exit status');
      assert.equal(s.status, 'rolled-back');
      assert.match(s.reason, /10% failed: errorRate/);

      // Every decision at info level, with its gate figures and the evidence's source.
      const checks = prodRun.logs.filter((l) => (l.event === 'release.check' || l.event === 'release.transition') && l.level === 'info');
      assert.ok(checks.length > 0);
      const passed = transitions(prodRun).find((l) => l.step === '10%')!;
      assert.equal(passed.level, 'info');
      assert.match(passed.gates.find((g: any) => g.gate === 'errorRate').detail, /^0\.00% of \d+ answers were 5xx \(95% CI/, 'gate figures at info level');
      assert.match(checks[0].evidence, /^Prometheus http:\/\/127\.0\.0\.1:\d+\/ \{job="gatewayctl",namespace="prod"\}$/);
      const failed = transitions(stagingRun).find((l) => l.to === 'rolled-back')!;
      assert.equal(failed.level, 'warn');
      assert.ok(failed.gates.find((g: any) => g.gate === 'errorRate' && g.status === 'fail'));

      // The same Prometheus unscoped holds staging's errors: the selector is what kept them out.
      const errors = await request(
        `${prometheus.url}/api/v1/query?query=${encodeURIComponent('sum(gatewayctl_requests_total{route="shop",upstream="v2",code="503"})')}`,
      );
      assert.ok(Number(errors.json().data.result[0]?.value[1]) > 30, 'staging errors are in the same Prometheus');
    } finally {
      await prodRun.stop();
      await stagingRun.stop();
      await stop();
    }
  });

});

describe('release run: a scrape gap at step start, Prometheus behind a path prefix, TLS and auth', () => {
  const tmp = tempDir();
  let v1: TestUpstream;
  let v2: TestUpstream;
  let v2Broken = true;
  let gateway: TestGateway;
  let scrapeProxy: Forwarder;
  let prometheus: TestPrometheus;
  let front: Forwarder;

  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2', (_req, res) => {
      res.writeHead(v2Broken ? 503 : 200, { 'content-type': 'application/json' });
      res.end('{"upstream":"v2"}');
    });
    gateway = await startGateway(gatewayYaml(v1, v2, join(tmp.dir, 'state')), { watch: false });
    scrapeProxy = await startForwarder(gateway.adminUrl);
    prometheus = await startPrometheus([{ target: scrapeProxy.address, labels: { namespace: 'prod' } }]);
    front = await startForwarder(prometheus.url, {
      pathPrefix: '/prometheus',
      tls: { cert: pem('localhost.pem'), key: pem('localhost.key') },
      requireHeaders: { 'X-Scope-OrgID': 'team-a', authorization: 'Bearer token-from-a-file' },
    });
  });
  after(async () => {
    await front?.close();
    await prometheus?.close();
    await scrapeProxy?.close();
    await gateway?.close();
    await v1?.close();
    await v2?.close();
    tmp.remove();
  });

  test('an untrusted certificate or a refused header is reported as Prometheus\'s, with the reason', async () => {
    const untrusted = startRunner(['--admin', gateway.adminUrl, '--prometheus', front.url, '--header', 'X-Scope-OrgID:team-a', '--log-level', 'error']);
    const unauthorized = startRunner(['--admin', gateway.adminUrl, '--prometheus', front.url, '--prometheus-ca', fixture('ca.pem'), '--log-level', 'error']);
    try {
      const firstError = (r: Runner) => waitFor(async () => r.logs.find((l) => l.level === 'error'), (l) => l !== undefined, 10_000, 'an error');
      const [tls, auth] = await Promise.all([firstError(untrusted), firstError(unauthorized)]);
      assert.match(tls!.msg, /^cannot reach Prometheus at https:\/\/127\.0\.0\.1:\d+\/prometheus\/: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
      assert.match(auth!.msg, /^Prometheus at https:\/\/127\.0\.0\.1:\d+\/prometheus\/ answered 401/);
      assert.ok([tls, auth].every((l) => l!.component === 'prometheus'));
    } finally {
      await untrusted.stop();
      await unauthorized.stop();
    }
  });

  test('the controller waits through the gap, says so in the status, then judges only what came after', async () => {
    const stop = traffic([gateway.url], 3);
    const tokenFile = join(tmp.dir, 'token');
    writeFileSync(tokenFile, 'token-from-a-file\n');
    let runner: Runner | undefined;
    try {
      // The candidate erred before the runner started: those errors are not this window's.
      await scraped(prometheus.url, '{namespace="prod"}', 1);
      await sleep(1500);
      v2Broken = false;
      scrapeProxy.cut = true;
      const gapStarted = Date.now();
      runner = startRunner([
        '--admin', gateway.adminUrl,
        '--prometheus', front.url,
        '--prometheus-ca', fixture('ca.pem'),
        '--header', 'X-Scope-OrgID: team-a',
        '--bearer-token-file', tokenFile,
        '--selector', '{namespace="prod"}',
        '--until-done',
      ]);
      const r = runner;
      await waitFor(async () => r.logs.filter((l) => l.event === 'release.check').length, (n) => n >= 3, 10_000, 'checks during the gap');
      const [during] = await releases(gateway.adminUrl);
      assert.equal(during.status, 'running');
      assert.match(during.reason, /^evidence incomplete: no scrape/, 'the status says why it is not judging');
      await sleep(Math.max(0, 3000 - (Date.now() - gapStarted)));
      assert.deepEqual(transitions(r), [], 'nothing judged during the gap');
      assert.ok(r.logs.filter((l) => l.event === 'release.check').every((l) => l.blocked), JSON.stringify(r.logs.slice(-3)));
      scrapeProxy.cut = false;
      const gapEnded = Date.now();

      assert.equal(await r.exited, 0, JSON.stringify(r.logs.filter((l) => l.level !== 'info' || l.event !== 'release.check').slice(-5)));
      const [done] = await releases(gateway.adminUrl);
      assert.deepEqual(done.history.map((h: any) => h.to), ['10%', '100%', 'promoted']);
      const first = transitions(r)[0]!;
      // The window restarts at the first scrape after the gap and lasts the 2 s
      // interval (a scrape stamped just before the cut ended may open it).
      assert.ok(first.receivedAt - gapEnded >= 1500, `judged ${first.receivedAt - gapEnded}ms after the gap`);
      assert.ok(r.logs.some((l) => l.blocked && /scrape gap/.test(l.blocked)), 'the gap itself was seen, then left behind');
      assert.ok(front.seen.some((s) => s === 'POST /api/v1/query'), 'queries went through the path prefix');
    } finally {
      await runner?.stop();
      await stop();
    }
  });
});
