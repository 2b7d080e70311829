/**
 * Collects a body up to a byte limit. Past the limit it counts the rest,
 * and says so: memory stays bounded whatever the peer sends. An answer being
 * compared also gets a SHA-256 of its whole body, computed as it streams
 * past the limit (where a BodyHash says: the primary's on the shadow thread
 * that compares its pair, compare-pool.ts): it is then compared by length
 * and hash, never by a prefix parsed as if it were the body. So unless the
 * prefix is read for something else (a gRPC answer's whole messages before
 * the cut), it is let go once the limit is passed: a 6 MB answer holds
 * nothing while the rest streams, where it held diff.maxBodyBytes (and its
 * pair took that much of the in-flight byte budget, which left most 6 MB
 * pairs uncompared).
 */
import { createHash } from 'node:crypto';
import type { BodyHash } from '../diff/pair.js';
import type { ByteBudget } from './byte-budget.js';

/** A body as captured: the kept bytes (memory of their own), and whether there was more. */
export interface Captured {
  readonly body: Buffer;
  readonly truncated: boolean;
  /** Bytes received in all. */
  readonly total: number;
  /** SHA-256 (hex) of the whole body: set when truncated and hashing. */
  readonly sha256?: string;
  /** Instead: the job hashing it on another thread (BodyHash). */
  readonly sha256Job?: number;
  /** Truncated while hashing, and the hash was given up: the body cannot be compared. */
  readonly unhashed?: boolean;
}

/** SHA-256 on this thread. */
export function localHash(): BodyHash {
  const hash = createHash('sha256');
  let digest: string | undefined;
  return {
    update: (chunk) => void hash.update(chunk),
    finish: () => ({ sha256: (digest ??= hash.digest('hex')) }),
    abandon: () => undefined,
  };
}

/**
 * What a capture does past its limit: `count` the rest (request bodies),
 * `hash` the whole body and keep the prefix, or `hash-only`: hash the whole
 * body and let the prefix go.
 */
export type PastLimit = 'count' | 'hash' | 'hash-only';

export class BodyCapture {
  private chunks: Buffer[] = [];
  private kept = 0;
  private hash: BodyHash | undefined;
  private finished: ReturnType<BodyHash['finish']> | null = null;
  private abandoned = false;
  /** The answer declared a length past the limit, and nothing past it reads the prefix (`hash-only`): keep nothing. */
  private keepsNothing = false;
  total = 0;
  overflowed = false;

  /** @param newHash where the whole body is hashed past the limit (default: here). */
  constructor(
    private readonly limit: number,
    private readonly pastLimit: PastLimit = 'count',
    private readonly newHash: () => BodyHash = localHash,
  ) {}

  /**
   * The length the answer declares (its Content-Length header, if any).
   * Past the limit, `hash-only` then keeps nothing from the first byte:
   * a prefix held while it is read lives long enough to be promoted to
   * V8's old generation, where its memory waits for a full collection.
   * Nothing changes until bytes arrive, so a body that never comes (HEAD,
   * 304) is not marked as cut.
   */
  declare(contentLength: string | undefined): void {
    const length = contentLength === undefined ? NaN : Number(contentLength);
    this.keepsNothing = this.pastLimit === 'hash-only' && Number.isSafeInteger(length) && length > this.limit;
  }

  /** Returns false once the limit is passed (callers may stop feeding unless hashing). Bytes kept may fall then (`hash-only`). */
  push(chunk: Buffer): boolean {
    this.total += chunk.length;
    if (this.overflowed) {
      this.hash?.update(chunk);
      return false;
    }
    const room = this.keepsNothing ? -1 : this.limit - this.kept;
    if (chunk.length <= room) {
      this.chunks.push(chunk);
      this.kept += chunk.length;
      return true;
    }
    if (room > 0) {
      this.chunks.push(chunk.subarray(0, room));
      this.kept += room;
    }
    this.overflowed = true;
    if (this.pastLimit !== 'count') {
      this.hash = this.newHash();
      for (const kept of this.chunks) this.hash.update(kept);
      this.hash.update(chunk.subarray(Math.max(0, room)));
    }
    if (this.pastLimit === 'hash-only') {
      this.chunks = [];
      this.kept = 0;
    }
    return false;
  }

  /** Bytes kept so far. */
  get keptBytes(): number {
    return this.kept;
  }

  /**
   * The kept bytes in memory of their own (not a slice of Node's shared pool,
   * nor a chunk still queued for the user's socket): it can be transferred
   * to a shadow thread without copying again.
   */
  concat(): Buffer {
    const out = Buffer.allocUnsafeSlow(this.kept);
    let at = 0;
    for (const chunk of this.chunks) at += chunk.copy(out, at);
    return out;
  }

  /** The body once it has ended. */
  result(): Captured {
    const hashed = this.digest();
    return {
      body: this.concat(),
      truncated: this.overflowed,
      total: this.total,
      ...hashed,
      ...(this.hash && hashed === undefined ? { unhashed: true } : {}),
    };
  }

  /** SHA-256 (hex) of the whole body, once it has ended; undefined unless it passed the limit while hashing here. */
  sha256(): string | undefined {
    const hashed = this.digest();
    return hashed && 'sha256' in hashed ? hashed.sha256 : undefined;
  }

  /** The whole body's hash will not be used (its answer will not be compared). */
  abandon(): void {
    if (this.abandoned) return;
    this.abandoned = true;
    this.hash?.abandon();
    this.finished = undefined;
  }

  private digest(): ReturnType<BodyHash['finish']> {
    if (this.finished === null) this.finished = this.hash?.finish();
    return this.finished;
  }
}

/**
 * A shadow answer's capture while the answer arrives, its kept bytes held
 * from a byte budget (limits.shadowInflightBytes): the copying shadow
 * thread's for HTTP/1.1 copies, the serving thread's for copies to HTTP/2
 * upstreams. A capture that would pass the budget is let go, and its pair
 * is not compared (counted as such where the answer is received).
 */
export class BudgetedCapture {
  private capture: BodyCapture | undefined;
  /** Bytes held from the budget now. */
  private held = 0;

  constructor(
    capture: BodyCapture,
    private readonly budget: ByteBudget,
    /** The budget's limit; none: the budget's own (ByteBudget.limit). */
    private readonly limit?: () => number,
  ) {
    this.capture = capture;
  }

  /** See BodyCapture.declare. */
  declare(contentLength: string | undefined): void {
    this.capture?.declare(contentLength);
  }

  push(chunk: Buffer): void {
    const capture = this.capture;
    if (!capture) return;
    const before = capture.keptBytes;
    capture.push(chunk);
    const kept = capture.keptBytes - before;
    if (kept === 0) return;
    if (kept < 0) {
      // Past the limit the prefix was let go: so are its bytes.
      this.budget.give(-kept);
      this.held += kept;
    } else if (this.budget.take(kept, this.limit?.())) this.held += kept;
    else {
      this.capture = undefined;
      this.release();
    }
  }

  /** Gives the held bytes back: the answer is over (its receiver counts them from here), or given up. */
  release(): void {
    this.budget.give(this.held);
    this.held = 0;
  }

  /** What was captured, once the answer ended; undefined when the budget let it go. */
  result(): Captured | undefined {
    return this.capture?.result();
  }
}
