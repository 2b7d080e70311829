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
    if (pair.primary.body.length <= this.options.maxBodyBytes && !pair.primary.truncated) {
      // A key seen before keeps its entry (and its place: the oldest key
      // goes first, however recently it repeated). Deleting and adding it
      // again, once per pair, would have the Map replace its table every
      // few pairs, and a replaced table keeps the answers it held alive
      // through scavenges (src/churn.ts).
      this.answers.set(key, pair.primary);
      if (this.answers.size > this.options.maxEntries) this.answers.delete(this.answers.keys().next().value!);
    } else if (previous) this.answers.delete(key);
    return previous;
  }
}
