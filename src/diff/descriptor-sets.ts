/**
 * The descriptor sets routes name (diff.protoDescriptors), loaded once and
 * kept by the comparison engine that uses them (not by the process: a
 * worker comparing pairs keeps its own). A file is looked at again at
 * most every few seconds, and reread only when its size or mtime changed,
 * so a regenerated set is picked up without a reload. A file that cannot
 * be read or parsed gives its reason: gRPC answers are then compared by
 * field number, and the reason travels with them as a note.
 */
import { statSync } from 'node:fs';
import { readDescriptorSet, type LoadedSet } from '../config/descriptor-file.js';

const RECHECK_MS = 5000;
const MAX_SETS = 64;

interface Entry {
  readonly loaded: LoadedSet;
  readonly stamp: string;
  checkedAt: number;
}

function stampOf(path: string): string {
  try {
    const s = statSync(path);
    return `${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

export class DescriptorSets {
  private readonly sets = new Map<string, Entry>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  get(path: string): LoadedSet {
    const now = this.now();
    const entry = this.sets.get(path);
    if (entry && now - entry.checkedAt < RECHECK_MS) return entry.loaded;
    const stamp = stampOf(path);
    if (entry && entry.stamp === stamp) {
      entry.checkedAt = now;
      return entry.loaded;
    }
    if (!entry && this.sets.size >= MAX_SETS) this.sets.delete(this.sets.keys().next().value!);
    const read = readDescriptorSet(path);
    const loaded = 'schema' in read ? read : { problem: `"${path}" ${read.problem}` };
    this.sets.set(path, { loaded, stamp, checkedAt: now });
    return loaded;
  }
}
