/**
 * Pointers and ignore rules, intervals, additive counts and their merge,
 * the store's ring and subscribers, the engine's bounded queue, and SSE
 * framing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SseParser, sseComment, sseFrame } from '../../src/admin/sse.js';
import type { DiffConfig } from '../../src/config/types.js';
import { CountsMerger, emptyCounts } from '../../src/diff/counts.js';
import { DiffEngine } from '../../src/diff/engine.js';
import { LearnedNoise } from '../../src/diff/noise.js';
import { escapeSegment, IgnoreRules, parsePointer } from '../../src/diff/paths.js';
import { verdict } from '../../src/diff/stats.js';
import { DiffStore } from '../../src/diff/store.js';
import { mergeSummaries } from '../../src/diff/summary.js';
import type { CompareOutcome, DiffEventBody } from '../../src/diff/types.js';
import type { MirroredPair } from '../../src/diff/pair.js';

describe('JSON Pointers and ignore rules', () => {
  test('escaping round-trips', () => {
    const toPointer = (segments: readonly string[]) => segments.map((s) => '/' + escapeSegment(s)).join('');
    for (const segments of [[], ['a'], ['a/b', 'm~n', ''], ['0', '*']]) {
      assert.deepEqual(parsePointer(toPointer(segments)), segments);
    }
    assert.equal(toPointer(['a/b', 'm~n']), '/a~1b/m~0n');
  });

  const rules = new IgnoreRules(['/meta/requestId', '/items/*/updatedAt', '/a~1b', '/*/secret']);
  const table: [string, boolean][] = [
    ['/meta/requestId', true],
    ['/meta/requestId/deeper', true],
    ['/meta/other', false],
    ['/items/0/updatedAt', true],
    ['/items/17/updatedAt', true],
    ['/items/0/price', false],
    ['/a~1b', true],
    ['/anything/secret', true],
    ['/anything/secret/below', true],
    ['/anything', false],
    ['/a/b/secret', false],
    ['', false],
  ];
  for (const [pointer, ignored] of table) {
    test(`${pointer || '(root)'} ${ignored ? 'is' : 'is not'} ignored`, () => assert.equal(rules.matches(pointer), ignored));
  }
});

describe('statistics', () => {
  test('verdicts compare the difference rate with the noise rate', () => {
    assert.equal(verdict({ differing: 20, noise: 0, masked: 0 }, 20, 20), 'regression');
    assert.equal(verdict({ differing: 2, noise: 0, masked: 0 }, 3, 3), 'uncertain');
    assert.equal(verdict({ differing: 0, noise: 20, masked: 20 }, 20, 20), 'noise');
    assert.equal(verdict({ differing: 3, noise: 0, masked: 0 }, 20, 0), 'unverified');
  });

  test('learned noise needs repeated noise, and loses to a clearly higher shadow rate', () => {
    const learned = new LearnedNoise();
    const ts = { kind: 'body' as const, template: '/ts', change: 'value' as const };
    const d = { ...ts, primary: 'a', shadow: 'b' };
    learned.observe('r', '/e', 'baseline', [ts], []);
    assert.equal(learned.judge('r', '/e', d, false, 'baseline'), 'real', 'one sighting is not enough');
    for (let i = 0; i < 5; i++) learned.observe('r', '/e', 'baseline', [ts], [ts]);
    assert.equal(learned.judge('r', '/e', d, false, 'baseline'), 'noise');
    assert.equal(learned.judge('other', '/e', d, false, 'baseline'), 'real', 'per route');
    assert.equal(learned.judge('r', '/other', d, false, 'baseline'), 'real', 'per endpoint');
    // Noisy on 6 of 206 baseline pairs, but the shadow differs on all of them: a regression.
    for (let i = 0; i < 200; i++) learned.observe('r', '/e', 'baseline', [], [ts]);
    assert.equal(learned.judge('r', '/e', d, true, 'baseline'), 'real', 'even where this request was noisy');
  });

  test('learned numeric noise has a size; learned sets are reordered only', () => {
    const learned = new LearnedNoise();
    const rating = { kind: 'body' as const, template: '/rating', change: 'value' as const };
    for (let i = 0; i < 20; i++) learned.observe('r', '/p', 'baseline', [{ ...rating, relative: 0.0001 * ((i % 5) + 1) }], [rating]);
    assert.equal(learned.judge('r', '/p', { ...rating, primary: 4.5, shadow: 4.5009 }, true, 'baseline'), 'tolerated');
    assert.equal(learned.judge('r', '/p', { ...rating, primary: 4.5, shadow: 3.9 }, true, 'baseline'), 'beyond');
    const tags = { kind: 'body' as const, template: '/tags', change: 'order' as const };
    for (let i = 0; i < 3; i++) learned.observe('r', '/p', 'baseline', [tags], []);
    assert.deepEqual([...(learned.reordered('r', '/p') ?? [])], ['/tags']);
    assert.equal(learned.judge('r', '/p', { ...tags, primary: [], shadow: [] }, false, 'baseline'), 'reordered');
  });
});

function outcome(route: string, shadow: string, paths: [string, number][], event?: Partial<DiffEventBody>): CompareOutcome {
  const counts = emptyCounts(route, shadow, 'base');
  counts.compared = 1;
  counts.baselined = 1;
  counts.differing = paths.some(([, d]) => d > 0) ? 1 : 0;
  counts.kinds.body = counts.differing;
  counts.latency.primary[2] = 1;
  counts.latency.shadow[3] = 1;
  counts.latency.primarySumMs = 4;
  counts.latency.shadowSumMs = 8;
  for (const [path, differing] of paths) counts.paths.push({ kind: 'body', path, differing, noise: differing ? 0 : 1, masked: 0 });
  if (!event) return { counts };
  return {
    counts,
    event: {
      time: new Date().toISOString(),
      route,
      method: 'GET',
      path: '/x',
      requestId: 'r',
      primary: { upstream: 'v1', status: 200, latencyMs: 1 },
      shadow: { upstream: shadow, status: 200, latencyMs: 1 },
      differences: [],
      differenceCount: 1,
      noise: 0,
      truncated: false,
      ...event,
    },
  };
}

describe('the diff store', () => {
  test('the ring keeps the most recent events, ids are unique and ordered', () => {
    const store = new DiffStore({ capacity: 3 });
    const ids = Array.from({ length: 5 }, (_, i) => store.ingest(outcome('r', 's', [['/a', 1]], { requestId: `q${i}` }))!.id);
    assert.equal(new Set(ids).size, 5);
    assert.ok(ids.every((id) => id.startsWith(store.bootId + '-')));
    assert.deepEqual(
      store.recent({}, { limit: 10 }).map((e) => e.requestId),
      ['q2', 'q3', 'q4'],
    );
    assert.deepEqual(
      store.recent({}, { limit: 10, afterId: ids[3] }).map((e) => e.requestId),
      ['q4'],
    );
    assert.equal(store.recent({}, { limit: 10, afterId: 'otherboot-99' }).length, 3, 'another boot: everything kept is new');
  });

  test('subscribers get matching events; unsubscribing stops them', () => {
    const store = new DiffStore();
    const got: string[] = [];
    const off = store.subscribe({ filter: { route: 'a' }, deliver: (e) => got.push(e.route + e.requestId) });
    store.ingest(outcome('a', 's', [['/x', 1]], { requestId: '1' }));
    store.ingest(outcome('b', 's', [['/x', 1]], { requestId: '2' }));
    off();
    store.ingest(outcome('a', 's', [['/x', 1]], { requestId: '3' }));
    assert.deepEqual(got, ['a1']);
    assert.equal(store.subscriberCount, 0);
  });

  test('summary counts add up; merging replicas sums and recomputes', () => {
    const one = new DiffStore();
    const two = new DiffStore();
    for (let i = 0; i < 3; i++) one.ingest(outcome('r', 's', [['/a', 1], ['/ts', 0]], {}));
    one.ingest(outcome('r', 's', [['/ts', 0]]));
    for (let i = 0; i < 2; i++) two.ingest(outcome('r', 's', [['/a', 1]], {}));
    two.ingest(outcome('r', 't', [['/b', 1]], {}));

    const s1 = one.summary().routes[0]!.shadows[0]!;
    assert.equal(s1.compared, 4);
    assert.equal(s1.differing, 3);
    assert.equal(s1.diffRate, 0.75);
    assert.deepEqual(
      s1.paths.map((p) => [p.path, p.differing, p.noise]),
      [
        ['/a', 3, 0],
        ['/ts', 0, 4],
      ],
    );
    assert.equal(s1.latency.primary.count, 4);
    assert.equal(s1.latency.primary.p50Ms, 5);

    const merged = mergeSummaries([one.summary(), JSON.parse(JSON.stringify(two.summary()))]);
    const rs = merged.routes[0]!.shadows.find((s) => s.shadow === 's')!;
    assert.equal(rs.compared, 6);
    assert.equal(rs.differing, 5);
    assert.equal(rs.baselined, 6);
    assert.deepEqual(rs.paths[0], {
      kind: 'body',
      path: '/a',
      differing: 5,
      rate: 0.8333,
      ci: rs.paths[0]!.ci,
      noise: 0,
      noiseRate: 0,
      noiseCi: rs.paths[0]!.noiseCi,
      masked: 0,
      verdict: 'regression',
    });
    assert.equal(rs.latency.shadow.count, 6);
    assert.ok(merged.routes[0]!.shadows.some((s) => s.shadow === 't'));
  });

  test('the path table is bounded', () => {
    const store = new DiffStore({ maxPathsPerTarget: 2 });
    store.ingest(outcome('r', 's', [['/a', 1], ['/b', 1], ['/c', 1]]));
    const s = store.summary().routes[0]!.shadows[0]!;
    assert.equal(s.paths.length, 2);
    assert.equal(s.pathsOmitted, 1);
  });
});

const DIFF: DiffConfig = { enabled: true, ignoreHeaders: [], ignorePaths: [], baseline: undefined, maxBodyBytes: 1024, endpoints: [], tolerance: [], unordered: [], latency: { maxRatio: 1.5 } };

function mirrored(body: string): MirroredPair {
  const r = { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(body), truncated: false, bodyBytes: body.length, latencyMs: 1 };
  return {
    route: 'r',
    diff: DIFF,
    method: 'GET',
    path: '/',
    requestId: 'q',
    time: new Date(),
    primaryUpstream: 'v1',
    primary: r,
    shadows: [{ upstream: 's', result: { outcome: 'completed', latencyMs: 1, status: 200, response: { ...r, body: Buffer.from('{"v":2}') } } }],
    baseline: undefined,
  };
}

describe('the comparison engine', () => {
  test('submit returns at once; comparison happens later', async () => {
    const store = new DiffStore();
    const engine = new DiffEngine({ sink: store, queueLimit: () => 10 });
    engine.submit(mirrored('{"v":1}'));
    assert.equal(store.recent({}, { limit: 10 }).length, 0, 'nothing compared synchronously');
    await engine.idle();
    assert.equal(store.recent({}, { limit: 10 }).length, 1);
    engine.close();
  });

  test('beyond the queue limit pairs are dropped and counted, not queued', async () => {
    const store = new DiffStore();
    const engine = new DiffEngine({ sink: store, queueLimit: () => 5 });
    for (let i = 0; i < 50; i++) engine.submit(mirrored('{"v":1}'));
    assert.equal(engine.pending, 5);
    assert.equal(engine.dropped, 45);
    await engine.idle();
    const s = store.summary().routes[0]!.shadows[0]!;
    assert.equal(s.compared, 5);
    assert.equal(s.dropped, 45);
    engine.close();
  });

  test('a pair that makes comparison throw is counted as failed, never rethrown', async () => {
    const engine = new DiffEngine({ sink: new DiffStore(), queueLimit: () => 10 });
    const broken = { ...mirrored('{}'), primary: undefined } as unknown as MirroredPair;
    assert.doesNotThrow(() => engine.submit(broken));
    await engine.idle();
    assert.equal(engine.failed, 1);
    engine.close();
  });

  test("a turn's counts added up reach the store as the pairs one by one would", async () => {
    const outcomes: CompareOutcome[] = [];
    const engine = new DiffEngine({ sink: { ingest: (o) => outcomes.push(o) }, queueLimit: () => 100 });
    for (let i = 0; i < 12; i++) {
      const pair = mirrored(i % 3 === 0 ? '{"v":2}' : `{"v":1,"n":${i % 4}}`);
      const shadow = pair.shadows[0]!;
      const latencyMs = 1 + i * 1.7;
      engine.submit({ ...pair, requestId: `q${i}`, path: `/items/${i % 2}`, primary: { ...pair.primary, latencyMs: 1 + i }, shadows: [{ ...shadow, result: { ...shadow.result, latencyMs } }] });
    }
    await engine.idle();
    engine.close();
    assert.equal(outcomes.length, 12);
    assert.ok(outcomes.some((o) => o.event) && outcomes.some((o) => !o.event), 'some pairs differ, some do not');

    const oneByOne = new DiffStore();
    for (const o of outcomes) oneByOne.ingest(o);
    const merged = new DiffStore();
    const merger = new CountsMerger();
    for (const o of outcomes.slice(0, 5)) merger.add(o.counts);
    for (const counts of merger.take()) merged.ingest({ counts });
    assert.equal(merger.size, 0, 'taking empties it');
    for (const o of outcomes.slice(5)) merger.add(o.counts);
    for (const counts of merger.take()) merged.ingest({ counts });
    for (const o of outcomes) if (o.event) merged.ingest({ event: o.event, ...(o.example ? { example: o.example } : {}) });

    // Everything but the stores' own clocks (since, time).
    assert.deepEqual(merged.summary().routes, oneByOne.summary().routes);
    assert.deepEqual(
      merged.recent({}, { limit: 20 }).map((e) => e.requestId),
      oneByOne.recent({}, { limit: 20 }).map((e) => e.requestId),
    );
  });

  test('pairs of routes with diff disabled are not queued', () => {
    const engine = new DiffEngine({ sink: new DiffStore(), queueLimit: () => 10 });
    engine.submit({ ...mirrored('{}'), diff: { ...DIFF, enabled: false } });
    assert.equal(engine.pending, 0);
    engine.close();
  });
});

describe('server-sent events', () => {
  test('frames parse back, whatever the chunking', () => {
    const text = 'retry: 2000\n' + sseComment('hello') + sseFrame('diff', '{"a":1}', 'x-1') + sseFrame('lag', 'line1\nline2') + 'data: tail';
    for (const size of [1, 2, 7, text.length]) {
      const parser = new SseParser();
      const got = [];
      for (let i = 0; i < text.length; i += size) got.push(...parser.push(text.slice(i, i + size)));
      assert.deepEqual(got, [
        { event: 'diff', id: 'x-1', data: '{"a":1}' },
        { event: 'lag', id: 'x-1', data: 'line1\nline2' },
      ]);
      assert.equal(parser.lastId, 'x-1');
      assert.equal(parser.retryMs, 2000);
    }
  });

  test('an oversize message is dropped, the stream goes on', () => {
    const parser = new SseParser(100);
    const got = parser.push(sseFrame('diff', 'x'.repeat(500)) + sseFrame('diff', 'ok'));
    assert.deepEqual(
      got.map((m) => m.data),
      ['ok'],
    );
  });
});
