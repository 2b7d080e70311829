/**
 * Watches a set of files (certificates, keys, CA bundles) the way the config
 * file is watched (config/watch.ts: the directory, not the inode, so
 * renames, `mv` and ConfigMap/Secret `..data` symlink swaps are seen;
 * debounced; read until stable; a slow poll as backup), and calls back when
 * any of them changes content.
 */
import { readRegularFile } from '../config/regular-file.js';
import { ConfigWatcher, type ConfigWatcherOptions } from '../config/watch.js';
import { MAX_PEM_BYTES } from './pem.js';

export class FileSetWatcher {
  private watchers: { readonly path: string; readonly watcher: ConfigWatcher }[] = [];
  private watched = '';

  constructor(
    private readonly onChange: () => void,
    private readonly onError: (message: string) => void,
    private readonly options: ConfigWatcherOptions = {},
  ) {}

  /** Watches exactly `paths` from now on; unchanged sets keep their watchers. */
  watch(paths: readonly string[]): void {
    const unique = [...new Set(paths)].sort();
    const key = unique.join('\n');
    if (key === this.watched) return;
    this.close();
    this.watched = key;
    for (const path of unique) {
      const watcher = new ConfigWatcher(path, () => this.onChange(), this.onError, this.options);
      watcher.start(readOrEmpty(path));
      this.watchers.push({ path, watcher });
    }
  }

  /**
   * Marks what is on disk now as handled: call just before reading the
   * files. A change after this point is reported, even when it returns a
   * file to content the watcher saw earlier.
   */
  handled(): void {
    for (const { path, watcher } of this.watchers) watcher.acknowledge(readOrEmpty(path));
  }

  close(): void {
    for (const { watcher } of this.watchers) watcher.close();
    this.watchers = [];
    this.watched = '';
  }
}

function readOrEmpty(path: string): string {
  try {
    const read = readRegularFile(path, MAX_PEM_BYTES);
    return 'bytes' in read ? read.bytes.toString('utf8') : '';
  } catch {
    return '';
  }
}
