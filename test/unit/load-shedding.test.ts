import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HYSTERESIS, LoadShedding, MIN_SHARE, WINDOW_MS, type LoadClock } from '../../src/shadow/load-shedding.js';

/** A clock whose time and loop utilization the test sets. */
class FakeLoad implements LoadClock {
  time = 0;
  utilization = 0;
  reads = 0;
  now(): number {
    return this.time;
  }
  utilizationSinceLast(): number {
    this.reads++;
    return this.utilization;
  }
}

/** Admissions out of `n` copies chosen at once. */
const admitted = (guard: LoadShedding, n: number, bound = 0.9) => Array.from({ length: n }, () => guard.admit(bound)).filter(Boolean).length;

describe('load shedding of shadow copies', () => {
  test('below the bound every copy goes, and the load is read once a window, not per copy', () => {
    const load = new FakeLoad();
    const guard = new LoadShedding(load);
    load.utilization = 0.85;
    for (let w = 0; w < 4; w++) {
      assert.equal(admitted(guard, 100), 100);
      load.time += WINDOW_MS;
    }
    assert.equal(load.reads, 3);
    assert.equal(guard.share, 1);
    assert.equal(guard.shed, 0);
  });

  test('a saturated loop halves the share each window down to the floor, admitted evenly; shed copies are counted', () => {
    const load = new FakeLoad();
    const changes: boolean[] = [];
    const guard = new LoadShedding(load, (shedding) => changes.push(shedding));
    load.utilization = 0.97;
    const shares: number[] = [];
    for (let w = 0; w < 9; w++) {
      load.time += WINDOW_MS;
      guard.admit(0.9);
      shares.push(guard.share);
    }
    assert.deepEqual(shares, [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, MIN_SHARE, MIN_SHARE]);
    assert.equal(MIN_SHARE, 1 / 128);
    assert.deepEqual(changes, [true], 'told once that shedding started');
    // At 1/128, 1,280 chosen copies send 10, one every 128.
    const pattern = Array.from({ length: 1280 }, () => guard.admit(0.9));
    assert.equal(pattern.filter(Boolean).length, 10);
    const gaps = pattern.flatMap((ok, i) => (ok ? [i] : [])).map((i, k, all) => (k === 0 ? 0 : i - all[k - 1]!));
    assert.ok(gaps.slice(1).every((g) => g === 128), `evenly spaced: ${gaps.join(',')}`);
    assert.ok(guard.shed > 1200);
  });

  test('between the bound and the hysteresis the share holds; well below it, it doubles per window elapsed', () => {
    const load = new FakeLoad();
    const changes: boolean[] = [];
    const guard = new LoadShedding(load, (shedding) => changes.push(shedding));
    load.utilization = 1;
    for (let w = 0; w < 3; w++) {
      load.time += WINDOW_MS;
      guard.admit(0.9);
    }
    assert.equal(guard.share, 1 / 8);
    load.utilization = 0.9 - HYSTERESIS / 2;
    load.time += WINDOW_MS;
    guard.admit(0.9);
    assert.equal(guard.share, 1 / 8, 'held within the hysteresis');
    load.utilization = 0.5;
    load.time += WINDOW_MS;
    guard.admit(0.9);
    assert.equal(guard.share, 1 / 4);
    // A quiet second (no copies chosen, so no reading) then counts as four windows.
    load.time += 4 * WINDOW_MS;
    assert.equal(guard.admit(0.9), true);
    assert.equal(guard.share, 1);
    assert.deepEqual(changes, [true, false]);
    assert.equal(admitted(guard, 50), 50);
  });

  test('a bound of 1 never sheds, and lifts shedding already in force', () => {
    const load = new FakeLoad();
    const guard = new LoadShedding(load);
    load.utilization = 1;
    load.time += WINDOW_MS;
    guard.admit(0.9);
    assert.equal(guard.share, 1 / 2);
    load.time += WINDOW_MS;
    assert.equal(admitted(guard, 40, 1), 40);
    assert.equal(guard.share, 1);
    for (let w = 0; w < 5; w++) {
      load.time += WINDOW_MS;
      assert.equal(guard.admit(1), true);
    }
  });
});
