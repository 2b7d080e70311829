import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STICKY_BUCKETS, StickyPicker } from '../../src/routing/sticky.js';
import { SmoothWeightedPicker } from '../../src/routing/weighted.js';
import { PercentSampler } from '../../src/config/compile.js';

function shares<T extends string>(picks: T[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) out[p] = (out[p] ?? 0) + 1;
  for (const k of Object.keys(out)) out[k] = out[k]! / picks.length;
  return out;
}

describe('smooth weighted round-robin', () => {
  const cases = [
    { desc: '90/10', weights: { v1: 90, v2: 10 }, window: 100 },
    { desc: '1/1/1', weights: { a: 1, b: 1, c: 1 }, window: 3 },
    { desc: '5/1 with a zero', weights: { a: 5, b: 1, z: 0 }, window: 6 },
    { desc: '99/1', weights: { v1: 99, v2: 1 }, window: 100 },
  ];
  for (const c of cases) {
    test(`${c.desc}: exact over every window of sum(weights) picks`, () => {
      const picker = new SmoothWeightedPicker(Object.entries(c.weights).map(([item, weight]) => ({ item, weight })));
      for (let round = 0; round < 20; round++) {
        const picks = Array.from({ length: c.window }, () => picker.pick());
        for (const [name, weight] of Object.entries(c.weights)) {
          assert.equal(picks.filter((p) => p === name).length, weight, `${name} in round ${round}`);
        }
      }
    });
  }

  test('spreads the minority evenly (no bursts)', () => {
    const picker = new SmoothWeightedPicker([
      { item: 'v1', weight: 9 },
      { item: 'v2', weight: 1 },
    ]);
    const picks = Array.from({ length: 100 }, () => picker.pick());
    const positions = picks.flatMap((p, i) => (p === 'v2' ? [i] : []));
    for (let i = 1; i < positions.length; i++) assert.equal(positions[i]! - positions[i - 1]!, 10);
  });

  test('10,000 picks of 90/10 realise exactly 9,000/1,000', () => {
    const picker = new SmoothWeightedPicker([
      { item: 'v1', weight: 90 },
      { item: 'v2', weight: 10 },
    ]);
    const s = shares(Array.from({ length: 10_000 }, () => picker.pick()));
    assert.equal(s['v1'], 0.9);
    assert.equal(s['v2'], 0.1);
  });
});

describe('sticky picks (weighted rendezvous over buckets)', () => {
  const backends = (canary: number, stable = 100 - canary) => [
    { name: 'shop-v1', item: 'shop-v1', weight: stable },
    { name: 'shop-v2', item: 'shop-v2', weight: canary },
  ];
  const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

  test('the same key always gets the same backend, on any picker built from the same config', () => {
    const a = new StickyPicker(backends(10));
    const b = new StickyPicker(backends(10)); // another replica, or after a restart
    for (const key of keys) assert.equal(a.pick(key), b.pick(key));
  });

  const ramps = [
    { desc: '90/10', canary: 10 },
    { desc: '75/25', canary: 25 },
    { desc: '50/50', canary: 50 },
    { desc: '99/1', canary: 1 },
  ];
  for (const r of ramps) {
    test(`realised shares over 10,000 keys match ${r.desc} within 1.5 points`, () => {
      const picker = new StickyPicker(backends(r.canary));
      const s = shares(keys.map((k) => picker.pick(k)));
      assert.ok(Math.abs((s['shop-v2'] ?? 0) - r.canary / 100) < 0.015, `canary share ${s['shop-v2']}`);
    });
  }

  test('ramp property: raising the canary weight only moves keys onto it', () => {
    const steps = [0, 1, 5, 10, 25, 50, 75, 100];
    let previous = new Map(keys.map((k) => [k, 'shop-v1']));
    for (const canary of steps.slice(1)) {
      const picker = new StickyPicker(
        canary === 100 ? [{ name: 'shop-v2', item: 'shop-v2', weight: 100 }, { name: 'shop-v1', item: 'shop-v1', weight: 0 }] : backends(canary),
      );
      const now = new Map(keys.map((k) => [k, picker.pick(k)]));
      for (const key of keys) {
        if (previous.get(key) === 'shop-v2') assert.equal(now.get(key), 'shop-v2', `${key} moved back at ${canary}%`);
      }
      previous = now;
    }
  });

  test('ramp property with three backends: raising one moves keys only onto it', () => {
    const make = (c: number) => [
      { name: 'a', item: 'a', weight: 60 },
      { name: 'b', item: 'b', weight: 30 },
      { name: 'c', item: 'c', weight: c },
    ];
    const before = new StickyPicker(make(10));
    const after = new StickyPicker(make(40));
    for (const key of keys) {
      const was = before.pick(key);
      const is = after.pick(key);
      if (was !== is) assert.equal(is, 'c', `${key} moved ${was} -> ${is}`);
    }
  });

  test('a zero weight takes no keys', () => {
    const picker = new StickyPicker(backends(0));
    assert.ok(keys.every((k) => picker.pick(k) === 'shop-v1'));
  });

  test('buckets are fixed and stable (pinned values guard cross-version agreement)', () => {
    assert.equal(STICKY_BUCKETS, 65536);
    assert.equal(StickyPicker.bucketOf('user-42'), 20840);
    const pinned = new StickyPicker(backends(10));
    const sample = ['user-1', 'user-2', 'user-9', 'user-10', 'user-16', 'user-17'].map((k) => pinned.pick(k));
    assert.deepEqual(sample, PINNED_SAMPLE);
  });
});

// Recorded once; a change here means sticky users would move on upgrade.
const PINNED_SAMPLE = ['shop-v1', 'shop-v1', 'shop-v2', 'shop-v2', 'shop-v2', 'shop-v1'];

describe('percent sampler', () => {
  for (const percent of [0, 1, 10, 33, 50, 99, 100, 12.5]) {
    test(`${percent}%: exact share over 1,000 and within one over any 100`, () => {
      const sampler = new PercentSampler(percent);
      const taken = Array.from({ length: 1000 }, () => sampler.take());
      assert.equal(taken.filter(Boolean).length, Math.round((1000 * percent) / 100));
      for (let start = 0; start + 100 <= 1000; start += 100) {
        const window = taken.slice(start, start + 100).filter(Boolean).length;
        assert.ok(Math.abs(window - percent) <= 1, `window at ${start}: ${window}`);
      }
    });
  }
});
