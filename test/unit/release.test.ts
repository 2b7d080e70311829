/**
 * Release logic without sockets: gates, the state machine with a
 * fake clock and synthetic evidence, and the traffic overlay.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { GatewayConfig, RouteConfig } from '../../src/config/types.js';
import { releaseSettings as release } from '../helpers/release.js';
import { compileSnapshot } from '../../src/config/compile.js';
import { LATENCY_BUCKETS } from '../../src/metrics/registry.js';
import { samplesFromText } from '../../src/metrics/read.js';
import { evidenceFrom, evidenceSince, type Evidence } from '../../src/release/evidence.js';
import { windowCoverage } from '../../src/release/coverage.js';
import { judgeStep, latencyQuantile, unjudgeable, type Judgement } from '../../src/release/judge.js';
import { parseSelector, stepQueries } from '../../src/release/promql.js';
import { parseHeader } from '../../src/release/prometheus.js';
import { vectorSamples } from '../../src/release/sources.js';
import { act, decide, initialState, ReleaseActionError, trafficFor, type ReleaseState } from '../../src/release/machine.js';
import { applyReleases } from '../../src/release/overlay.js';
import { ReleaseStore } from '../../src/release/store.js';
import { tempDir } from '../helpers/gateway.js';
import { METRIC } from '../../src/metrics/names.js';


/** Latency counts: `n` requests all in the bucket whose bound is `seconds`. */
function latency(n: number, seconds: number): number[] {
  const counts = new Array(LATENCY_BUCKETS.length + 1).fill(0);
  counts[LATENCY_BUCKETS.findIndex((b) => b >= seconds)] = n;
  return counts;
}

function evidence(parts: {
  v1?: [number, number, number]; // requests, errors, latency seconds
  v2?: [number, number, number];
  compared?: [number, number]; // match, diff
}): Evidence {
  const backends: Evidence['routes'][string]['backends'] = {};
  for (const name of ['v1', 'v2'] as const) {
    const p = parts[name];
    if (p) backends[name] = { requests: p[0], errors: p[1], latency: latency(p[0], p[2]) };
  }
  const comparisons: Evidence['routes'][string]['comparisons'] = parts.compared ? { v2: { match: parts.compared[0], diff: parts.compared[1] } } : {};
  return { bounds: [...LATENCY_BUCKETS], routes: { shop: { backends, comparisons } } };
}

