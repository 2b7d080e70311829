/**
 * `--workers auto`: one per core, within the cgroup memory limit.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { autoWorkers, cgroupMemoryLimit } from '../../src/control/worker-count.js';

const MiB = 1024 * 1024;

describe('--workers auto', () => {
  test('one per core without a memory limit', () => {
    assert.equal(autoWorkers(8, undefined).workers, 8);
    assert.equal(autoWorkers(0, undefined).workers, 1);
  });
  test('a 512Mi limit holds 6 workers (74 MB + 70 MB each), whatever the cores', () => {
    const budget = autoWorkers(16, 512 * MiB);
    assert.equal(budget.workers, 6);
    assert.equal(budget.limitedByMemory, true);
    assert.ok(74 * MiB + budget.workers * 70 * MiB <= 512 * MiB);
    assert.ok(74 * MiB + (budget.workers + 1) * 70 * MiB > 512 * MiB);
    assert.equal(autoWorkers(4, 512 * MiB).workers, 4);
    assert.equal(autoWorkers(4, 512 * MiB).limitedByMemory, false);
  });
  test('at least one worker under a tiny limit', () => {
    assert.equal(autoWorkers(8, 100 * MiB).workers, 1);
  });
  test('reads cgroup v2 memory.max, then cgroup v1; "max" and v1\'s huge value are no limit', () => {
    const files = (map: Record<string, string>) => (file: string) => {
      if (file in map) return map[file]!;
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    };
    assert.equal(cgroupMemoryLimit(files({ '/sys/fs/cgroup/memory.max': '536870912\n' })), 536870912);
    assert.equal(cgroupMemoryLimit(files({ '/sys/fs/cgroup/memory.max': 'max\n' })), undefined);
    assert.equal(cgroupMemoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '268435456\n' })), 268435456);
    assert.equal(cgroupMemoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n' })), undefined);
    assert.equal(cgroupMemoryLimit(files({})), undefined);
  });
});
