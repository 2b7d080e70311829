/**
 * Simulation files are part of the config: a saved change reloads the
 * config (which reads and checks the file again), with the config file's own
 * watcher doing the watching.
 */
import type { Snapshot } from '../config/compile.js';
import { ConfigWatcher, watchedText, type ConfigWatcherOptions } from '../config/watch.js';

export class SimulationWatchers {
  private readonly watchers = new Map<string, ConfigWatcher>();

  constructor(
    private readonly reload: (file: string) => void,
    private readonly onError: (message: string) => void,
    private readonly options: ConfigWatcherOptions = {},
  ) {}

  /** Watches exactly the simulation files the snapshot uses. */
  sync(snapshot: Snapshot): void {
    const files = new Set<string>();
    for (const d of snapshot.dependencies.values()) if (d.config.simulation) files.add(d.config.simulation.file);
    for (const [file, watcher] of this.watchers) {
      if (files.has(file)) continue;
      watcher.close();
      this.watchers.delete(file);
    }
    for (const file of files) {
      if (this.watchers.has(file)) continue;
      // A large simulation is watched by size and time, as the watcher compares it.
      const text = watchedText(file) ?? '';
      const watcher = new ConfigWatcher(file, () => this.reload(file), this.onError, this.options);
      watcher.start(text);
      this.watchers.set(file, watcher);
    }
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
