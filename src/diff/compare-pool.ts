/**
 * Comparison off the serving thread: the shadow path's PairSink.
 *
 * Decoding, parsing and comparing a pair (a JSON array of megabytes, an
 * HTML tree) is one unsliceable step; on the thread that serves users it
 * stalled every request behind it. Here the serving thread only hands the
 * pair over: its bodies are transferred (not copied) to one of a few
 * comparing threads (node:worker_threads), each running a DiffEngine.
 *
 * - A route always goes to the same thread, so its learned noise, repeats
 *   and latency statistics stay whole.
 * - The hand-over is bounded, in pairs (limits.compareQueue) and in bytes
 *   (limits.shadowInflightBytes, the shadow path's own budget, once more):
 *   a pair that does not fit is dropped and counted, never queued.
 * - Outcomes come back as plain JSON and are counted and stored here, in
 *   the process's one metrics registry and store (or forwarder).
 * - A thread that dies (a bug, its heap bound) is replaced and counted; its
 *   pairs are lost and counted as failed, the gateway serves on.
 * - Threads start with the first pair: a gateway that shadows nothing, or
 *   does not compare, pays nothing for them.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Snapshot } from '../config/compile.js';
import { EMBEDDED } from '../embedded.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import type { MirroredPair, PairSink, UncomparedPair } from './pair.js';
import { countDropped, countOutcome, type OutcomeSink } from './outcome-metrics.js';
import { pairBytes, transferables, type FromComparing, type Reported, type ToComparing } from './thread-wire.js';

const THREAD = new URL('./compare-thread.js', import.meta.url);


/** Heap one comparing thread may use: past it the thread is ended and replaced, not the process. */
const THREAD_HEAP_MB = 256;

/**
 * Its young generation: a pair's parsed trees live for one comparison, and
 * V8's default let the thread's heap grow to 42-48 MB at 100 pairs a second
 * of 100 KB JSON. At 8 MB it stayed under 20 MB, with more but shorter
 * scavenges and no more time in them, on a thread that only takes what
 * serving leaves.
 */
const THREAD_YOUNG_MB = 8;

export interface ComparePoolOptions {
  readonly sink: OutcomeSink;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /** Pairs handed over and not yet compared, at most (limits.compareQueue). */
  readonly queueLimit: () => number;
  /** Their bytes, at most (limits.shadowInflightBytes). */
  readonly byteLimit: () => number;
  /** Comparing threads (limits.compareThreads); 0 sizes them to the cores. Read when the first thread starts. */
  readonly threads: () => number;
  /** Serving processes on this machine (serve --workers N): the cores are shared out among their pools. */
  readonly processes?: number;
  /** Heap bound of each thread, MB (default 256). */
  readonly heapMb?: number;
}

/** Whether a snapshot compares anything: its comparing threads are then started before the first pair. */
export const comparesAny = (snapshot: Snapshot): boolean => snapshot.routes.some((r) => r.shadows.length > 0 && r.diff.enabled);

/** Threads for `configured` (0: automatic): the cores this process may count on, less the one serving, at least 1, at most 4. */
export function compareThreads(configured: number, processes = 1, cores = availableParallelism()): number {
  if (configured > 0) return configured;
  return Math.max(1, Math.min(4, Math.floor(cores / Math.max(1, processes)) - 1));
}

class ComparingThread {
  readonly worker: Worker;
  /** Bytes of each pair handed over, oldest first: the thread compares in order. */
  readonly waiting: number[] = [];
  /** Pairs of this turn of the loop, not yet posted, and the memory they take along. */
  outbox: MirroredPair[] = [];
  outboxTransfer: ArrayBuffer[] = [];
  waitingBytes = 0;
  /** Resolves once the thread has loaded its code (or stopped). */
  readonly ready: Promise<void>;
  private loaded!: () => void;

