/**
 * The shared statistics (src/stats/): known values of the Wilson interval,
 * the rate difference, the rank test and histogram quantiles, and the
 * sequential boundary's promise: over many looks at a statistic with no
 * effect, the boundary is crossed at most alpha of the time, where a fixed
 * critical value is crossed far more often.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { histogramQuantile, orderStatisticRanks, quantileBounds, quantileBucket, scaleBinned } from '../../src/stats/histogram.js';
import { normalCdf, Z95 } from '../../src/stats/normal.js';
import { mannWhitney, mannWhitneyGreater } from '../../src/stats/rank.js';
import { differenceLowerBound, wilson } from '../../src/stats/rates.js';
import { sequentialZ } from '../../src/stats/sequential.js';
import { prng } from '../helpers/raw.js';

/** `n` samples all in bucket `index` of `length` buckets. */
const oneBucket = (n: number, index: number, length = 6) => Array.from({ length }, (_, i) => (i === index ? n : 0));

describe('rates', () => {
  test('Wilson interval: known values, no trials, the edges', () => {
    const mid = wilson(5, 10);
    assert.ok(Math.abs(mid.low - 0.2366) < 1e-3 && Math.abs(mid.high - 0.7634) < 1e-3);
    assert.deepEqual(wilson(0, 0), { low: 0, high: 1 });
    assert.equal(wilson(0, 200).low, 0);
    assert.ok(Math.abs(wilson(0, 200).high - 0.0188) < 0.001);
    assert.equal(wilson(100, 100).high, 1);
    const wide = wilson(1, 5);
    assert.ok(wide.low < 0.04 && wide.high > 0.6, 'five trials say almost nothing');
    assert.ok(wilson(5, 10, 1).high - wilson(5, 10, 1).low < mid.high - mid.low, 'a smaller z, a narrower interval');
  });
  test('difference bound: clearly worse vs. noise', () => {
    assert.ok(differenceLowerBound(100, 1000, 5, 1000) > 0.05);
    assert.ok(differenceLowerBound(6, 1000, 5, 1000) < 0);
    assert.equal(differenceLowerBound(1, 0, 1, 10), -1);
  });
  test('normal CDF at known points', () => {
    assert.ok(Math.abs(normalCdf(0) - 0.5) < 1e-7);
    assert.ok(Math.abs(normalCdf(Z95) - 0.975) < 1e-6);
    assert.ok(Math.abs(normalCdf(-2.326348) - 0.01) < 1e-6);
  });
});

describe('rank test', () => {
  test('Mann-Whitney on binned samples', () => {
    const fast = oneBucket(500, 1);
    const slow = oneBucket(500, 3);
    assert.ok(mannWhitneyGreater(slow, fast) < 1e-6);
    assert.ok(mannWhitneyGreater(fast, slow) > 0.999);
    assert.ok(mannWhitneyGreater(fast, fast) > 0.4, 'identical samples: no evidence');
    const r = mannWhitney(oneBucket(100, 3), oneBucket(300, 1));
    assert.equal(r.information, 75, 'n1·n2/(n1+n2)');
    assert.ok(r.z > 10);
    assert.deepEqual(mannWhitney([], fast), { z: 0, p: 1, information: 0 });
  });
});

describe('histogram quantiles', () => {
  test('interpolated inside the bucket, as Prometheus does; NaN when empty; the last bound past it', () => {
    assert.equal(histogramQuantile(0.5, [1, 2, 4], [0, 10, 0, 0]), 1.5);
    assert.ok(Number.isNaN(histogramQuantile(0.99, [1], [0, 0])));
    assert.equal(histogramQuantile(0.99, [1, 2], [0, 0, 10]), 2);
  });
  test('the bucket of a quantile skips empty buckets', () => {
    assert.deepEqual(quantileBucket(0.5, [0, 4, 0, 6]), { index: 3, below: 4, rank: 5 });
    assert.equal(quantileBucket(0.5, [0, 0]), null);
  });
  test('order-statistic ranks and bounds widen with fewer samples and a larger z', () => {
    assert.deepEqual(orderStatisticRanks(100, 0.5), { low: 40, high: 60 });
    assert.deepEqual(orderStatisticRanks(100, 0.99), { low: 97, high: 100 });
    const few = quantileBounds(0.99, [1, 2, 3, 4], [0, 50, 40, 10, 0]);
    const many = quantileBounds(0.99, [1, 2, 3, 4], [0, 5000, 4000, 1000, 0]);
    assert.ok(few.high - few.low >= many.high - many.low);
    const strict = quantileBounds(0.9, [1, 2, 3, 4], [0, 50, 40, 10, 0], 4);
    const loose = quantileBounds(0.9, [1, 2, 3, 4], [0, 50, 40, 10, 0]);
    assert.ok(strict.low <= loose.low && strict.high >= loose.high);
  });
  test('scaling moves samples up by the factor', () => {
    assert.deepEqual(scaleBinned([1, 2, 4, 8], [0, 10, 0, 0, 0], 2), [0, 0, 10, 0, 0]);
  });
});

describe('sequential boundary', () => {
  test('higher than the fixed line, tightest near the planned information, growing slowly beyond', () => {
    assert.equal(sequentialZ(0, 0.01, 200), Infinity);
    const at = sequentialZ(200, 0.01, 200);
    assert.ok(at > 3.4 && at < 3.7, String(at));
    assert.ok(sequentialZ(20, 0.01, 200) > at);
    assert.ok(sequentialZ(20_000, 0.01, 200) > at && sequentialZ(20_000, 0.01, 200) < 4.2);
    assert.ok(sequentialZ(200, 0.001, 200) > at, 'a smaller alpha, a higher line');
  });
  test('looked at after every step of a driftless random walk, it is crossed at most alpha of the time; a fixed line is not', () => {
    // 2000 walks of 1000 standard normal increments, the standardised sum
    // looked at after each: a fixed z = 2.33 (one look's p < 0.01) is
    // crossed by a large share of walks, the boundary by fewer than alpha.
    const random = prng(20);
    const normal = () => Math.sqrt(-2 * Math.log(1 - random.float())) * Math.cos(2 * Math.PI * random.float());
    const walks = 2000;
    const alpha = 0.01;
    let fixed = 0;
    let sequential = 0;
    for (let w = 0; w < walks; w++) {
      let sum = 0;
      let crossedFixed = false;
      let crossedSequential = false;
      for (let t = 1; t <= 1000; t++) {
        sum += normal();
        const z = sum / Math.sqrt(t);
        if (z >= 2.326) crossedFixed = true;
        if (z >= sequentialZ(t, alpha, 200)) crossedSequential = true;
      }
      if (crossedFixed) fixed++;
      if (crossedSequential) sequential++;
    }
    assert.ok(fixed / walks > 0.1, `fixed line crossed by ${fixed} of ${walks}`);
    assert.ok(sequential / walks <= alpha, `boundary crossed by ${sequential} of ${walks}`);
  });
});
