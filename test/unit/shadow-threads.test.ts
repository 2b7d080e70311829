/**
 * The shadow threads, real ones: pairs handed over (their bodies
 * transferred), outcomes counted and stored on this side, the hand-over
 * bounded; copies sent from the same thread that compares; a thread that
 * runs out of heap replaced and counted once, its copies and pairs failed;
 * and all of them ended on close.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { DiffConfig } from '../../src/config/types.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { compileSnapshot } from '../../src/config/compile.js';
import { validateConfigSource } from '../../src/config/validate.js';
import { ComparePool } from '../../src/shadow/compare-pool.js';
import { ShadowClients } from '../../src/shadow/clients.js';
import { ThreadedCopies } from '../../src/shadow/threaded-copies.js';
import { shadowThreadCount, ShadowThreads } from '../../src/shadow/threads.js';
import { UpstreamPools } from '../../src/upstream/pools.js';
import { DiffStore } from '../../src/diff/store.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import type { MirroredPair } from '../../src/diff/pair.js';
import { DiffConfigsReceived, DiffConfigsSent } from '../../src/diff/thread-wire.js';
import { metricValue } from '../helpers/metrics.js';

const DIFF: DiffConfig = { enabled: true, ignoreHeaders: [], ignorePaths: [], baseline: undefined, maxBodyBytes: 16 * 1024 * 1024, endpoints: [], tolerance: [], unordered: [], latency: { maxRatio: 1.5 } };

/** A body in memory of its own, as captures hand over. */
const owned = (text: string) => {
  const out = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  out.write(text);
  return out;
};

function mirrored(route: string, primary: string, shadow: string): MirroredPair {
  const side = (body: Buffer) => ({ status: 200, headers: { 'content-type': 'application/json' }, body, truncated: false, bodyBytes: body.length, latencyMs: 1 });
  return {
    route,
    diff: DIFF,
    method: 'GET',
    path: '/',
    requestId: `q-${Math.random()}`,
    time: new Date(),
    primaryUpstream: 'v1',
    primary: side(owned(primary)),
    shadows: [{ upstream: 'v2', result: { outcome: 'completed', latencyMs: 1, status: 200, response: side(owned(shadow)) } }],
    baseline: undefined,
  };
}

function pool(options: { queue?: number; bytes?: number; threads?: number; heapMb?: number } = {}) {
  const store = new DiffStore();
  const metrics = new GatewayMetrics({ collectDefaults: false });
  const threads = new ShadowThreads({ count: () => options.threads ?? 1, metrics, ...(options.heapMb ? { heapMb: options.heapMb } : {}) });
  /** Each report of counts that reached this side: one per report message and route. */
  const countReports: number[] = [];
  const compare = new ComparePool({
    threads,
    sink: {
      ingest: (outcome) => {
        if (outcome.counts) countReports.push(outcome.counts.compared);
        return store.ingest(outcome);
      },
    },
    metrics,
    queueLimit: () => options.queue ?? 100,
    byteLimit: () => options.bytes ?? 64 * 1024 * 1024,
  });
  const close = async () => {
    await compare.close();
    await threads.close();
  };
  return { store, metrics, threads, compare, close, countReports };
}

/** An upstream as the gateway compiles it, at `url`. */
function upstreamAt(url: string) {
  const config = validateConfigSource({ file: 'u.yaml', text: `upstreams:\n  a: ${url}\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n` }).config!;
  return compileSnapshot(config, { generation: 1, source: 'u.yaml', loadedAt: new Date() }).upstreams.get('a')!;
}

/** The store's summary counts every pair, and each differing pair has its event. */
function assertStored(store: DiffStore, expected: { compared: number; differing: number }): void {
  const shadow = store.summary().routes[0]!.shadows[0]!;
  assert.deepEqual({ compared: shadow.compared, differing: shadow.differing }, expected);
  assert.equal(store.recent({}, { limit: 100 }).length, expected.differing, 'one event a differing pair');
}

const copy = (timeoutMs = 5000) => ({ method: 'GET', path: '/', headers: {}, body: undefined, timeoutMs });

