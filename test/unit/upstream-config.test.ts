/** Upstream endpoints, health checks and retries as the validator reads them. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateConfigSource } from '../../src/config/validate.js';
import { compileSnapshot } from '../../src/config/compile.js';
import { RetryBudget } from '../../src/upstream/budget.js';
import { UpstreamPool } from '../../src/upstream/pool.js';
import { RetryPolicy } from '../../src/upstream/retry.js';

const check = (upstreams: string) =>
  validateConfigSource({ file: 'u.yaml', text: `upstreams:\n${upstreams}\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n` });

describe('upstream config', () => {
  test('url is one endpoint named 0, with safe retries on by default', () => {
    const a = check('  a: http://10.0.0.1:8080').config!.upstreams['a']!;
    assert.deepEqual(a.endpoints, [{ name: '0', url: 'http://10.0.0.1:8080', weight: 1 }]);
    assert.deepEqual(a.retry, { attempts: 2, on: ['connect', 'reset'], budgetPercent: 20 });
    assert.equal(a.healthCheck, undefined);
    assert.equal(a.poolTimeoutMs, a.connectTimeoutMs);
  });

  test('endpoints: URLs or {url, weight, name}; health check defaults', () => {
    const a = check(
      '  a:\n    endpoints: [http://h1:81/base, { url: "http://h2:81/base/", weight: 3, name: b }]\n    healthCheck: { path: /healthz }\n    retry: { attempts: 3, on: [connect, 503] }',
    ).config!.upstreams['a']!;
    assert.deepEqual(a.endpoints, [
      { name: '0', url: 'http://h1:81/base', weight: 1 },
      { name: 'b', url: 'http://h2:81/base', weight: 3 },
    ]);
    assert.deepEqual(a.healthCheck, { path: '/healthz', intervalMs: 5000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 3 });
    assert.deepEqual(a.retry.on, ['connect', 503]);
  });

  test('refused: url and endpoints together, mixed schemes or base paths, duplicate names, bad statuses', () => {
    const codes = (text: string) => check(text).diagnostics.filter((d) => d.severity === 'error').map((d) => d.message);
    assert.match(codes('  a: { url: "http://h:1", endpoints: ["http://h:2"] }').join('\n'), /url.*endpoints|endpoints.*url/);
    assert.match(codes('  a: { endpoints: ["http://h:1", "https://h:2"] }').join('\n'), /same scheme and base path/);
    assert.match(codes('  a: { endpoints: ["http://h:1/x", "http://h:2/y"] }').join('\n'), /same scheme and base path/);
    assert.match(codes('  a: { endpoints: [{ url: "http://h:1", name: n }, { url: "http://h:2", name: n }] }').join('\n'), /used twice/);
    assert.ok(codes('  a: { url: "http://h:1", retry: { on: [404] } }').length > 0);
    assert.ok(codes('  a: { url: "http://h:1", retry: { on: [timeout] } }').length > 0);
  });
});

describe('retry policy', () => {
  const policy = new RetryPolicy({ attempts: 3, on: ['connect', 'reset', 502, 503], budgetPercent: 20 });
  const facts = (method: string, o: { hasBody?: boolean; requestWritten?: boolean; bodyStarted?: boolean } = {}) => ({
    method,
    hasBody: o.hasBody ?? false,
    requestWritten: o.requestWritten ?? false,
    bodyStarted: o.bodyStarted ?? false,
  });
  test('connect: any method, while the body has not started', () => {
    assert.equal(policy.allows('connect', facts('POST', { hasBody: true })), true);
    assert.equal(policy.allows('connect', facts('POST', { hasBody: true, bodyStarted: true })), false);
  });
  test('reset: a POST only when nothing was written; a bodiless GET also after', () => {
    assert.equal(policy.allows('reset', facts('POST', { hasBody: true })), true);
    assert.equal(policy.allows('reset', facts('POST', { hasBody: true, requestWritten: true })), false);
    assert.equal(policy.allows('reset', facts('GET', { requestWritten: true })), true);
    assert.equal(policy.allows('reset', facts('PUT', { hasBody: true, requestWritten: true })), false);
  });
  test('statuses: idempotent methods without a body, listed statuses only', () => {
    assert.equal(policy.allows('status', facts('GET'), 503), true);
    assert.equal(policy.allows('status', facts('GET'), 500), false);
    assert.equal(policy.allows('status', facts('POST'), 503), false);
    assert.equal(policy.allows('status', facts('PUT', { hasBody: true }), 503), false);
  });
});

describe('retry budget', () => {
  test('20% of requests plus 3 a second over 10 s', () => {
    const budget = new RetryBudget(20);
    const t = 1_000_000;
    for (let i = 0; i < 1000; i++) budget.request(t);
    let allowed = 0;
    while (budget.tryRetry(t)) allowed++;
    assert.equal(allowed, 200 + 30);
    // Eleven seconds later the window has moved on: the floor again.
    let later = 0;
    while (budget.tryRetry(t + 11_000)) later++;
    assert.equal(later, 30);
  });
});

describe('endpoint picking', () => {
  const poolOf = (upstream: string) => {
    const config = check(upstream).config!;
    const snapshot = compileSnapshot(config, { generation: 1, source: 'u.yaml', loadedAt: new Date() });
    return new UpstreamPool(snapshot.upstreams.get('a')!, undefined);
  };
  const names = (pool: UpstreamPool, n: number, hold = false) =>
    Array.from({ length: n }, () => {
      const e = pool.pick();
      pool.begin(e);
      if (!hold) pool.finish(e);
      return e.name;
    });

  test('idle endpoints share exactly by weight, interleaved', () => {
    const pool = poolOf('  a: { endpoints: ["http://h:1", { url: "http://h:2", weight: 2 }, "http://h:3"] }');
    const picks = names(pool, 100);
    assert.deepEqual([picks.filter((x) => x === '0').length, picks.filter((x) => x === '1').length, picks.filter((x) => x === '2').length], [25, 50, 25]);
    assert.ok(picks.slice(0, 4).includes('0') && picks.slice(0, 4).includes('2'), 'not in runs');
    pool.destroy();
  });

  test('requests in flight steer new ones to the least busy endpoint', () => {
    const pool = poolOf('  a: { endpoints: ["http://h:1", "http://h:2", "http://h:3"] }');
    const busy = pool.endpoints[0]!;
    pool.begin(busy);
    pool.begin(busy);
    const picks = names(pool, 4, true);
    assert.ok(!picks.slice(0, 4).includes('0'), `the busy endpoint waits until the others are as busy: ${picks}`);
    pool.destroy();
  });

  test('the endpoint that just failed is avoided; nothing in rotation: panic mode still picks', () => {
    const pool = poolOf('  a: { endpoints: ["http://h:1", "http://h:2"], outlierDetection: { consecutiveFailures: 1, maxEjectionPercent: 100 } }');
    const [first, second] = pool.endpoints as [ReturnType<UpstreamPool['pick']>, ReturnType<UpstreamPool['pick']>];
    assert.equal(pool.pick(first), second);
    pool.record(first, 'failure');
    pool.record(second, 'failure');
    assert.deepEqual(pool.states().map((s) => s.ejected), [true, true]);
    assert.ok(pool.endpoints.includes(pool.pick()), 'panic mode: an endpoint all the same');
    pool.destroy();
  });

  test('at most maxEjectionPercent ejected at once, one always may be', () => {
    const pool = poolOf('  a: { endpoints: ["http://h:1", "http://h:2", "http://h:3"], outlierDetection: { consecutiveFailures: 1, maxEjectionPercent: 10 } }');
    for (const e of pool.endpoints) pool.record(e, 'failure');
    assert.deepEqual(pool.states().map((s) => s.ejected), [true, false, false]);
    pool.destroy();
  });
});