describe('gates', () => {
  const r = release();
  test('nothing is judged before minRequests', () => {
    const j = judgeStep(10, r, ['v1'], evidence({ v1: [900, 0, 0.01], v2: [50, 25, 0.01] }), 'shop', 120_000);
    assert.equal(j.verdict, 'wait');
    assert.match(j.reason, /150 more candidate requests/);
    assert.ok(j.gates.every((g) => g.status !== 'fail'));
  });
  test('a healthy candidate passes once the interval is up', () => {
    const e = evidence({ v1: [1800, 2, 0.01], v2: [200, 0, 0.01] });
    assert.equal(judgeStep(10, r, ['v1'], e, 'shop', 30_000).verdict, 'wait');
    const j = judgeStep(10, r, ['v1'], e, 'shop', 60_000);
    assert.equal(j.verdict, 'pass', j.reason);
  });
  test('a confidently high error rate fails at once, even mid-interval', () => {
    const j = judgeStep(25, r, ['v1'], evidence({ v1: [600, 0, 0.01], v2: [200, 30, 0.01] }), 'shop', 1000);
    assert.equal(j.verdict, 'fail');
    assert.equal(j.gates.find((g) => g.gate === 'errorRate')!.status, 'fail');
  });
  test('a rate just over the limit without confidence waits for more evidence', () => {
    const j = judgeStep(10, r, ['v1'], evidence({ v1: [2000, 0, 0.01], v2: [200, 3, 0.01] }), 'shop', 60_000);
    assert.equal(j.verdict, 'wait');
    assert.equal(j.gates.find((g) => g.gate === 'errorRate')!.status, 'wait');
  });
  test('latency: slower with confidence fails; within the ratio passes', () => {
    const slow = judgeStep(10, r, ['v1'], evidence({ v1: [2000, 0, 0.01], v2: [300, 0, 0.03] }), 'shop', 60_000);
    assert.equal(slow.gates.find((g) => g.gate === 'latencyRatio')!.status, 'fail');
    assert.equal(slow.verdict, 'fail');
    const ok = judgeStep(10, r, ['v1'], evidence({ v1: [2000, 0, 0.01], v2: [300, 0, 0.0105] }), 'shop', 60_000);
    assert.equal(ok.gates.find((g) => g.gate === 'latencyRatio')!.status, 'pass');
  });
  test('latency: a ratio over the limit only by the width of one histogram bucket passes, not fails', () => {
    // Seen on an identical build: p98 2.0 ms against 1.5 ms is 1.34x, but
    // those are neighbouring buckets; 1.25x stable (1.9 ms) lies in the same one.
    const e = evidence({ v1: [500, 0, 0.0015], v2: [490, 0, 0.002] });
    e.routes['shop']!.backends['v2']!.latency[LATENCY_BUCKETS.indexOf(0.003)] = 10;
    e.routes['shop']!.backends['v2']!.requests += 10;
    const gate = judgeStep(50, release({ minRequests: 30 }), ['v1'], e, 'shop', 60_000).gates.find((g) => g.gate === 'latencyRatio')!;
    assert.ok(gate.value! > 1.25, gate.detail);
    assert.equal(gate.status, 'pass', gate.detail);
    assert.match(gate.detail, /not resolvable/);
    // Two buckets beyond is evidence: the same shape one bucket slower fails.
    const slower = evidence({ v1: [500, 0, 0.0015], v2: [500, 0, 0.003] });
    const failed = judgeStep(50, release({ minRequests: 30 }), ['v1'], slower, 'shop', 60_000).gates.find((g) => g.gate === 'latencyRatio')!;
    assert.equal(failed.status, 'fail', failed.detail);
  });
  test('latency: a small sample is judged on a lower quantile, so two slow requests do not stall it', () => {
    const e = evidence({ v1: [940, 0, 0.01], v2: [120, 0, 0.01] });
    e.routes['shop']!.backends['v1']!.latency[LATENCY_BUCKETS.indexOf(0.0125)] = 4;
    e.routes['shop']!.backends['v1']!.requests += 4;
    e.routes['shop']!.backends['v2']!.latency[LATENCY_BUCKETS.indexOf(0.02)] = 2;
    e.routes['shop']!.backends['v2']!.requests += 2;
    const gate = judgeStep(10, release({ minRequests: 100 }), ['v1'], e, 'shop', 60_000).gates.find((g) => g.gate === 'latencyRatio')!;
    assert.match(gate.detail, /^p91\.8 .*not p99, on 122 requests/);
    assert.equal(gate.status, 'pass', gate.detail);
  });
  test('latency quantile: p99 from 1000 requests, ten samples beyond it below that, never under the median', () => {
    assert.equal(latencyQuantile(5000), 0.99);
    assert.equal(latencyQuantile(1000), 0.99);
    assert.equal(latencyQuantile(200), 0.95);
    assert.equal(latencyQuantile(100), 0.9);
    assert.equal(latencyQuantile(12), 0.5);
  });
  test('at 100% there is no stable traffic: comparison gates are n/a', () => {
    const j = judgeStep(100, r, ['v1'], evidence({ v2: [300, 0, 0.01] }), 'shop', 60_000);
    assert.equal(j.verdict, 'pass');
    assert.deepEqual(j.gates.map((g) => g.status), ['pass', 'n/a', 'n/a']);
  });
  test('shadow step: judged on compared pairs and the real-difference rate', () => {
    assert.equal(judgeStep('shadow', r, ['v1'], evidence({ compared: [150, 0] }), 'shop', 60_000).verdict, 'wait');
    assert.equal(judgeStep('shadow', r, ['v1'], evidence({ compared: [300, 2] }), 'shop', 60_000).verdict, 'pass');
    const bad = judgeStep('shadow', r, ['v1'], evidence({ compared: [250, 50] }), 'shop', 5_000);
    assert.equal(bad.verdict, 'fail');
    assert.match(bad.reason, /diffRate/);
  });
});

