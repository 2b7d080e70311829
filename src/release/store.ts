/**
 * Release progress on disk, so a restart resumes the same step. Written
 * atomically (temporary file, fsync, rename), so a crash mid-write leaves
 * the previous state, never a torn one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ReleaseState } from './machine.js';
import { isReleaseState } from './shapes.js';

interface StateFile {
  readonly version: 1;
  readonly releases: Record<string, ReleaseState>;
}

export class ReleaseStore {
  readonly file: string;

  constructor(stateDir: string) {
    this.file = join(resolve(stateDir), 'releases.json');
  }

  /**
   * The releases on disk. A release whose state is not of the shape this
   * file is written in (a hand edit, a copy from elsewhere) is left out and
   * named in `refused`: kept, it would fail every view of the release; the
   * others resume. Throws when the file as a whole cannot be read.
   */
  load(): { states: Map<string, ReleaseState>; refused: string[] } {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { states: new Map(), refused: [] };
      throw err;
    }
    const parsed = JSON.parse(text) as Partial<StateFile> | null;
    if (parsed?.version !== 1 || typeof parsed.releases !== 'object' || parsed.releases === null) throw new Error(`${this.file}: unknown state format`);
    const states = new Map<string, ReleaseState>();
    const refused: string[] = [];
    for (const [route, state] of Object.entries(parsed.releases as Record<string, unknown>)) {
      if (isReleaseState(state)) states.set(route, state);
      else refused.push(route);
    }
    return { states, refused };
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
