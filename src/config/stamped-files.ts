/**
 * What a file the config names reads as, kept per path and read again only
 * when the file changed: it is looked at again at most every few seconds,
 * and reread when its size or mtime differs, so a regenerated file (a
 * descriptor set protoc wrote again) is picked up without a reload.
 */
import { statSync } from 'node:fs';

const RECHECK_MS = 5000;
const MAX_FILES = 64;

interface Entry<T> {
  readonly value: T;
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

export class StampedFiles<T> {
  private readonly files = new Map<string, Entry<T>>();

  /** `read` never throws: it tells a file's problems in its value. */
  constructor(
    private readonly read: (path: string) => T,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(path: string): T {
    const now = this.now();
    const entry = this.files.get(path);
    if (entry && now - entry.checkedAt < RECHECK_MS) return entry.value;
    const stamp = stampOf(path);
    if (entry && entry.stamp === stamp) {
      entry.checkedAt = now;
      return entry.value;
    }
    if (!entry && this.files.size >= MAX_FILES) this.files.delete(this.files.keys().next().value!);
    const value = this.read(path);
    this.files.set(path, { value, stamp, checkedAt: now });
    return value;
  }
}
