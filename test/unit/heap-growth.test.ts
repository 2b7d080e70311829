import assert from 'node:assert/strict';
import { test } from 'node:test';
import { boundHeapGrowth, HEAP_GROWING_PERCENT } from '../../src/shadow/heap-growth.js';

test('a shadowing process bounds its heap growth', () => {
  assert.equal(boundHeapGrowth([], ''), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
});

test("an operator's own heap growth flag wins, on the command line or in NODE_OPTIONS", () => {
  assert.equal(boundHeapGrowth(['--heap-growing-percent=50'], ''), undefined);
  assert.equal(boundHeapGrowth([], '--max-old-space-size=512 --heap-growing-percent=35'), undefined);
  assert.equal(boundHeapGrowth(['--heap_growing_percent=10'], ''), undefined);
  // Other flags do not count as one.
  assert.equal(boundHeapGrowth(['--max-semi-space-size=8'], '--heap-growing'), `--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
});
