/**
 * The allocator settings the primary gives the data-plane processes it
 * forks: the defaults, each unless the operator set it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ALLOCATOR_DEFAULTS, allocatorEnv } from '../../src/control/allocator-env.js';

describe('allocatorEnv', () => {
  test('gives the defaults when none is set', () => {
    assert.deepEqual(allocatorEnv({}), { MALLOC_ARENA_MAX: '2' });
    assert.deepEqual(allocatorEnv({ NODE_ENV: 'production' }), { ...ALLOCATOR_DEFAULTS });
  });

  test("leaves the operator's own settings alone, even empty ones", () => {
    assert.deepEqual(allocatorEnv({ MALLOC_ARENA_MAX: '8' }), {});
    assert.deepEqual(allocatorEnv({ MALLOC_ARENA_MAX: '' }), {});
  });
});
