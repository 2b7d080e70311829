/**
 * The process's file-descriptor limit, and the connection cap derived from
 * it. Node raises the soft limit to the hard one at start, so the soft
 * limit read here is what the process really has.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Descriptors kept out of the listener's cap: the admin API's connections, config and log files, watchers. */
export const RESERVED_DESCRIPTORS = 256;
/** A cap beyond this is bounded by memory long before descriptors. */
const DERIVED_CAP_CEILING = 100_000;
const DERIVED_CAP_FLOOR = 64;

let cached: { limit: number | undefined } | undefined;

/** The soft RLIMIT_NOFILE, or undefined when it cannot be read (unlimited counts as undefined); read once. */
export function descriptorLimit(): number | undefined {
  cached ??= { limit: readDescriptorLimit() };
  return cached.limit;
}

function readDescriptorLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (line) return Number(line[1]);
  } catch {
    // Not Linux: ask a shell, which inherits the limit.
  }
  try {
    const out = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2000 });
    const value = Number(out.stdout.trim());
    return Number.isInteger(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The default `limits.maxConnections`: each client connection may need an
 * upstream connection too, so half of what is left once the reserve is set
 * aside, within a floor and a ceiling.
 */
export function derivedMaxConnections(limit = descriptorLimit()): number {
  if (limit === undefined) return DERIVED_CAP_CEILING;
  return Math.min(DERIVED_CAP_CEILING, Math.max(DERIVED_CAP_FLOOR, Math.floor((limit - RESERVED_DESCRIPTORS) / 2)));
}
