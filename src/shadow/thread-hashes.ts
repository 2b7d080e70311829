/**
 * The shadow thread's half of hashing primary answers past their capture
 * limit (compare-pool.ts, bodyHash): the serving thread only copies the
 * bytes into pieces and hands them over; here each job's SHA-256 is
 * updated as its pieces arrive, and taken by its pair, which comes after
 * them on the same port.
 */
import { createHash, type Hash } from 'node:crypto';
import type { WirePair } from '../diff/thread-wire.js';
import type { HashPieces } from './shadow-wire.js';

/** Jobs kept at most: past it the oldest are forgotten (their pairs, if they ever come, are not compared). */
export const MAX_HASH_JOBS = 4096;

export class ThreadHashes {
  private readonly jobs = new Map<number, Hash>();
  private used: ArrayBuffer[] = [];

  get size(): number {
    return this.jobs.size;
  }

  /** A message of pieces: each hashed now, its memory let go. */
  add(message: HashPieces): void {
    for (const job of message.forget) this.jobs.delete(job);
    for (const { job, bytes } of message.pieces) {
      let hash = this.jobs.get(job);
      if (!hash) {
        if (this.jobs.size >= MAX_HASH_JOBS) this.jobs.delete(this.jobs.keys().next().value!);
        this.jobs.set(job, (hash = createHash('sha256')));
      }
      hash.update(bytes);
      if (bytes.buffer.byteLength > 0) this.used.push(bytes.buffer as ArrayBuffer);
    }
  }

  /** The pieces taken in since the last call, to hand back. */
  takePieces(): ArrayBuffer[] {
    const used = this.used;
    this.used = [];
    return used;
  }

  /**
   * The pairs with their primary's hash filled in; a pair whose job is not
   * here (its pieces went to a thread since replaced, or were forgotten)
   * cannot be compared and is counted in `lost`.
   */
  fill(pairs: readonly WirePair[]): { readonly pairs: WirePair[]; readonly lost: number } {
    const out: WirePair[] = [];
    let lost = 0;
    for (const pair of pairs) {
      const job = pair.primary.sha256Job;
      if (job === undefined) {
        out.push(pair);
        continue;
      }
      const hash = this.jobs.get(job);
      this.jobs.delete(job);
      if (!hash) {
        lost++;
        continue;
      }
      const { sha256Job: _job, ...primary } = pair.primary;
      out.push({ ...pair, primary: { ...primary, sha256: hash.digest('hex') } });
    }
    return { pairs: out, lost };
  }
}
