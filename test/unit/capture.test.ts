/**
 * Body capture past its limit: counted, hashed whole, and the prefix let go
 * unless something still reads it; and a shadow answer's capture held from a
 * byte budget while it arrives.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { ByteBudget } from '../../src/shadow/byte-budget.js';
import { BodyCapture, BudgetedCapture, type PastLimit } from '../../src/shadow/capture.js';

const body = Buffer.from('abcdefghij'.repeat(10));
const chunks = [body.subarray(0, 30), body.subarray(30, 70), body.subarray(70)];
const sha = createHash('sha256').update(body).digest('hex');

function feed(pastLimit: PastLimit, limit: number): { capture: BodyCapture; kept: number[] } {
  const capture = new BodyCapture(limit, pastLimit);
  const kept: number[] = [];
  for (const chunk of chunks) {
    capture.push(chunk);
    kept.push(capture.keptBytes);
  }
  return { capture, kept };
}

describe('body capture', () => {
  test('within the limit every mode keeps the whole body, unhashed', () => {
    for (const mode of ['count', 'hash', 'hash-only'] as const) {
      const result = feed(mode, 1000).capture.result();
      assert.deepEqual(result, { body, truncated: false, total: 100 }, mode);
    }
  });

  test('hash-only: past the limit the whole body is hashed and the prefix let go', () => {
    const { capture, kept } = feed('hash-only', 50);
    assert.deepEqual(kept, [30, 0, 0], 'the kept bytes fall to nothing once the limit is passed');
    assert.deepEqual(capture.result(), { body: Buffer.alloc(0), truncated: true, total: 100, sha256: sha });
  });

  test('hash: past the limit the prefix stays (a gRPC answer is read up to the cut), and the whole body is hashed', () => {
    const { capture, kept } = feed('hash', 50);
    assert.deepEqual(kept, [30, 50, 50]);
    assert.deepEqual(capture.result(), { body: body.subarray(0, 50), truncated: true, total: 100, sha256: sha });
  });

  test('count: past the limit the prefix stays and the rest is only counted', () => {
    const { capture } = feed('count', 50);
    assert.deepEqual(capture.result(), { body: body.subarray(0, 50), truncated: true, total: 100 });
  });
});

describe('budgeted capture', () => {
  test('holds what it keeps from the budget, and gives it back when released', () => {
    const budget = new ByteBudget();
    const capture = new BudgetedCapture(new BodyCapture(1000, 'hash'), budget, () => 500);
    for (const chunk of chunks) capture.push(chunk);
    assert.equal(budget.held, 100);
    capture.release();
    assert.equal(budget.held, 0);
    assert.deepEqual(capture.result(), { body, truncated: false, total: 100 });
  });

  test('past the budget the capture is let go, with every byte it held', () => {
    const budget = new ByteBudget();
    assert.ok(budget.take(40, 100), 'another answer holds 40 bytes');
    const capture = new BudgetedCapture(new BodyCapture(1000, 'hash'), budget, () => 100);
    for (const chunk of chunks) capture.push(chunk);
    assert.equal(budget.held, 40, 'the second chunk did not fit: the first one went back too');
    assert.equal(capture.result(), undefined);
    capture.release();
    assert.equal(budget.held, 40);
  });

  test('a hash-only capture past its limit gives its prefix back at once', () => {
    const budget = new ByteBudget();
    budget.limit = 1000;
    const capture = new BudgetedCapture(new BodyCapture(50, 'hash-only'), budget);
    capture.push(chunks[0]!);
    assert.equal(budget.held, 30);
    capture.push(chunks[1]!);
    assert.equal(budget.held, 0, 'past 50 bytes nothing is kept');
    capture.push(chunks[2]!);
    assert.deepEqual(capture.result(), { body: Buffer.alloc(0), truncated: true, total: 100, sha256: sha });
    capture.release();
    assert.equal(budget.held, 0);
  });
});

describe('a declared length past the limit', () => {
  const declaredLength = String(body.length);

  test('hash-only keeps nothing from the first byte, and hashes the whole body', () => {
    const capture = new BodyCapture(50, 'hash-only');
    capture.declare(declaredLength);
    const kept: number[] = [];
    for (const chunk of chunks) {
      capture.push(chunk);
      kept.push(capture.keptBytes);
    }
    assert.deepEqual(kept, [0, 0, 0]);
    assert.deepEqual(capture.result(), { body: Buffer.alloc(0), truncated: true, total: 100, sha256: sha });
  });

  test('a body that never comes is not marked as cut (HEAD, 304)', () => {
    const capture = new BodyCapture(50, 'hash-only');
    capture.declare(declaredLength);
    assert.deepEqual(capture.result(), { body: Buffer.alloc(0), truncated: false, total: 0 });
  });

  test('within the limit, unusable, or in another mode, the declaration changes nothing', () => {
    for (const [mode, limit, declared] of [
      ['hash-only', 1000, declaredLength],
      ['hash-only', 50, 'many'],
      ['hash-only', 50, undefined],
      ['hash', 50, declaredLength],
      ['count', 50, declaredLength],
    ] as const) {
      const declaring = new BodyCapture(limit, mode);
      declaring.declare(declared);
      const plain = new BodyCapture(limit, mode);
      for (const chunk of chunks) {
        declaring.push(chunk);
        plain.push(chunk);
      }
      assert.deepEqual(declaring.result(), plain.result(), `${mode} ${limit} ${declared}`);
    }
  });

  test('a budgeted capture holds nothing from the budget', () => {
    const budget = new ByteBudget();
    budget.limit = 1000;
    const capture = new BudgetedCapture(new BodyCapture(50, 'hash-only'), budget);
    capture.declare(declaredLength);
    capture.push(chunks[0]!);
    assert.equal(budget.held, 0);
    for (const chunk of chunks.slice(1)) capture.push(chunk);
    assert.deepEqual(capture.result(), { body: Buffer.alloc(0), truncated: true, total: 100, sha256: sha });
  });
});