  constructor(
    heapMb: number,
    onMessage: (thread: ComparingThread, message: Exclude<FromComparing, { type: 'ready' }>) => void,
    onExit: (thread: ComparingThread, error: Error | undefined) => void,
  ) {
    // The single-file binary carries the thread's code; the source tree has its file.
    this.worker = new Worker(EMBEDDED.compareWorker ?? THREAD, {
      eval: EMBEDDED.compareWorker !== undefined,
      resourceLimits: { maxOldGenerationSizeMb: heapMb, maxYoungGenerationSizeMb: THREAD_YOUNG_MB },
    });
    let failure: Error | undefined;
    this.ready = new Promise((resolve) => (this.loaded = resolve));
    this.worker.on('message', (message: FromComparing) => (message.type === 'ready' ? this.loaded() : onMessage(this, message)));
    this.worker.on('error', (err) => (failure = err));
    this.worker.once('exit', (code) => {
      this.loaded();
      onExit(this, failure ?? (code !== 0 ? new Error(`exited with code ${code}`) : undefined));
    });
  }

  /** A thread with pairs keeps its process alive until they are compared; an idle one does not. */
  busy(): void {
    if (this.waiting.length === 1) this.worker.ref();
  }
  idle(): void {
    if (this.waiting.length === 0) this.worker.unref();
  }
}

export class ComparePool implements PairSink {
  private readonly options: ComparePoolOptions;
  private threads: (ComparingThread | undefined)[] = [];
  private outstanding = 0;
  private outstandingBytes = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Totals, for tests and the bench. */
  compared = 0;
  dropped = 0;
  failed = 0;
  restarts = 0;

  constructor(options: ComparePoolOptions) {
    this.options = options;
  }

  /** Pairs handed over and not yet compared. */
  get pending(): number {
    return this.outstanding;
  }

  /** Their bytes. */
  get pendingBytes(): number {
    return this.outstandingBytes;
  }

  /** Threads running now. */
  get running(): number {
    return this.threads.filter((t) => t !== undefined).length;
  }

  notCompared(pair: UncomparedPair): void {
    if (this.closed) return;
    this.dropped++;
    countDropped(pair, this.options.sink, this.options.metrics);
  }

  submit(pair: MirroredPair): void {
    if (this.closed || !pair.diff.enabled || pair.shadows.length === 0) return;
    const bytes = pairBytes(pair);
    if (this.outstanding >= this.options.queueLimit() || (this.outstanding > 0 && this.outstandingBytes + bytes > this.options.byteLimit())) {
      this.notCompared(pair);
      return;
    }
    const thread = this.threadFor(pair.route);
    if (this.flushing.size === 0) setImmediate(this.flush);
    this.flushing.add(thread);
    thread.outbox.push(pair);
    thread.outboxTransfer.push(...transferables(pair));
    this.outstanding++;
    this.outstandingBytes += bytes;
    thread.waiting.push(bytes);
    thread.waitingBytes += bytes;
    thread.busy();
  }

  /** Threads with pairs waiting for the end of this turn of the loop. */
  private readonly flushing = new Set<ComparingThread>();

  /** The pairs of this turn, one message per thread. */
  private readonly flush = (): void => {
    const threads = [...this.flushing];
    this.flushing.clear();
    for (const thread of threads) {
      const { outbox: pairs, outboxTransfer: transfer } = thread;
      thread.outbox = [];
      thread.outboxTransfer = [];
      if (this.closed || this.threads.indexOf(thread) < 0) continue;
      try {
        thread.worker.postMessage({ type: 'pairs', pairs } satisfies ToComparing, transfer);
      } catch {
        // Something in one pair cannot cross (a bug): that pair is lost, not the others.
        for (const pair of pairs) this.postOne(thread, pair);
      }
    }
  };

