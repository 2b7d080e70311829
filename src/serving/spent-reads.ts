/**
 * The serving thread's spent socket reads, given back a few megabytes at a
 * time instead of about 32.
 *
 * Every socket read gets memory of its own outside V8's heap (up to 64 KB),
 * dead once the chunk is written on. V8 collects the young generation for
 * that memory only when about 32 MB of it has piled up, and glibc keeps the
 * high-water mark as the process's memory. Proxying 150 KB answers at 100
 * req/s, the serving thread held 32-35 MB of it at its peaks, with or
 * without a shadow.
 *
 * So a timer samples this thread's ArrayBuffer memory, and when 8 MB more
 * than the last collection left has piled up and no collection (V8's own or
 * this one) ran in the last 200 ms, it runs a young collection. Where V8
 * collects often by itself (6 MB answers at 100 req/s: one every ~50 ms)
 * this never runs: forcing more there, in a run without that guard, took
 * the serving thread's CPU per request from 8-9 to 11.4 ms.
 *
 * Measured side by side with the build before: 150 KB answers at 100
 * req/s peaked at 92 against 120 MB without a shadow and 125 against 147
 * with one; at a fixed 3,000 req/s of small answers the CPU per request was
 * 213 against 211 µs, and 568 against 576 at 2,000 req/s with a compared
 * shadow (bench/README.md, "Spent reads").
 *
 * The collection is V8's `gc`, taken as spent-buffers.ts's youngCollection
 * says: this thread's own context was made before the flag.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { youngCollection, type Collect } from '../shadow/spent-buffers.js';

export interface SpentReadsOptions {
  /** Bytes over what the last collection left before one is run (default 8 MB). */
  readonly everyBytes?: number;
  /** How often the memory is sampled, ms (default 50). */
  readonly sampleMs?: number;
  /** No collection within this long after another, ms (default 200). */
  readonly quietMs?: number;
  readonly collect?: Collect | undefined;
  /**
   * This thread's memory outside V8's heap, ArrayBuffers included (default:
   * V8's external_memory, 0.2 µs a call; process.memoryUsage() took 9 µs and
   * read /proc/self/stat, once per collection and sample).
   */
  readonly bytes?: () => number;
  readonly now?: () => number;
}

export class SpentReads {
  private readonly everyBytes: number;
  private readonly sampleMs: number;
  private readonly quietMs: number;
  private readonly collect: Collect | undefined;
  private readonly bytes: () => number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private observer: PerformanceObserver | undefined;
  /** What the last collection left. */
  private base = 0;
  private lastCollection = -Infinity;
  /** Collections this ran (for tests and the bench). */
  collections = 0;

  constructor(options: SpentReadsOptions = {}) {
    this.everyBytes = options.everyBytes ?? 8 * 1024 * 1024;
    this.sampleMs = options.sampleMs ?? 50;
    this.quietMs = options.quietMs ?? 200;
    this.collect = 'collect' in options ? options.collect : youngCollection();
    this.bytes = options.bytes ?? (() => getHeapStatistics().external_memory);
    this.now = options.now ?? (() => performance.now());
  }

  /** Starts sampling (nothing happens without a collection to run). */
  start(): void {
    if (!this.collect || this.timer) return;
    this.base = this.bytes();
    // Any collection frees what was dead: what is left is the new base.
    this.observer = new PerformanceObserver(() => this.collected());
    this.observer.observe({ entryTypes: ['gc'] });
    this.timer = setInterval(() => this.sample(), this.sampleMs);
    this.timer.unref();
  }

  /** A collection ran (V8's own, or this one). */
  collected(): void {
    this.lastCollection = this.now();
    this.base = this.bytes();
  }

  /** One look at the memory; runs a young collection when it is due. */
  sample(): void {
    if (!this.collect) return;
    const held = this.bytes();
    if (held < this.base) this.base = held;
    if (held - this.base < this.everyBytes || this.now() - this.lastCollection < this.quietMs) return;
    this.collect({ type: 'minor' });
    this.collections++;
    this.collected();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.observer?.disconnect();
    this.observer = undefined;
  }
}
