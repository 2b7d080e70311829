/**
 * Lets a shadow thread give back the memory of the answers it has read
 * and the pairs it has compared a few megabytes at a time, not 32 MB at a
 * time.
 *
 * Each socket read gets memory of its own outside V8's heap (up to 64 KB),
 * dead once the chunk is hashed or captured, and so is a pair's once it is
 * compared. V8 collects an isolate's young generation for such memory only
 * once about 32 MB of it has piled up, when nothing else allocates (a
 * thread that only hashes answers past diff.maxBodyBytes), and the
 * allocator keeps the high-water mark as the process's memory. With 6 MB
 * shadow answers at 100 req/s the shadow thread's allocator arena reached
 * 31-37 MB resident, and the gateway 182 MB against 148 without the
 * shadow; collecting after every 8 MB read, 19 MB; after every 2 MB, 6-10
 * MB, and the gateway 150 MB (bench/README.md, "Spent buffers").
 *
 * A collection runs only when V8 has run none since SPENT_COLLECT_BYTES
 * were spent: a thread that parses JSON collects often on its own, and
 * then this adds nothing.
 *
 * The collection is V8's own (`gc`, from --expose-gc): set process-wide
 * before the first shadow thread starts, it is on the global of every
 * isolate created after, so the shadow threads have it. A thread whose
 * context existed before (the serving thread) takes it from a context made
 * after (youngCollection; serving/spent-reads.ts). Without it nothing is
 * collected early.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes spent between two collections: 32 reads of 64 KB. A shadow thread's young generation holds little, and its scavenge takes well under a millisecond. */
export const SPENT_COLLECT_BYTES = 2 * 1024 * 1024;

export type Collect = (options: { type: 'minor' | 'major' }) => void;

/** Puts V8's `gc` on the global of isolates created from here on: call before starting a shadow thread. */
export function exposeCollection(): void {
  setFlagsFromString('--expose-gc');
}

let taken: { collect: Collect | undefined } | undefined;

/** This thread's young collection, or undefined where it cannot be had; taken once per thread (each try makes a context). */
export function youngCollection(): Collect | undefined {
  if (taken) return taken.collect;
  let collect: Collect | undefined;
  try {
    exposeCollection();
    const gc: unknown = runInNewContext('gc');
    if (typeof gc === 'function') collect = gc as Collect;
  } catch {
    // Not to be had here: nothing is collected early.
  }
  taken = { collect };
  return collect;
}

/** Counts the bytes outside the heap a thread has let go, and collects its young generation when V8 has not for `everyBytes`. */
export class SpentBuffers {
  private pending = 0;
  private readonly observer: PerformanceObserver | undefined;
  /** Collections this ran (for tests). */
  collections = 0;

  constructor(
    private readonly everyBytes = SPENT_COLLECT_BYTES,
    private readonly collect: Collect | undefined = (globalThis as { gc?: Collect }).gc,
  ) {
    if (!collect) return;
    // Any collection, V8's own or this one, frees the young generation's dead buffers.
    this.observer = new PerformanceObserver(() => (this.pending = 0));
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** Bytes spent since the last collection. */
  get pendingBytes(): number {
    return this.pending;
  }

  /** `bytes` outside the heap are dead once the caller lets go of them. */
  spent(bytes: number): void {
    if (!this.collect) return;
    this.pending += bytes;
    if (this.pending < this.everyBytes) return;
    this.pending = 0;
    this.collections++;
    this.collect({ type: 'minor' });
  }

  close(): void {
    this.observer?.disconnect();
  }
}
