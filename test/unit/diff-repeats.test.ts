/**
 * The primary's earlier answers to repeated GETs, the evidence noise is
 * learned from without a baseline: which answer comes back, and what is
 * forgotten.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MirroredPair } from '../../src/diff/pair.js';
import { RepeatMemory } from '../../src/diff/repeats.js';

const pair = (path: string, body: string, extra: { method?: string; truncated?: boolean } = {}): MirroredPair =>
  ({ route: 'r', method: extra.method ?? 'GET', path, primary: { body: Buffer.from(body), truncated: extra.truncated ?? false } }) as unknown as MirroredPair;
const bodyOf = (answer: { body: Buffer } | undefined) => answer?.body.toString();

test('each answer to a repeated GET returns the one before it', () => {
  const memory = new RepeatMemory({ maxEntries: 4, maxBodyBytes: 100 });
  assert.equal(memory.exchange(pair('/a', 'a1')), undefined);
  assert.equal(bodyOf(memory.exchange(pair('/a', 'a2'))), 'a1');
  assert.equal(bodyOf(memory.exchange(pair('/a', 'a3'))), 'a2');
  assert.equal(memory.exchange(pair('/b', 'b1')), undefined);
  assert.equal(memory.exchange(pair('/a', 'x', { method: 'POST' })), undefined);
  assert.equal(bodyOf(memory.exchange(pair('/a', 'a4'))), 'a3');
});

test('past maxEntries the key first remembered goes, even when it repeated since', () => {
  const memory = new RepeatMemory({ maxEntries: 2, maxBodyBytes: 100 });
  memory.exchange(pair('/a', 'a1'));
  memory.exchange(pair('/b', 'b1'));
  memory.exchange(pair('/a', 'a2'));
  memory.exchange(pair('/c', 'c1'));
  assert.equal(memory.exchange(pair('/a', 'a3')), undefined);
  assert.equal(bodyOf(memory.exchange(pair('/c', 'c2'))), 'c1');
});

test('an answer too large or cut short is not remembered, and the one before it is forgotten', () => {
  const memory = new RepeatMemory({ maxEntries: 4, maxBodyBytes: 4 });
  memory.exchange(pair('/a', 'a1'));
  assert.equal(bodyOf(memory.exchange(pair('/a', 'too long'))), 'a1');
  assert.equal(memory.exchange(pair('/a', 'a3')), undefined);
  assert.equal(bodyOf(memory.exchange(pair('/a', 'a4', { truncated: true }))), 'a3');
  assert.equal(memory.exchange(pair('/a', 'a5')), undefined);
});

test('past maxBytes of bodies the oldest keys go, and the bytes held are counted as answers change', () => {
  const memory = new RepeatMemory({ maxEntries: 10, maxBodyBytes: 100, maxBytes: 10 });
  memory.exchange(pair('/a', 'aaaa'));
  memory.exchange(pair('/b', 'bbbb'));
  assert.equal(memory.bytes, 8);
  assert.equal(bodyOf(memory.exchange(pair('/a', 'a'))), 'aaaa');
  assert.equal(memory.bytes, 5, 'a shorter answer to a remembered key');
  memory.exchange(pair('/c', 'cccccc'));
  // 11 bytes: /a, the key first remembered, goes.
  assert.equal(memory.bytes, 10);
  assert.equal(memory.exchange(pair('/a', 'a2')), undefined);
  assert.equal(bodyOf(memory.exchange(pair('/c', 'c2'))), 'cccccc');
  assert.ok(memory.bytes <= 10, `${memory.bytes} bytes`);
  // An answer larger than all the bytes allowed: its key is the oldest, so it goes itself.
  memory.exchange(pair('/c', 'more than ten bytes'));
  assert.equal(memory.bytes, 2);
  assert.equal(memory.exchange(pair('/c', 'c3')), undefined);
});