describe('state machine (fake clock)', () => {
  const r = release({ intervalMs: 1000, minRequests: 10 });
  const pass = { verdict: 'pass', reason: 'every gate passed', gates: [], candidateRequests: 20, stableRequests: 100, elapsedMs: 1000 } as const;
  const fail = { verdict: 'fail', reason: 'errorRate: 30%', gates: [], candidateRequests: 20, stableRequests: 100, elapsedMs: 500 } as const;
  const wait = { verdict: 'wait', reason: 'waiting for 5 more', gates: [], candidateRequests: 5, stableRequests: 100, elapsedMs: 500 } as const;

  test('passes walk through every step to promotion', () => {
    let s: ReleaseState = initialState('shop', r, 0);
    const seen = [trafficFor(s, r)];
    for (let t = 1; t <= 4; t++) {
      s = decide(s, r, pass, t * 1000);
      seen.push(trafficFor(s, r));
    }
    assert.equal(s.status, 'promoted');
    assert.deepEqual(seen.map((x) => `${x.weight}${x.shadow ? '+s' : ''}`), ['0+s', '10', '50', '100', '100']);
    assert.deepEqual(s.history.map((h) => h.to), ['shadow', '10%', '50%', '100%', 'promoted']);
    assert.equal(s.since, 4000);
  });
  test('wait changes nothing but the reason', () => {
    const s = initialState('shop', r, 0);
    const w = decide(s, r, wait, 500);
    assert.equal(w.stepIndex, 0);
    assert.equal(w.since, 0);
    assert.equal(w.history.length, 1);
    assert.equal(w.reason, 'waiting for 5 more');
  });
  test('a failure rolls back (or pauses) and keeps the evidence', () => {
    const s = decide(decide(initialState('shop', r, 0), r, pass, 1000), r, fail, 1500);
    assert.equal(s.status, 'rolled-back');
    assert.deepEqual(trafficFor(s, r), { weight: 0, shadow: false });
    assert.equal(s.failure?.reason, 'errorRate: 30%');
    assert.match(s.reason, /^10% failed: errorRate/);
    const paused = decide(decide(initialState('shop', r, 0), { ...r, onFailure: 'pause' }, pass, 1000), { ...r, onFailure: 'pause' }, fail, 1500);
    assert.equal(paused.status, 'paused');
    assert.deepEqual(trafficFor(paused, r), { weight: 10, shadow: false }, 'a paused release holds its step');
  });
  test('operator actions', () => {
    const s = initialState('shop', r, 0);
    const paused = act(s, r, 'pause', 10);
    assert.equal(decide(paused, r, pass, 20), paused, 'nothing moves while paused');
    const resumed = act(paused, r, 'resume', 30);
    assert.equal(resumed.status, 'running');
    assert.equal(resumed.since, 30);
    assert.equal(act(resumed, r, 'promote', 40).status, 'promoted');
    const rolled = act(resumed, r, 'rollback', 50);
    assert.equal(rolled.status, 'rolled-back');
    const again = act(rolled, r, 'resume', 60);
    assert.equal(again.stepIndex, 0);
    assert.equal(again.status, 'running');
    assert.throws(() => act(rolled, r, 'rollback', 70), ReleaseActionError);
    assert.throws(() => act(rolled, r, 'pause', 70), ReleaseActionError);
  });
  test('deadline: a step still waiting at maxStepDuration passes (onTimeout: pass) with the reason kept', () => {
    const timed = release({ intervalMs: 1000, minRequests: 10, maxStepDurationMs: 5000, onTimeout: 'pass', steps: [10, 100] });
    const latencyWait: Judgement = { ...wait, reason: 'latencyRatio: not yet conclusive', candidateRequests: 40, elapsedMs: 4999, stepMs: 4999 };
    const s = initialState('shop', timed, 0);
    assert.equal(decide(s, timed, latencyWait, 4999).stepIndex, 0, 'before the deadline it waits');
    const after = decide(s, timed, { ...latencyWait, elapsedMs: 5000, stepMs: 5000 }, 5000);
    assert.equal(after.stepIndex, 1);
    assert.equal(after.status, 'running');
    assert.match(after.reason, /10% reached its deadline \(maxStepDuration 5s\) with no gate failing on 40 requests; passed \(latencyRatio: not yet conclusive\)/);
  });
  test('deadline: pauses (onTimeout: pause), and never passes on too few requests or incomplete evidence', () => {
    const timed = release({ intervalMs: 1000, minRequests: 10, maxStepDurationMs: 5000, onTimeout: 'pause', steps: [10, 100] });
    const s = initialState('shop', timed, 0);
    const paused = decide(s, timed, { ...wait, candidateRequests: 40, stepMs: 6000 }, 6000);
    assert.equal(paused.status, 'paused');
    assert.match(paused.reason, /paused for a person/);
    assert.ok(paused.failure, 'the judgement that timed out is kept');
    const passing = { ...timed, onTimeout: 'pass' as const };
    const few = decide(s, passing, { ...wait, candidateRequests: 3, stepMs: 6000 }, 6000);
    assert.equal(few.status, 'paused');
    assert.match(few.reason, /only 3 of 10 requests/);
    const gap = decide(s, passing, unjudgeable('scrape gap of 4.0s', 1000, 6000), 6000);
    assert.equal(gap.status, 'paused');
    assert.match(gap.reason, /evidence is incomplete \(scrape gap/);
    assert.equal(decide(s, release({ intervalMs: 1000 }), { ...wait, stepMs: 1e9 }, 1e9).status, 'running', 'no deadline unless set');
  });
  test('a release whose last step is below 100% completes there', () => {
    const partial = release({ steps: [5, 25] });
    const s = decide(decide(initialState('shop', partial, 0), partial, pass, 1), partial, pass, 2);
    assert.equal(s.status, 'completed');
    assert.deepEqual(trafficFor(s, partial), { weight: 25, shadow: false });
  });
});

describe('traffic overlay', () => {
  const route: RouteConfig = {
    name: 'shop',
    match: { prefix: '/shop', methods: undefined, headers: undefined, host: undefined },
    backends: [{ upstream: 'v1', weight: 3 }, { upstream: 'v1b', weight: 1 }],
    sticky: { header: 'x-user-id' },
    shadow: [],
    diff: { enabled: true, ignoreHeaders: [], ignorePaths: [], baseline: undefined, maxBodyBytes: 1024, endpoints: [], tolerance: [], unordered: [], latency: { maxRatio: 1.5 } },
    release: release({ steps: ['shadow', 1, 5, 25, 50, 100] }),
    escapedSlashes: 'reject',
  };
  const config = {
    version: 1,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0, token: undefined, allowedHosts: [] },
    upstreams: Object.fromEntries(['v1', 'v1b', 'v2'].map((n) => [n, {
          name: n,
          url: 'http://127.0.0.1:1',
          endpoints: [{ name: '0', url: 'http://127.0.0.1:1', weight: 1 }],
          healthCheck: undefined,
          outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionPercent: 50 },
          retry: { attempts: 2, on: ['connect', 'reset'], budgetPercent: 20 },
          poolTimeoutMs: 1000,
          timeoutMs: undefined,
          connectTimeoutMs: 1000,
          maxSockets: 8,
        }])),
    routes: [route],
    paths: { escapedSlashes: 'reject' },
    accessLog: undefined,
    trustedProxies: [],
    stateDir: '/tmp',
    limits: { maxHeaderCount: 100, maxHeaderBytes: 16384, maxBodyBytes: 1e7, shadowInflight: 10, shadowBodyBytes: 1e6, shadowInflightBytes: 1e7, compareQueue: 10, compareThreads: 0, recordBytes: 1e6 },
    timeouts: { headerMs: 1, idleMs: 1, bodyMs: 1, upstreamMs: 1, configSettleMs: 1, shadowMs: 1, drainMs: 1, websocketIdleMs: 1, recordMs: 1 },
  } as GatewayConfig;
  const at = (stepIndex: number, status: ReleaseState['status'] = 'running'): ReleaseState => ({
    ...initialState('shop', route.release!, 0),
    stepIndex,
    status,
  });

  test('shadow step mirrors to the candidate and leaves user traffic alone', () => {
    const out = applyReleases(config, new Map([['shop', at(0)]])).routes[0]!;
    assert.deepEqual(out.backends, route.backends);
    assert.deepEqual(out.shadow.map((s) => [s.upstream, s.percent]), [['v2', 100]]);
  });
  test('canary steps scale the stable backends together', () => {
    const out = applyReleases(config, new Map([['shop', at(3)]])).routes[0]!;
    const weights = Object.fromEntries(out.backends.map((b) => [b.upstream, b.weight]));
    const total = weights['v1']! + weights['v1b']! + weights['v2']!;
    assert.equal(weights['v2']! / total, 0.25);
    assert.equal(weights['v1']! / weights['v1b']!, 3);
    assert.equal(out.shadow.length, 0);
  });
  test('rollback leaves the route as written; promotion sends everything to the candidate', () => {
    assert.deepEqual(applyReleases(config, new Map([['shop', at(3, 'rolled-back')]])).routes[0], route);
    const promoted = applyReleases(config, new Map([['shop', at(5, 'promoted')]])).routes[0]!;
    const snapshot = compileSnapshot({ ...config, routes: [promoted] }, { generation: 1, source: 'x', loadedAt: new Date() });
    for (let i = 0; i < 50; i++) assert.equal(snapshot.routes[0]!.pickBackend({ 'x-user-id': `u${i}` }).name, 'v2');
  });
  test('sticky users only move onto the candidate as the release ramps', () => {
    const keys = Array.from({ length: 3000 }, (_, i) => ({ 'x-user-id': `user-${i}` }));
    let previous: string[] | undefined;
    for (let step = 1; step <= 5; step++) {
      const routes = applyReleases(config, new Map([['shop', at(step, step === 5 ? 'promoted' : 'running')]])).routes;
      const snapshot = compileSnapshot({ ...config, routes }, { generation: 1, source: 'x', loadedAt: new Date() });
      const picks = keys.map((k) => snapshot.routes[0]!.pickBackend(k).name);
      if (previous) picks.forEach((p, i) => previous![i] === 'v2' && assert.equal(p, 'v2', `user-${i} moved back`));
      previous = picks;
    }
  });
});

