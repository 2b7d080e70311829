/**
 * The copying thread's stall watch on a real event loop: a thread kept
 * from running (here: blocked) shows as a stall of about that length in
 * the measurements that spanned it, and in no other.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { StallWatch } from '../../src/shadow/stall-watch.js';

function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // The thread does nothing else meanwhile, as when the scheduler keeps it waiting.
  }
}

describe('stall watch', () => {
  test('a measurement spanning an 80 ms stall reports it; one started after it does not', async () => {
    const watch = new StallWatch(5);
    const before = performance.now();
    watch.begin();
    await sleep(20);
    block(80);
    await sleep(20);
    const after = performance.now();
    watch.begin();
    await sleep(30);
    const spanning = watch.end(before);
    const later = watch.end(after);
    assert.ok(spanning >= 60, `spanning: ${spanning.toFixed(1)} ms`);
    assert.ok(later < 60, `started after the stall: ${later.toFixed(1)} ms`);
  });

  test('an idle thread shows no stall', async () => {
    const watch = new StallWatch(5);
    const since = performance.now();
    watch.begin();
    await sleep(50);
    assert.ok(watch.end(since) < 40);
  });
});
