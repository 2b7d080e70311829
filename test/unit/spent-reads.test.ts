/**
 * The serving thread's spent socket reads: when a young collection is run
 * (8 MB over what the last one left, none in the last 200 ms), and, with
 * V8's real collection, that dead buffers stay far below the 32 MB at which
 * V8 collects for them by itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpentReads } from '../../src/serving/spent-reads.js';
import { youngCollection } from '../../src/shadow/spent-buffers.js';

const MB = 1024 * 1024;

test('a young collection runs 8 MB over what the last one left, never twice within the quiet time', () => {
  let held = 10 * MB;
  let clock = 1000;
  const runs: number[] = [];
  const reads = new SpentReads({ collect: () => runs.push(held), bytes: () => held, now: () => clock });
  reads.collected(); // the base: 10 MB survived
  clock += 500;
  held = 17 * MB;
  reads.sample();
  assert.equal(runs.length, 0, '7 MB over the base');
  held = 18 * MB;
  reads.sample();
  assert.equal(runs.length, 1, '8 MB over the base');
  // What the collection left (its base now) is still much: 12 MB survived.
  held = 12 * MB;
  reads.collected();
  held = 21 * MB;
  clock += 100;
  reads.sample();
  assert.equal(runs.length, 1, 'within 200 ms of the last collection');
  clock += 150;
  reads.sample();
  assert.equal(runs.length, 2, '9 MB over the new base, 250 ms later');
  // V8 collected by itself: its survivors are the base, and the quiet time starts again.
  held = 3 * MB;
  reads.collected();
  held = 10 * MB;
  clock += 1000;
  reads.sample();
  assert.equal(runs.length, 2, '7 MB over what V8 left');
  // Memory falling below the base (buffers freed otherwise) lowers it.
  held = 1 * MB;
  reads.sample();
  held = 9.5 * MB;
  reads.sample();
  assert.equal(runs.length, 3);
  assert.equal(reads.collections, 3);
});

test('without a collection to run it does nothing, and starts no timer', () => {
  const reads = new SpentReads({ collect: undefined, bytes: () => 100 * MB });
  reads.start();
  reads.sample();
  assert.equal(reads.collections, 0);
  reads.close();
});

/** Peak ArrayBuffer memory of this thread while 96 MB of 64 KB buffers are made and dropped, 1 MB per timer turn. */
async function peakWhileReading(reads?: SpentReads): Promise<number> {
  reads?.start();
  let peak = 0;
  try {
    for (let mb = 0; mb < 96; mb++) {
      for (let i = 0; i < 16; i++) Buffer.allocUnsafeSlow(64 * 1024).fill(i);
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      await sleep(2);
    }
  } finally {
    reads?.close();
  }
  return peak;
}

test('with V8\'s young collection, dead read buffers stay far under the 32 MB V8 waits for', async () => {
  const collect = youngCollection();
  assert.equal(typeof collect, 'function', 'the collection can be had on this Node');
  collect!({ type: 'major' });
  // Time scaled down with the rate: 1 MB every few ms here, 15 MB a second in the bench.
  const reads = new SpentReads({ collect, sampleMs: 5, quietMs: 10 });
  const withCollections = await peakWhileReading(reads);
  assert.ok(reads.collections >= 4, `${reads.collections} collections`);
  collect!({ type: 'major' });
  const without = await peakWhileReading();
  assert.ok(withCollections < 20 * MB, `peak ${(withCollections / MB).toFixed(1)} MB with the collections`);
  assert.ok(without > withCollections + 8 * MB, `peak ${(without / MB).toFixed(1)} MB without them, ${(withCollections / MB).toFixed(1)} MB with`);
});