describe('evidence', () => {
  test('Prometheus text from two replicas sums; deltas subtract', () => {
    const replica = (ok: number, errors: number) => `
gatewayctl_requests_total{route="shop",upstream="v2",code="200"} ${ok}
gatewayctl_requests_total{route="shop",upstream="v2",code="503"} ${errors}
gatewayctl_request_duration_seconds_bucket{route="shop",upstream="v2",le="0.01"} ${ok}
gatewayctl_request_duration_seconds_bucket{route="shop",upstream="v2",le="+Inf"} ${ok + errors}
gatewayctl_shadow_comparisons_total{route="shop",upstream="v2",result="diff"} 3
`;
    const now = evidenceFrom([...samplesFromText(replica(100, 4)), ...samplesFromText(replica(50, 1))]);
    assert.deepEqual(now.routes['shop']!.backends['v2'], { requests: 155, errors: 5, latency: [150, 5] });
    assert.deepEqual(now.routes['shop']!.comparisons['v2'], { match: 0, diff: 6 });
    const base = evidenceFrom(samplesFromText(replica(100, 4)));
    assert.deepEqual(evidenceSince(now, base).routes['shop']!.backends['v2'], { requests: 51, errors: 1, latency: [50, 1] });
  });
  test('Prometheus query results read like the replicas\' own /metrics, counts rounded', () => {
    const fromPrometheus = evidenceFrom([
      ...vectorSamples(METRIC.requests, [
        { metric: { route: 'shop', upstream: 'v2', code: '200' }, value: [0, '100.4'] },
        { metric: { route: 'shop', upstream: 'v2', code: '503' }, value: [0, '3.6'] },
      ]),
      ...vectorSamples(METRIC.shadowComparisons, [{ metric: { route: 'shop', upstream: 'v2', result: 'match' }, value: [0, '7'] }]),
    ]);
    assert.deepEqual(fromPrometheus.routes['shop']!.backends['v2']!.requests, 104);
    assert.deepEqual(fromPrometheus.routes['shop']!.backends['v2']!.errors, 4);
    assert.deepEqual(fromPrometheus.routes['shop']!.comparisons['v2'], { match: 7, diff: 0 });
  });
});

