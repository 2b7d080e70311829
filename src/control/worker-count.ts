/**
 * How many workers `--workers auto` starts: one per core, but no more than
 * the container's memory limit holds. A gateway takes about 74 MB plus about
 * 70 MB per worker under load, so a 512Mi limit holds 6 workers whatever the
 * core count.
 *
 * A worker that shadows holds far more: its shadow threads (a V8 heap of
 * its own each, which copy and compare) and up to limits.shadowInflightBytes of
 * copies and captured answers. Under a saturating 100% shadow with
 * comparison, `serve --workers 2` peaked at 170 MB per worker with the
 * default 32 MB budget (bench gw-w2-shadow); counted as 140 MB plus the
 * budget, a 512Mi limit holds 2 shadowing workers, where 6 would have
 * been killed for memory.
 */
import { readFileSync } from 'node:fs';
import type { GatewayConfig } from '../config/types.js';
import { validateConfigFile } from '../config/validate.js';

export const BASE_MEMORY_BYTES = 74 * 1024 * 1024;
export const WORKER_MEMORY_BYTES = 70 * 1024 * 1024;
export const SHADOWING_WORKER_MEMORY_BYTES = 140 * 1024 * 1024;

/** What one worker serving this config may hold under load. */
export function workerMemoryFor(config: Pick<GatewayConfig, 'routes' | 'limits'>): number {
  const shadows = config.routes.some((route) => route.shadow.length > 0);
  return shadows ? SHADOWING_WORKER_MEMORY_BYTES + config.limits.shadowInflightBytes : WORKER_MEMORY_BYTES;
}

export interface WorkerBudget {
  readonly workers: number;
  readonly cpus: number;
  /** The cgroup memory limit, when there is one. */
  readonly memoryLimitBytes: number | undefined;
  /** True when the memory limit, not the core count, decided. */
  readonly limitedByMemory: boolean;
}

/** workerMemoryFor() of the config in a file; the plain estimate when it cannot be read or is invalid (serving it then fails with the reasons). */
export function workerMemoryOfFile(file: string): number {
  try {
    const config = validateConfigFile(file).config;
    return config ? workerMemoryFor(config) : WORKER_MEMORY_BYTES;
  } catch {
    return WORKER_MEMORY_BYTES;
  }
}

export function autoWorkers(cpus: number, memoryLimitBytes: number | undefined, perWorkerBytes = WORKER_MEMORY_BYTES): WorkerBudget {
  const byCpu = Math.max(1, cpus);
  if (memoryLimitBytes === undefined) return { workers: byCpu, cpus, memoryLimitBytes, limitedByMemory: false };
  const byMemory = Math.max(1, Math.floor((memoryLimitBytes - BASE_MEMORY_BYTES) / perWorkerBytes));
  return { workers: Math.min(byCpu, byMemory), cpus, memoryLimitBytes, limitedByMemory: byMemory < byCpu };
}

/** Above this a cgroup v1 limit means "unlimited" (it is a page-rounded 2^63). */
const UNLIMITED_V1 = 2 ** 60;

/**
 * The memory limit of this process's cgroup: cgroup v2's memory.max, else
 * cgroup v1's memory.limit_in_bytes; undefined when unlimited or unknown.
 */
export function cgroupMemoryLimit(read: (file: string) => string = (file) => readFileSync(file, 'utf8')): number | undefined {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    let text: string;
    try {
      text = read(file).trim();
    } catch {
      continue;
    }
    if (text === 'max') return undefined;
    const bytes = Number(text);
    if (!Number.isFinite(bytes) || bytes <= 0 || bytes >= UNLIMITED_V1) return undefined;
    return bytes;
  }
  return undefined;
}
