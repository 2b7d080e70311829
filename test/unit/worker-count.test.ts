/**
 * `--workers auto`: one per core, within the cgroup memory limit.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { autoWorkers, cgroupMemoryLimit, workerMemoryFor, workerMemoryOfFile } from '../../src/control/worker-count.js';
import { validateConfigSource } from '../../src/config/validate.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/gateway.js';

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
  test('a worker that shadows is counted with its threads and its in-flight budget: 2 in 512Mi, not 6', () => {
    const config = (yaml: string) => {
      const result = validateConfigSource({ file: 'gateway.yaml', text: yaml });
      assert.ok(result.config, JSON.stringify(result.diagnostics));
      return result.config;
    };
    const base = 'listen: 127.0.0.1:0\nupstreams: { v1: "http://127.0.0.1:1", v2: "http://127.0.0.1:2" }\n';
    const plain = config(base + 'routes: [{ name: r, backends: [{ upstream: v1 }] }]\n');
    const shadowing = config(base + 'routes: [{ name: r, backends: [{ upstream: v1 }], shadow: [{ upstream: v2 }] }]\n');
    const bigBudget = config(base + 'limits: { shadowInflightBytes: 256mb }\nroutes: [{ name: r, backends: [{ upstream: v1 }], shadow: [{ upstream: v2 }] }]\n');
    assert.equal(workerMemoryFor(plain), 70 * MiB);
    assert.equal(workerMemoryFor(shadowing), 140 * MiB + 32 * MiB);
    assert.equal(workerMemoryFor(bigBudget), 140 * MiB + 256 * MiB);
    assert.equal(autoWorkers(16, 512 * MiB, workerMemoryFor(plain)).workers, 6);
    assert.equal(autoWorkers(16, 512 * MiB, workerMemoryFor(shadowing)).workers, 2);
    assert.equal(autoWorkers(16, 512 * MiB, workerMemoryFor(bigBudget)).workers, 1);
  });
  test("serve reads the config's file for it; an unreadable or invalid one counts as plain (serving it fails with the reasons)", () => {
    const tmp = tempDir();
    try {
      const shadowing = join(tmp.dir, 'shadowing.yaml');
      writeFileSync(shadowing, 'listen: 127.0.0.1:0\nupstreams: { v1: "http://127.0.0.1:1", v2: "http://127.0.0.1:2" }\nroutes: [{ name: r, backends: [{ upstream: v1 }], shadow: [{ upstream: v2 }] }]\n');
      const invalid = join(tmp.dir, 'invalid.yaml');
      writeFileSync(invalid, 'routes: [{ name: r, backends: [{ upstream: nowhere }] }]\n');
      assert.equal(workerMemoryOfFile(shadowing), 172 * MiB);
      assert.equal(workerMemoryOfFile(invalid), 70 * MiB);
      assert.equal(workerMemoryOfFile(join(tmp.dir, 'missing.yaml')), 70 * MiB);
    } finally {
      tmp.remove();
    }
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