describe('Prometheus queries', () => {
  test('the selector is merged into every query, with the route and the window', () => {
    const selector = parseSelector('{job="gatewayctl", namespace=~"prod|prod-eu"}');
    assert.deepEqual(selector, ['job="gatewayctl"', 'namespace=~"prod|prod-eu"']);
    const q = stepQueries(selector, 'shop', 90_000);
    assert.equal(
      q.requests,
      'sum by (route, upstream, code) (increase(gatewayctl_requests_total{job="gatewayctl",namespace=~"prod|prod-eu",route="shop"}[90000ms]))',
    );
    assert.match(q.latency, /^sum by \(route, upstream, le\) \(increase\(gatewayctl_request_duration_seconds_bucket\{job="gatewayctl",.*route="shop"\}\[90000ms\]\)\)$/);
    assert.equal(q.scrapes, 'gatewayctl_config_generation{job="gatewayctl",namespace=~"prod|prod-eu"}[90000ms]');
    assert.equal(stepQueries([], 'shop', 1000).scrapes, 'gatewayctl_config_generation[1000ms]');
  });
  test('bad selectors and headers are refused with the flag named', () => {
    assert.throws(() => parseSelector('{job=gatewayctl}'), /--selector .*label matchers/);
    assert.throws(() => parseSelector('{job="a"'), /closing/);
    assert.throws(() => parseSelector('{__name__="x"}'), /metric name/);
    assert.deepEqual(parseSelector('job="a"'), ['job="a"']);
    assert.deepEqual(parseHeader('X-Scope-OrgID: team-a'), ['X-Scope-OrgID', 'team-a']);
    assert.equal(parseHeader('no colon'), undefined);
    assert.equal(parseHeader('Bad Name:x'), undefined);
  });
});

