/**
 * Sticky picks by weighted rendezvous hashing over fixed buckets.
 *
 * A key hashes to one of 65,536 buckets; each bucket belongs to the backend
 * with the highest score weight / -ln(hash(bucket, name)). Three properties
 * follow, and tests hold them:
 * - the pick depends only on the key and the backends' names and weights, so
 *   every replica, and every restart, agrees;
 * - raising one backend's weight only raises its own scores, so keys only
 *   ever move onto it (a monotonic canary ramp), never between the others;
 * - each backend's share of buckets converges to its share of the weight.
 * The table is built once per config; a pick is one hash and one lookup.
 */
import { murmur3, unitHash } from './hash.js';

export const STICKY_BUCKETS = 65536;
const BUCKET_SEED = 0x9e3779b9;

export class StickyPicker<T> {
  private readonly table: Uint16Array;
  private readonly items: readonly T[];

  constructor(entries: readonly { name: string; item: T; weight: number }[]) {
    const live = entries.filter((e) => e.weight > 0);
    this.items = live.map((e) => e.item);
    this.table = new Uint16Array(STICKY_BUCKETS);
    if (live.length <= 1) return;
    for (let bucket = 0; bucket < STICKY_BUCKETS; bucket++) {
      let best = 0;
      let bestScore = -Infinity;
      for (let i = 0; i < live.length; i++) {
        const score = live[i]!.weight / -Math.log(unitHash(`${bucket}:${live[i]!.name}`));
        if (score > bestScore) {
          bestScore = score;
          best = i;
        }
      }
      this.table[bucket] = best;
    }
  }

  static bucketOf(key: string): number {
    return murmur3(key, BUCKET_SEED) & (STICKY_BUCKETS - 1);
  }

  pick(key: string): T {
    return this.items[this.table[StickyPicker.bucketOf(key)]!]!;
  }
}