describe('shadow threads', () => {
  test('pairs are compared in a thread: bodies transferred, outcomes stored and counted here', async () => {
    const { store, metrics, threads, compare, close } = pool();
    try {
      const pair = mirrored('r', '{"v":1}', '{"v":2}');
      compare.submit(pair);
      // The pairs of a turn leave together at its end; the memory went with them: nothing of it is left on this side.
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(pair.primary.body.byteLength, 0);
      assert.equal(threads.running, 1);
      compare.submit(mirrored('r', '{"v":1}', '{"v":1}'));
      await compare.idle();
      assert.equal(compare.compared, 2);
      const [event] = store.recent({}, { limit: 10 });
      assert.equal(event?.differences[0]?.path, '/v');
      const text = await metrics.registry.metrics();
      assert.equal(metricValue(text, 'gatewayctl_shadow_comparisons_total', { route: 'r', result: 'diff' }), 1);
      assert.equal(metricValue(text, 'gatewayctl_shadow_comparisons_total', { route: 'r', result: 'match' }), 1);
    } finally {
      await close();
    }
  });

  test('the hand-over is bounded in pairs and in bytes: the rest is dropped and counted', async () => {
    const { metrics, compare, close } = pool({ queue: 3 });
    try {
      for (let i = 0; i < 10; i++) compare.submit(mirrored('r', '{"v":1}', '{"v":2}'));
      assert.equal(compare.pending, 3);
      assert.equal(compare.dropped, 7);
      assert.equal(metricValue(await metrics.registry.metrics(), 'gatewayctl_shadow_compare_dropped_total', { route: 'r' }), 7);
      await compare.idle();
    } finally {
      await close();
    }
    const bytes = pool({ bytes: 100 });
    try {
      const big = '{"v":"' + 'x'.repeat(60) + '"}';
      bytes.compare.submit(mirrored('r', big, big));
      bytes.compare.submit(mirrored('r', big, big));
      assert.equal(bytes.compare.dropped, 1, 'the second pair would pass the byte bound');
      await bytes.compare.idle();
    } finally {
      await bytes.close();
    }
  });

  test("a primary past its capture limit is hashed on the pair's thread: pieces copied over, the pair compared by their digest", async () => {
    const { metrics, compare, close } = pool();
    const whole = Buffer.alloc(600_000);
    for (let i = 0; i < whole.length; i++) whole[i] = i % 253;
    const digest = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
    /** A pair whose primary was hashed through bodyHash, and whose shadow says `shadowSha256`. */
    const hashedPair = (shadowSha256: string) => {
      const hash = compare.bodyHash('r')!;
      for (let at = 0; at < whole.length; at += 70_001) hash.update(whole.subarray(at, at + 70_001));
      const finished = hash.finish();
      assert.ok(finished && 'sha256Job' in finished, 'hashed elsewhere, not here');
      const pair = mirrored('r', '', '');
      const cut = { truncated: true, bodyBytes: whole.length };
      return {
        ...pair,
        primary: { ...pair.primary, ...cut, sha256Job: finished.sha256Job },
        shadows: [{ upstream: 'v2', result: { ...pair.shadows[0]!.result, response: { ...pair.shadows[0]!.result.response!, ...cut, sha256: shadowSha256 } } }],
      };
    };
    try {
      compare.submit(hashedPair(digest(whole)));
      compare.submit(hashedPair(digest(Buffer.concat([whole.subarray(1), Buffer.from([0])]))));
      await compare.idle();
      const text = await metrics.registry.metrics();
      assert.equal(metricValue(text, 'gatewayctl_shadow_comparisons_total', { route: 'r', result: 'match' }), 1);
      assert.equal(metricValue(text, 'gatewayctl_shadow_comparisons_total', { route: 'r', result: 'diff' }), 1);
      assert.equal(compare.pendingHashBytes, 0, 'the pieces were taken in and their budget given back');
      // A pair whose hash never reached its thread is done, not compared, and nothing waits for it.
      const lost = mirrored('r', '', '');
      compare.submit({ ...lost, primary: { ...lost.primary, truncated: true, bodyBytes: 10, sha256Job: 1e9 } });
      await compare.idle();
      assert.equal(metricValue(await metrics.registry.metrics(), 'gatewayctl_shadow_comparisons_total', { route: 'r', result: 'diff' }), 1);
    } finally {
      await close();
    }
  });

  test('hash pieces hold the byte budget: past it the hash is given up, and what it held is given back', async () => {
    const { compare, close } = pool({ bytes: 300_000 });
    try {
      const hash = compare.bodyHash('r')!;
      hash.update(Buffer.alloc(600_000, 1));
      assert.equal(hash.finish(), undefined, 'the second piece would pass the budget');
      for (const until = Date.now() + 5000; compare.pendingHashBytes > 0 && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(compare.pendingHashBytes, 0);
      // The budget is whole again: the next answer's hash goes through.
      const next = compare.bodyHash('r')!;
      next.update(Buffer.alloc(1000, 2));
      assert.ok(next.finish());
      next.abandon();
    } finally {
      await close();
    }
  });

  test('copies are sent from the thread that compares: one isolate for both', async () => {
    const upstream = http.createServer((_req, res) => res.end('{"v":2}'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const { threads, compare, close } = pool();
    const copies = new ThreadedCopies(threads, new UpstreamPools(), () => 1024 * 1024);
    try {
      const answer = await copies.send(upstreamAt(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`), copy(), 1024);
      assert.equal(answer.status, 200);
      assert.equal(answer.capture?.body.toString(), '{"v":2}');
      compare.submit(mirrored('r', '{"v":1}', '{"v":2}'));
      await compare.idle();
      assert.equal(compare.compared, 1);
      assert.equal(threads.running, 1, 'copying and comparing share the one thread');
    } finally {
      await copies.close();
      await close();
      upstream.close();
    }
  });

  test("a copy's answer feeds its endpoint's health: a 5xx counts as a failure, a 2xx clears it, from the thread or from here", async () => {
    let status = 500;
    const upstream = http.createServer((_req, res) => {
      res.statusCode = status;
      res.end('{}');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const { threads, close } = pool();
    const pools = new UpstreamPools();
    const senders = [new ThreadedCopies(threads, pools, () => 1024 * 1024), new ShadowClients(pools)];
    try {
      for (const sender of senders) {
        const target = upstreamAt(url);
        const endpoint = pools.poolFor(target).endpoints[0]!;
        status = 500;
        assert.equal((await sender.send(target, copy(), 1024)).status, 500, 'a 5xx is an answer, not an error');
        assert.equal((await sender.send(target, copy(), 1024)).status, 500);
        assert.equal(endpoint.consecutiveFailures, 2, `${sender.constructor.name}: each 5xx recorded as a failure`);
        assert.equal(endpoint.outstanding, 0, 'each copy finished in its pool');
        status = 200;
        assert.equal((await sender.send(target, copy(), 1024)).status, 200);
        assert.equal(endpoint.consecutiveFailures, 0, `${sender.constructor.name}: a 2xx clears them`);
      }
    } finally {
      for (const sender of senders) await sender.close();
      await close();
      upstream.close();
    }
  });

  test("a copy target crosses to the thread once; a retain that drops it and one that brings it back cost no copy", async () => {
    const upstream = http.createServer((_req, res) => res.end('{"v":2}'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const { threads, close } = pool();
    const pools = new UpstreamPools();
    const copies = new ThreadedCopies(threads, pools, () => 1024 * 1024);
    const target = upstreamAt(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
    const other = upstreamAt('http://127.0.0.1:9');
    const thread = threads.at(0);
    const withTarget: boolean[] = [];
    const post = thread.post.bind(thread);
    // What reached the thread: a post that throws delivers nothing.
    thread.post = (message, transfer) => {
      post(message, transfer);
      if (message.type === 'send') for (const c of message.copies) withTarget.push(c.target !== undefined);
    };
    try {
      for (const n of [1, 3]) {
        const answers = await Promise.all(Array.from({ length: n }, () => copies.send(target, copy(), 1024)));
        assert.ok(answers.every((a) => a.status === 200));
      }
      assert.deepEqual(withTarget, [true, false, false, false], 'the first copy carries the target, the rest its key');
      copies.retainOnly([other]);
      copies.retainOnly([target]);
      assert.equal((await copies.send(target, copy(), 1024)).status, 200);
      assert.deepEqual(withTarget.slice(4), [true], 'dropped, the target is sent again with the next copy');
      // A message that cannot cross sent nothing: the copy after it still carries its target.
      const fresh = upstreamAt(`http://[::1]:${(upstream.address() as AddressInfo).port}`);
      const uncloneable = { ...copy(), headers: { 'x-bad': (() => 'no') as unknown as string } };
      await assert.rejects(copies.send(fresh, uncloneable, 1024));
      await copies.send(fresh, copy(1000), 1024).catch(() => undefined);
      assert.deepEqual(withTarget.slice(5), [true], 'the failed post told the thread nothing');
    } finally {
      await copies.close();
      await close();
      upstream.close();
    }
  });

  test('pairs compared in one turn are counted as many: their counts are added up, not lost', async () => {
    const { store, metrics, compare, close } = pool();
    try {
      for (let i = 0; i < 5; i++) compare.submit(mirrored('r', '{"v":1}', '{"v":2}'));
      for (let i = 0; i < 3; i++) compare.submit(mirrored('r', '{"v":1}', '{"v":1}'));
      await compare.idle();
      assert.equal(compare.compared, 8);
      const text = await metrics.registry.metrics();
      assert.equal(metricValue(text, 'gatewayctl_shadow_comparisons_total', { route: 'r', result: 'diff' }), 5);
      assert.equal(metricValue(text, 'gatewayctl_shadow_comparisons_total', { route: 'r', result: 'match' }), 3);
      assert.equal(metricValue(text, 'gatewayctl_shadow_differences_total', { route: 'r', kind: 'body' }), 5);
      assertStored(store, { compared: 8, differing: 5 });
    } finally {
      await close();
    }
  });

  test('pairs arriving one at a time are reported together, at most once per 50 ms, and none is lost', async () => {
    const { store, compare, close, countReports } = pool();
    try {
      // A lone pair after a quiet spell is reported by itself.
      compare.submit(mirrored('r', '{"v":1}', '{"v":2}'));
      await compare.idle();
      assert.deepEqual(countReports, [1]);
      const started = performance.now();
      for (let i = 0; i < 12; i++) {
        compare.submit(mirrored('r', '{"v":1}', i % 2 ? '{"v":1}' : '{"v":2}'));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await compare.idle();
      const elapsed = performance.now() - started;
      const reports = countReports.length - 1;
      // One message a pair would be 12; paced, one per window the pairs spanned (and one at its start).
      assert.ok(reports <= 2 + Math.ceil(elapsed / 50), `${reports} reports in ${elapsed.toFixed(0)} ms`);
      assert.equal(countReports.reduce((sum, n) => sum + n, 0), 13);
      assertStored(store, { compared: 13, differing: 7 });
    } finally {
      await close();
    }
  });

  test("a route's diff settings cross once per thread; forgotten ones are sent again, and every pair finds its own", () => {
    const sent = new DiffConfigsSent();
    const received = new DiffConfigsReceived();
    const settings = Array.from({ length: 300 }, (_, i) => ({ ...DIFF, ignorePaths: [`/p${i}`] }));
    const pairOf = (i: number) => ({ ...mirrored(`r${i}`, '{}', '{}'), diff: settings[i]! });
    const deliver = (indexes: number[], post = true) => {
      const { message, posted } = sent.wire(indexes.map(pairOf));
      if (!post) return message;
      posted();
      const { pairs, unknown } = received.pairs(structuredClone(message));
      assert.equal(unknown, 0);
      assert.deepEqual(
        pairs.map((p) => p.diff.ignorePaths[0]),
        indexes.map((i) => `/p${i}`),
      );
      return message;
    };
    assert.equal(deliver([0, 0, 1]).configs.length, 2, 'each settings object once a message');
    assert.equal(deliver([0, 1]).configs.length, 0, 'then only ids');
    // A post that failed sent nothing: the next one sends the settings again.
    assert.equal(deliver([2], false).configs.length, 1);
    assert.equal(deliver([2]).configs.length, 1);
    // Past the bound the oldest are forgotten on both sides, never one the message uses.
    const many = deliver(Array.from({ length: 297 }, (_, i) => i + 3));
    assert.equal(many.configs.length, 297);
    assert.deepEqual(many.forget.length, 3, 'only settings the message does not use can go (it uses 297 of its own)');
    const again = deliver([0, 1, 2, 299]);
    assert.deepEqual(
      again.configs.map(([, d]) => d.ignorePaths[0]),
      ['/p0', '/p1', '/p2'],
      'the forgotten ones come again; the kept one does not',
    );
    assert.equal(again.forget.length, 297 + 3 - 256, 'back to the bound, oldest first');
    assert.ok(!again.forget.includes(again.pairs.at(-1)!.diffId), 'never one the message uses');
  });

  test('a thread that runs out of heap is replaced and counted once; its copies and pairs fail; the next ones go through', { timeout: 120_000 }, async () => {
    // An upstream that answers only once told to: the copy is in flight when the thread dies.
    const held: http.ServerResponse[] = [];
    const upstream = http.createServer((_req, res) => held.push(res));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const target = upstreamAt(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
    const { metrics, threads, compare, close } = pool({ heapMb: 16 });
    const copies = new ThreadedCopies(threads, new UpstreamPools(), () => 1024 * 1024);
    try {
      const inFlight = copies.send(target, copy(60_000), 1024);
      while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      // 3 MB of empty objects on each side: well over a 16 MB heap once parsed.
      const huge = '[' + '{},'.repeat(1_000_000) + '{}]';
      compare.submit(mirrored('r', huge, huge.replace('{}]', '{"a":1}]')));
      await compare.idle();
      await assert.rejects(inFlight, /the shadow thread stopped/);
      assert.equal(threads.restarts, 1);
      assert.equal(compare.failed, 1);
      assert.equal(metricValue(await metrics.registry.metrics(), 'gatewayctl_shadow_thread_restarts_total', { role: 'shadow' }), 1);
      // The next copy and the next pair start a new thread.
      const next = copies.send(target, copy(60_000), 1024);
      while (held.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
      held[1]!.end('{"v":2}');
      assert.equal((await next).capture?.body.toString(), '{"v":2}');
      compare.submit(mirrored('r', '{"v":1}', '{"v":2}'));
      await compare.idle();
      assert.equal(compare.compared, 1);
      assert.equal(threads.running, 1);
    } finally {
      await copies.close();
      await close();
      for (const res of held) res.destroy();
      upstream.close();
    }
  });

  test('pairs of one turn travel together; one that cannot cross is lost and counted, not the others', async () => {
    const { compare, close } = pool({});
    try {
      const broken = { ...mirrored('r', '{"v":1}', '{"v":2}'), requestId: (() => 'not data') as unknown as string };
      compare.submit(mirrored('r', '{"v":1}', '{"v":2}'));
      compare.submit(broken);
      compare.submit(mirrored('r', '{"v":1}', '{"v":3}'));
      assert.equal(compare.pending, 3);
      await compare.idle();
      assert.equal(compare.failed, 1);
      assert.equal(compare.compared, 2);
      assert.equal(compare.pending, 0);
    } finally {
      await close();
    }
  });

  test('close ends every thread', async () => {
    const { threads, compare, close } = pool({ threads: 2 });
    compare.submit(mirrored('a', '{}', '{"x":1}'));
    compare.submit(mirrored('b', '{}', '{"x":1}'));
    assert.ok(threads.running >= 1);
    await close();
    assert.equal(threads.running, 0);
  });

  test('threads are sized to the cores per process, less the serving one', () => {
    assert.equal(shadowThreadCount(0, 1, 2), 1);
    assert.equal(shadowThreadCount(0, 1, 8), 4);
    assert.equal(shadowThreadCount(0, 2, 8), 3);
    assert.equal(shadowThreadCount(0, 4, 2), 1);
    assert.equal(shadowThreadCount(3, 1, 2), 3);
  });
  test("the unit's young-generation flag stays the serving thread's: isolates started with the shadow threads keep their own bound", async () => {
    // A process as the systemd unit runs it. The probe is an isolate made after
    // the first shadow thread, with the threads' own limits, grown to its most:
    // what the flag left it is what a shadow thread, or its replacement, gets.
    const script = `
      import { Worker } from 'node:worker_threads';
      import { getHeapSpaceStatistics } from 'node:v8';
      import { ShadowThreads, THREAD_YOUNG_MB } from ${JSON.stringify(new URL('../../src/shadow/threads.js', import.meta.url).href)};
      const newSpaceMb = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576;
      const grow = "let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ a: i, b: 'x' + i }); if (keep.length > 2000) keep = []; }";
      const probe = async () => {
        // Evaluated as a module, as this script is (--input-type).
        const body = "import { getHeapSpaceStatistics } from 'node:v8'; import { parentPort } from 'node:worker_threads'; " + grow + "; parentPort.postMessage((" + newSpaceMb + ")());";
        const worker = new Worker(body, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: THREAD_YOUNG_MB, maxOldGenerationSizeMb: 64 } });
        const mb = await new Promise((resolve) => worker.once('message', resolve));
        await worker.terminate();
        return mb;
      };
      // The threads do not keep a process alive by themselves.
      const alive = setInterval(() => {}, 1000);
      const before = await probe();
      const threads = new ShadowThreads({ count: () => 1 });
      await threads.warm();
      const after = await probe();
      await threads.close();
      clearInterval(alive);
      for (let round = 0; round < 5; round++) { let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ a: i, c: [i] }); if (keep.length > 200000) keep = []; } }
      console.log(JSON.stringify({ bound: THREAD_YOUNG_MB, before, after, serving: newSpaceMb() }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--max-semi-space-size=8', '--input-type=module', '-e', script]);
    const found = JSON.parse(stdout) as { bound: number; before: number; after: number; serving: number };
    assert.ok(found.after <= found.bound, `an isolate started with the shadow threads keeps its own young generation: ${found.after} MB of new space (bound ${found.bound} MB; ${found.before} MB before the threads started)`);
    // Cleared, the flag no longer bounds the serving thread's heap, set up with it: its new space stays within the flag's two 8 MB semi-spaces (without the flag it grew to 32 MB on Node 20 and 128 on 24 under a like load).
    assert.ok(found.serving <= 16, `the serving thread keeps the flag's bound: ${found.serving} MB of new space`);
  });
});