describe('scrape coverage', () => {
  const every = (from: number, to: number, step = 1000) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);
  test('a whole window is judged; its scrape count is what the interval implies', () => {
    const c = windowCoverage([{ times: every(10_200, 30_200) }, { times: every(10_700, 29_700) }], 10_000, 30_500);
    assert.deepEqual(c, { ok: true, scrapes: 21, expected: 20, intervalMs: 1000 });
  });
  test('a gap at the start of the step is not judged, and the window restarts after it', () => {
    const c = windowCoverage([{ times: [...every(1_000, 9_000), ...every(15_000, 30_000)] }], 8_000, 30_300);
    assert.equal(c.ok, false);
    assert.ok(!c.ok && /scrape gap of 6\.0s/.test(c.reason), JSON.stringify(c));
    assert.ok(!c.ok && c.resumeAt === 15_000);
    assert.equal(windowCoverage([{ times: every(1_000, 30_000) }], 15_000, 30_300, 1000).ok, true, 'judged once the gap is behind');
  });
  test('one gateway missing scrapes is a gap; a gateway that appears or leaves is not', () => {
    const missing = windowCoverage([{ times: every(0, 20_000) }, { times: [...every(0, 5_000), ...every(9_000, 20_000)] }], 0, 20_100);
    assert.equal(missing.ok, false);
    const replaced = windowCoverage([{ times: every(0, 10_000) }, { times: every(10_500, 20_500) }], 0, 20_600);
    assert.equal(replaced.ok, true, JSON.stringify(replaced));
  });
  test('no recent scrape, too short a window, or too few scrapes: wait', () => {
    const stale = windowCoverage([{ times: every(0, 10_000) }], 0, 20_000);
    assert.ok(!stale.ok && /no scrape for 10\.0s/.test(stale.reason));
    assert.equal(stale.ok || stale.resumeAt, undefined);
    const short = windowCoverage([{ times: [100, 1100] }], 0, 1500);
    assert.ok(!short.ok && /under two scrape intervals/.test(short.reason));
    assert.ok(!windowCoverage([], 0, 10_000).ok);
    const sparse = windowCoverage([{ times: [0, 1000, 2000] }], 0, 10_000, 250);
    assert.equal(sparse.ok, false, 'a 250ms interval implies many more scrapes');
  });
});