  private postOne(thread: ComparingThread, pair: MirroredPair): void {
    try {
      thread.worker.postMessage({ type: 'pairs', pairs: [pair] } satisfies ToComparing, transferables(pair));
    } catch (err) {
      this.failed++;
      this.options.logger?.error('diff.failed', `handing a mirrored pair to comparison failed: ${(err as Error).message}`, { route: pair.route });
      // It never reaches the thread: its place in the order is given back as if compared.
      const at = thread.waiting.indexOf(pairBytes(pair));
      const bytes = at >= 0 ? thread.waiting.splice(at, 1)[0]! : 0;
      thread.waitingBytes -= bytes;
      thread.idle();
      this.release(1, bytes);
    }
  }

  /**
   * Starts the threads now: a thread takes a while to load its code (seconds
   * on a busy machine), which the first pairs should not wait for.
   */
  async warm(): Promise<void> {
    if (this.closed) return;
    if (this.threads.length === 0) this.threads = new Array(compareThreads(this.options.threads(), this.options.processes)).fill(undefined);
    for (let i = 0; i < this.threads.length; i++) this.threads[i] ??= this.startThread();
    await Promise.all(this.threads.map((t) => t?.ready));
  }

  /** Resolves once every pair handed over is compared (or lost with its thread). */
  idle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** idle(), or the deadline, whichever comes first. */
  drain(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      void this.idle().then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.filter((t): t is ComparingThread => t !== undefined);
    this.threads = [];
    this.outstanding = 0;
    this.outstandingBytes = 0;
    this.settle();
    await Promise.all(threads.map((t) => t.worker.terminate().catch(() => undefined)));
  }

  /** The thread of a route: by a hash of its name, so a route's state lives in one thread. */
  private threadFor(route: string): ComparingThread {
    if (this.threads.length === 0) this.threads = new Array(compareThreads(this.options.threads(), this.options.processes)).fill(undefined);
    let h = 0;
    for (let i = 0; i < route.length; i++) h = (h * 31 + route.charCodeAt(i)) | 0;
    const index = Math.abs(h) % this.threads.length;
    return (this.threads[index] ??= this.startThread());
  }

  private startThread(): ComparingThread {
    return new ComparingThread(this.options.heapMb ?? THREAD_HEAP_MB, this.onMessage, this.onExit);
  }

  private readonly onMessage = (thread: ComparingThread, message: Exclude<FromComparing, { type: 'ready' }>): void => {
    for (const report of message.reports) this.onReport(thread, report);
  };

  private onReport(thread: ComparingThread, message: Reported): void {
    if (this.closed) return;
    switch (message.type) {
      case 'outcome':
        if (this.options.metrics) countOutcome(this.options.metrics, message.outcome);
        try {
          this.options.sink.ingest(message.outcome);
        } catch (err) {
          this.options.logger?.error('diff.failed', `storing a comparison failed: ${(err as Error).message}`);
        }
        return;
      case 'latency':
        this.options.metrics?.shadowLatencyRatio.labels(message.route, message.shadow).set(message.ratio);
        return;
      case 'done': {
        const bytes = thread.waiting.shift() ?? 0;
        thread.waitingBytes -= bytes;
        thread.idle();
        this.release(1, bytes);
        this.compared++;
        return;
      }
    }
  }

  private readonly onExit = (thread: ComparingThread, error: Error | undefined): void => {
    const index = this.threads.indexOf(thread);
    if (this.closed || index < 0) return;
    // The next pair of its routes starts a new one.
    this.threads[index] = undefined;
    this.restarts++;
    this.failed += thread.waiting.length;
    this.options.metrics?.shadowThreadRestarts.labels('compare').inc();
    this.options.logger?.error('diff.thread', `a comparing thread stopped (${error?.message ?? 'no reason given'}); ${thread.waiting.length} pairs were not compared; a new thread takes over`);
    this.release(thread.waiting.length, thread.waitingBytes);
  };

  private release(pairs: number, bytes: number): void {
    this.outstanding -= pairs;
    this.outstandingBytes -= bytes;
    if (this.outstanding === 0) this.settle();
  }

  private settle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
