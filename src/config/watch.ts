/**
 * Watches a config file so a saved change takes effect within a few seconds,
 * however it was written.
 *
 * The directory is watched, not the file: an editor's save-by-rename, `mv`,
 * and a Kubernetes ConfigMap's `..data` symlink swap all replace the file's
 * inode, and a watch on the old inode would go quiet. Events are debounced,
 * and the content is read again until two reads a settle window apart
 * agree (timeouts.configSettle, 2 s by default), so a write in several
 * chunks is seen once, whole, unless its pauses are longer than the window.
 * Writing a new file and renaming it over the old one is the supported way
 * to edit: the change is then atomic, whatever the window. A slow poll backs the watch up (network file
 * systems, a directory that was itself replaced). Only content that differs
 * from the last content handed over triggers the callback.
 */
import { createHash } from 'node:crypto';
import { statSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { MAX_CONFIG_BYTES } from './load.js';
import { readRegularFile } from './regular-file.js';

export interface ConfigWatcherOptions {
  /** Quiet time after the last event before reading. */
  readonly debounceMs?: number;
  /** Backup poll interval. */
  readonly pollMs?: number;
  /** Gap between the two reads that must agree; read again for each check when a function. */
  readonly settleMs?: number | (() => number);
}

export class ConfigWatcher {
  private readonly file: string;
  private readonly directory: string;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private lastHash: string | undefined;
  private reading = false;
  private again = false;
  private closed = false;
  private readonly debounceMs: number;
  private readonly pollMs: number;
  private readonly settleMs: () => number;

  constructor(
    file: string,
    /** The new text, or undefined when the file must be read by the loader (oversize). */
    private readonly onChange: (text: string | undefined) => void,
    private readonly onError: (message: string) => void = () => undefined,
    options: ConfigWatcherOptions = {},
  ) {
    this.file = resolve(file);
    this.directory = dirname(this.file);
    this.debounceMs = options.debounceMs ?? 150;
    this.pollMs = options.pollMs ?? 2000;
    const settle = options.settleMs ?? DEFAULT_SETTLE_MS;
    this.settleMs = typeof settle === 'function' ? settle : () => settle;
  }

  /** Starts watching; `initialText` is the content already loaded. */
  start(initialText: string): void {
    this.lastHash = hash(initialText);
    this.watchDirectory();
    this.poll = setInterval(() => {
      if (!this.watcher) this.watchDirectory();
      this.schedule(0);
    }, this.pollMs);
    this.poll.unref();
  }

  /** Tells the watcher which content is now in effect (after a manual reload). */
  acknowledge(text: string): void {
    this.lastHash = hash(text);
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.poll) clearInterval(this.poll);
  }

  private watchDirectory(): void {
    if (this.closed) return;
    try {
      const watcher = watch(this.directory, { persistent: false }, () => this.schedule(this.debounceMs));
      watcher.on('error', () => {
        // The directory went away or was replaced: the poll re-establishes it.
        watcher.close();
        if (this.watcher === watcher) this.watcher = undefined;
      });
      this.watcher = watcher;
    } catch (err) {
      this.watcher = undefined;
      this.onError(`cannot watch ${this.directory}: ${(err as Error).message}; polling every ${this.pollMs}ms`);
    }
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.check(), delayMs);
    this.debounce.unref();
  }

  private async check(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      const text = await this.readStable();
      if (text === undefined) return;
      const h = hash(text);
      if (h === this.lastHash) return;
      this.lastHash = h;
      this.onChange(text.startsWith(OVERSIZE) ? undefined : text);
    } finally {
      this.reading = false;
      if (this.again && !this.closed) {
        this.again = false;
        this.schedule(this.debounceMs);
      }
    }
  }

  /** Reads until two reads agree; undefined while the file is missing. */
  private async readStable(): Promise<string | undefined> {
    let previous = watchedText(this.file);
    const settleMs = this.settleMs();
    for (let attempt = 0; attempt < 20; attempt++) {
      await new Promise((r) => setTimeout(r, settleMs));
      const current = watchedText(this.file);
      if (current === previous) return current;
      previous = current;
    }
    return previous;
  }
}

/**
 * The file's text as the watcher compares it; for a file over the config's
 * size limit or not a regular file, a placeholder that changes with its
 * size and time, so validation reports it without the watcher ever holding
 * it in memory or blocking on it. What start() is given must be this, or
 * the first look reads as a change.
 */
export function watchedText(file: string): string | undefined {
  try {
    const stat = statSync(file);
    // A named pipe or device is left to the loader, which refuses it.
    if (!stat.isFile()) return `${OVERSIZE}${stat.mode}:${stat.mtimeMs}`;
    if (stat.size > MAX_CONFIG_BYTES) return `${OVERSIZE}${stat.size}:${stat.mtimeMs}`;
    const read = readRegularFile(file, MAX_CONFIG_BYTES);
    return 'bytes' in read ? read.bytes.toString('utf8') : `${OVERSIZE}${read.oversize}:${stat.mtimeMs}`;
  } catch {
    return undefined;
  }
}

const OVERSIZE = '\u0000oversize:';

/** The default settle window (timeouts.configSettle's default). */
export const DEFAULT_SETTLE_MS = 2000;

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