describe('evidence: the gateway\'s own 503s', () => {
  test('pool_exhausted answers are not counted against the upstream', () => {
    const text = [
      'gatewayctl_requests_total{route="shop",upstream="v2",code="200"} 90',
      'gatewayctl_requests_total{route="shop",upstream="v2",code="503"} 10',
      'gatewayctl_requests_total{route="shop",upstream="v2",code="502"} 2',
      'gatewayctl_upstream_errors_total{route="shop",upstream="v2",reason="pool_exhausted"} 10',
      'gatewayctl_upstream_errors_total{route="shop",upstream="v2",reason="connect"} 2',
    ].join('\n');
    const backend = evidenceFrom(samplesFromText(text)).routes['shop']!.backends['v2']!;
    assert.equal(backend.requests, 102);
    assert.equal(backend.errors, 2, 'only the connect failures are the candidate\'s');
  });
});

describe('release state on disk', () => {
  test('a release of the wrong shape is left out and named; the others resume', () => {
    const tmp = tempDir();
    try {
      const store = new ReleaseStore(tmp.dir);
      const r = release({ intervalMs: 1000, minRequests: 10 });
      const pass = { verdict: 'pass', reason: 'every gate passed', gates: [], candidateRequests: 20, stableRequests: 100, elapsedMs: 1000 } as const;
      const shop = decide(initialState('shop', r, 0), r, pass, 1000);
      assert.equal(shop.stepIndex, 1);
      store.save(new Map([['shop', shop], ['cart', initialState('cart', r, 0)]]));
      // A hand edit: a step index as text.
      const file = JSON.parse(readFileSync(store.file, 'utf8'));
      file.releases.cart.stepIndex = '1';
      writeFileSync(store.file, JSON.stringify(file));
      const { states, refused } = store.load();
      assert.deepEqual([...states.keys()], ['shop']);
      assert.deepEqual(states.get('shop'), shop);
      assert.deepEqual(refused, ['cart']);
    } finally {
      tmp.remove();
    }
  });

  test('a file that is not a state file is refused whole', () => {
    const tmp = tempDir();
    try {
      const store = new ReleaseStore(tmp.dir);
      for (const text of ['null', '{"version":1,"releases":null}', '{"version":2,"releases":{}}']) {
        writeFileSync(store.file, text);
        assert.throws(() => store.load(), /unknown state format/, text);
      }
    } finally {
      tmp.remove();
    }
  });
});
