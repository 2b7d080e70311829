/**
 * Release progress on disk, so a restart resumes the same step. Written
 * atomically (temporary file, fsync, rename), so a crash mid-write leaves
 * the previous state, never a torn one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ReleaseState } from './machine.js';

interface StateFile {
  readonly version: 1;
  readonly releases: Record<string, ReleaseState>;
}

export class ReleaseStore {
  readonly file: string;

  constructor(stateDir: string) {
    this.file = join(resolve(stateDir), 'releases.json');
  }

  load(): Map<string, ReleaseState> {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    const parsed = JSON.parse(text) as StateFile;
    if (parsed.version !== 1 || typeof parsed.releases !== 'object') throw new Error(`${this.file}: unknown state format`);
    return new Map(Object.entries(parsed.releases));
  }

  save(states: ReadonlyMap<string, ReleaseState>): void {
    const body: StateFile = { version: 1, releases: Object.fromEntries(states) };
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(body, null, 2) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    try {
      const dir = openSync(dirname(this.file), 'r');
      fsyncSync(dir);
      closeSync(dir);
    } catch {
      // Directory fsync is best effort (not every file system allows it).
    }
  }
}
