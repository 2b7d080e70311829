/**
 * Without a baseline, noise is learned from repeated requests: the primary's
 * earlier answer to the same GET (same endpoint, same query) is compared
 * with its answer now, and what differs is noise of the primary's own
 * version. Bounded: a few hundred recent requests, small bodies only, and
 * their bodies' bytes in all: 512 answers of up to 256 KB each would
 * otherwise hold 128 MB in a shadow thread, outside its heap bound.
 */
import type { CapturedResponse, MirroredPair } from './pair.js';

export interface RepeatMemoryOptions {
  readonly maxEntries: number;
  /** Bodies larger than this are not remembered. */
  readonly maxBodyBytes: number;
  /** Bytes of bodies remembered in all; past it the oldest keys go. */
  readonly maxBytes: number;
}

const DEFAULTS: RepeatMemoryOptions = { maxEntries: 512, maxBodyBytes: 256 * 1024, maxBytes: 8 * 1024 * 1024 };

export class RepeatMemory {
  private readonly answers = new Map<string, CapturedResponse>();
  private readonly options: RepeatMemoryOptions;
  private heldBytes = 0;

  constructor(options: Partial<RepeatMemoryOptions> = {}) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** Bytes of the bodies remembered. */
  get bytes(): number {
    return this.heldBytes;
  }

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
      this.heldBytes += pair.primary.body.length - (previous?.body.length ?? 0);
      while (this.answers.size > this.options.maxEntries || (this.heldBytes > this.options.maxBytes && this.answers.size > 1)) this.forgetOldest();
    } else if (previous) this.forget(key, previous);
    return previous;
  }

  private forgetOldest(): void {
    const [key, answer] = this.answers.entries().next().value!;
    this.forget(key, answer);
  }

  private forget(key: string, answer: CapturedResponse): void {
    this.answers.delete(key);
    this.heldBytes -= answer.body.length;
  }
}
