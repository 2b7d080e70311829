/**
 * Without a baseline, noise is learned from repeated requests: the primary's
 * earlier answer to the same GET (same endpoint, same query) is compared
 * with its answer now, and what differs is noise of the primary's own
 * version. Bounded: a few hundred recent requests, small bodies only.
 */
import type { CapturedResponse, MirroredPair } from './pair.js';

export interface RepeatMemoryOptions {
  readonly maxEntries: number;
  /** Bodies larger than this are not remembered. */
  readonly maxBodyBytes: number;
}

export class RepeatMemory {
  private readonly answers = new Map<string, CapturedResponse>();

  constructor(private readonly options: RepeatMemoryOptions = { maxEntries: 512, maxBodyBytes: 256 * 1024 }) {}

  /** The primary's previous answer to this request, if remembered; remembers this one. */
  exchange(pair: MirroredPair): CapturedResponse | undefined {
    if (pair.method !== 'GET' && pair.method !== 'HEAD') return undefined;
    const key = pair.route + '\u0000' + pair.method + '\u0000' + pair.path;
    const previous = this.answers.get(key);
    if (previous) this.answers.delete(key);
    if (pair.primary.body.length <= this.options.maxBodyBytes && !pair.primary.truncated) {
      this.answers.set(key, pair.primary);
      if (this.answers.size > this.options.maxEntries) this.answers.delete(this.answers.keys().next().value!);
    }
    return previous;
  }
}
