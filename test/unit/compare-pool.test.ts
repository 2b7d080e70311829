/**
 * The comparing threads, real ones: pairs handed over (their bodies
 * transferred), outcomes counted and stored on this side, the hand-over
 * bounded, a thread that runs out of heap replaced and counted, and all of
 * them ended on close.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DiffConfig } from '../../src/config/types.js';
import { ComparePool, compareThreads } from '../../src/diff/compare-pool.js';
import { DiffStore } from '../../src/diff/store.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import type { MirroredPair } from '../../src/diff/pair.js';
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
  const compare = new ComparePool({
    sink: store,
    metrics,
    queueLimit: () => options.queue ?? 100,
    byteLimit: () => options.bytes ?? 64 * 1024 * 1024,
    threads: () => options.threads ?? 1,
    ...(options.heapMb ? { heapMb: options.heapMb } : {}),
  });
  return { store, metrics, compare };
}

describe('comparing threads', () => {
  test('pairs are compared in a thread: bodies transferred, outcomes stored and counted here', async () => {
    const { store, metrics, compare } = pool();
    try {
      const pair = mirrored('r', '{"v":1}', '{"v":2}');
      compare.submit(pair);
      // The pairs of a turn leave together at its end; the memory went with them: nothing of it is left on this side.
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(pair.primary.body.byteLength, 0);
      assert.equal(compare.running, 1);
      compare.submit(mirrored('r', '{"v":1}', '{"v":1}'));
      await compare.idle();
      assert.equal(compare.compared, 2);
      const [event] = store.recent({}, { limit: 10 });
      assert.equal(event?.differences[0]?.path, '/v');
      const text = await metrics.registry.metrics();
      assert.equal(metricValue(text, 'gatewayctl_shadow_comparisons_total', { route: 'r', result: 'diff' }), 1);
      assert.equal(metricValue(text, 'gatewayctl_shadow_comparisons_total', { route: 'r', result: 'match' }), 1);
    } finally {
      await compare.close();
    }
  });

  test('the hand-over is bounded in pairs and in bytes: the rest is dropped and counted', async () => {
    const { metrics, compare } = pool({ queue: 3 });
    try {
      for (let i = 0; i < 10; i++) compare.submit(mirrored('r', '{"v":1}', '{"v":2}'));
      assert.equal(compare.pending, 3);
      assert.equal(compare.dropped, 7);
      assert.equal(metricValue(await metrics.registry.metrics(), 'gatewayctl_shadow_compare_dropped_total', { route: 'r' }), 7);
      await compare.idle();
    } finally {
      await compare.close();
    }
    const bytes = pool({ bytes: 100 });
    try {
      const big = '{"v":"' + 'x'.repeat(60) + '"}';
      bytes.compare.submit(mirrored('r', big, big));
      bytes.compare.submit(mirrored('r', big, big));
      assert.equal(bytes.compare.dropped, 1, 'the second pair would pass the byte bound');
      await bytes.compare.idle();
    } finally {
      await bytes.compare.close();
    }
  });

  test('a thread that runs out of heap is replaced and counted; the next pairs are compared', { timeout: 120_000 }, async () => {
    const { metrics, compare } = pool({ heapMb: 16 });
    try {
      // 3 MB of empty objects on each side: well over a 16 MB heap once parsed.
      const huge = '[' + '{},'.repeat(1_000_000) + '{}]';
      compare.submit(mirrored('r', huge, huge.replace('{}]', '{"a":1}]')));
      await compare.idle();
      assert.equal(compare.restarts, 1);
      assert.equal(compare.failed, 1);
      assert.equal(metricValue(await metrics.registry.metrics(), 'gatewayctl_shadow_thread_restarts_total', { role: 'compare' }), 1);
      compare.submit(mirrored('r', '{"v":1}', '{"v":2}'));
      await compare.idle();
      assert.equal(compare.compared, 1);
    } finally {
      await compare.close();
    }
  });

  test('pairs of one turn travel together; one that cannot cross is lost and counted, not the others', async () => {
    const { compare } = pool({});
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
      await compare.close();
    }
  });

  test('close ends every thread', async () => {
    const { compare } = pool({ threads: 2 });
    compare.submit(mirrored('a', '{}', '{"x":1}'));
    compare.submit(mirrored('b', '{}', '{"x":1}'));
    assert.ok(compare.running >= 1);
    await compare.close();
    assert.equal(compare.running, 0);
  });

  test('threads are sized to the cores per process, less the serving one', () => {
    assert.equal(compareThreads(0, 1, 2), 1);
    assert.equal(compareThreads(0, 1, 8), 4);
    assert.equal(compareThreads(0, 2, 8), 3);
    assert.equal(compareThreads(0, 4, 2), 1);
    assert.equal(compareThreads(3, 1, 2), 3);
  });
});
