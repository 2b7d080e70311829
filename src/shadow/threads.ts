/**
 * The shadow path's threads (node:worker_threads): everything the shadow
 * does beyond teeing the request and capturing the primary's answer (past
 * diff.maxBodyBytes, copying it over to be hashed) happens in them, never
 * on the thread that serves users.
 *
 * - Each thread compares the mirrored pairs of the routes hashed to it
 *   (compare-pool.ts), so a route's learned noise, repeats and latency
 *   statistics stay whole. The first also sends the copies and reads their
 *   answers (threaded-copies.ts).
 * - They are sized to the cores (limits.compareThreads), started with the
 *   first copy or pair: a gateway that shadows nothing pays nothing for them.
 * - A thread that dies (a bug, its heap bound) is counted and replaced by
 *   the next use; what it held fails and is counted, the gateway serves on.
 * - Whoever makes the threads closes them, after the copies and the pool
 *   that use them.
 */
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { EMBEDDED } from '../embedded.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import { exposeCollection } from './spent-buffers.js';
import type { FromShadowThread, ThreadBatch, ToShadowThread } from './shadow-wire.js';

const BODY = new URL('./shadow-thread.js', import.meta.url);

/**
 * Heap one thread may use: past it the thread is ended and replaced, not
 * the process. The bound also keeps the thread's heap close to what it
 * holds: V8 scales how far a heap may grow past its live set with its
 * bound (src/heap/heap-controller.cc, MaxGrowingFactor: 1.3x at 256 MB on
 * 64-bit, up to 4x from 2 GB), so the threads need no process-wide growth
 * flag, which would bound the serving thread too and cost it CPU
 * (bench/README.md, "Heap growth").
 */
const THREAD_HEAP_MB = 256;

/**
 * Its young generation. Its short-lived objects are a copy's request,
 * socket and answer, and a pair's parsed trees. With V8's default a thread
 * that only copied reached 58 MB of heap under 1,000 copies in flight to a
 * 500 ms shadow (41 MB at 8 MB), and one that only compared 42-48 MB at 100
 * pairs a second of 100 KB JSON (under 20 MB at 8 MB), with more but
 * shorter scavenges and no more time in them.
 */
export const THREAD_YOUNG_MB = 8;

/**
 * Lets the threads started from now on keep THREAD_YOUNG_MB.
 *
 * A process-wide `--max-semi-space-size` (the systemd unit's
 * NODE_OPTIONS, and what `serve` starts itself over with on Node 22.15
 * and later) outranks an isolate's own young-generation bound: V8 reads
 * the flag whenever it sets up an isolate's heap, so with the unit's 8 MB
 * each shadow thread got 16 MB of new space instead of 8, on Node 20 and
 * 24 alike. The flag is for the serving thread, whose heap is set up by
 * then and keeps it (its new space stayed at 16 MB under load after the
 * flag was cleared, on both); 0 is V8's "not set", under which each new
 * isolate takes its resourceLimits.
 */
function ownYoungGenerations(): void {
  setFlagsFromString('--max-semi-space-size=0');
}

/** Threads for `configured` (0: automatic): the cores this process may count on, less the one serving, at least 1, at most 4. */
export function shadowThreadCount(configured: number, processes = 1, cores = availableParallelism()): number {
  if (configured > 0) return configured;
  return Math.max(1, Math.min(4, Math.floor(cores / Math.max(1, processes)) - 1));
}

export interface ShadowThreadsOptions {
  /** limits.compareThreads; 0 sizes them to the cores. Read when the first thread starts. */
  readonly count: () => number;
  /** Serving processes on this machine (serve --workers N): the cores are shared out among their threads. */
  readonly processes?: number;
  /** Heap bound of each thread, MB (default 256). */
  readonly heapMb?: number;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
}

/** What uses the threads: told of each batch a thread sends back, and of a thread's end. */
export interface ThreadUser {
  received(thread: ShadowThread, batch: ThreadBatch): void;
  /** The thread stopped: what it held is lost. Returns what that was, for the log ("3 copies in flight"), if anything. */
  stopped(thread: ShadowThread): string | undefined;
}

/** One thread, from the serving side. */
export class ShadowThread {
  /** Resolves once the thread has loaded its code (or stopped). */
  readonly ready: Promise<void>;
  private readonly worker: Worker;
  /** Copies and pairs it holds: while any, it keeps the process alive. */
  private held = 0;

  constructor(
    readonly index: number,
    heapMb: number,
    onBatch: (thread: ShadowThread, batch: ThreadBatch) => void,
    onExit: (thread: ShadowThread, error: Error | undefined) => void,
  ) {
    // The single-file binary carries the thread's code; the source tree has its file.
    this.worker = new Worker(EMBEDDED.shadowWorker ?? BODY, {
      eval: EMBEDDED.shadowWorker !== undefined,
      resourceLimits: { maxOldGenerationSizeMb: heapMb, maxYoungGenerationSizeMb: THREAD_YOUNG_MB },
    });
    // Only work in flight keeps a process alive; closing the gateway ends the thread.
    this.worker.unref();
    let loaded!: () => void;
    this.ready = new Promise((resolve) => (loaded = resolve));
    let failure: Error | undefined;
    this.worker.on('message', (message: FromShadowThread) => (message.type === 'ready' ? loaded() : onBatch(this, message)));
    this.worker.on('error', (err) => (failure = err));
    this.worker.once('exit', (code) => {
      loaded();
      onExit(this, failure ?? (code !== 0 ? new Error(`exited with code ${code}`) : undefined));
    });
  }

  /** Posts a message; throws what postMessage throws (something in it cannot be cloned). */
  post(message: ToShadowThread, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  /** Work handed over: the process stays alive until it is let go. */
  hold(): void {
    if (this.held++ === 0) this.worker.ref();
  }

  letGo(count = 1): void {
    this.held = Math.max(0, this.held - count);
    if (this.held === 0) this.worker.unref();
  }

  terminate(): Promise<unknown> {
    return this.worker.terminate().catch(() => undefined);
  }
}

export class ShadowThreads {
  private threads: (ShadowThread | undefined)[] = [];
  private readonly users: ThreadUser[] = [];
  private readonly startListeners: ((thread: ShadowThread) => void)[] = [];
  private closed = false;
  /** Threads that stopped and were replaced, for tests. */
  restarts = 0;

  constructor(private readonly options: ShadowThreadsOptions) {}

  /** Tells `user` of every batch and every stop, from now on. */
  use(user: ThreadUser): void {
    this.users.push(user);
  }

  /** Calls `listener` with each thread started from now on (a replacement too). */
  onStart(listener: (thread: ShadowThread) => void): void {
    this.startListeners.push(listener);
  }

  /** Threads there are to be (sized when the first starts). */
  get size(): number {
    return this.sized().length;
  }

  /** Threads running now. */
  get running(): number {
    return this.threads.filter((t) => t !== undefined).length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Thread `index`, started if it was not; throws once closed. */
  at(index: number): ShadowThread {
    if (this.closed) throw new Error('the gateway is closing');
    const threads = this.sized();
    return (threads[index] ??= this.start(index));
  }

  /** Thread `index` if it runs. */
  started(index: number): ShadowThread | undefined {
    return this.threads[index];
  }

  /** The thread of a key (a route's name): always the same one, so the key's state lives in one place. */
  forKey(key: string): ShadowThread {
    let h = 0;
    for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0;
    return this.at(Math.abs(h) % this.size);
  }

  /** Starts them all now: a thread takes a while to load its code (seconds on a busy machine), which the first work should not wait for. */
  async warm(): Promise<void> {
    if (this.closed) return;
    const threads = this.sized();
    for (let i = 0; i < threads.length; i++) this.at(i);
    await Promise.all(this.threads.map((t) => t?.ready));
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.filter((t): t is ShadowThread => t !== undefined);
    this.threads = [];
    await Promise.all(threads.map((t) => t.terminate()));
  }

  private sized(): (ShadowThread | undefined)[] {
    if (this.threads.length === 0) this.threads = new Array(shadowThreadCount(this.options.count(), this.options.processes)).fill(undefined);
    return this.threads;
  }

  private start(index: number): ShadowThread {
    // Its answers' read buffers are collected a few megabytes at a time (spent-buffers.ts).
    exposeCollection();
    ownYoungGenerations();
    const thread = new ShadowThread(index, this.options.heapMb ?? THREAD_HEAP_MB, this.onBatch, this.onExit);
    this.threads[index] = thread;
    for (const listener of this.startListeners) listener(thread);
    return thread;
  }

  private readonly onBatch = (thread: ShadowThread, batch: ThreadBatch): void => {
    if (this.threads[thread.index] !== thread) return;
    for (const user of this.users) user.received(thread, batch);
  };

  private readonly onExit = (thread: ShadowThread, error: Error | undefined): void => {
    if (this.closed || this.threads[thread.index] !== thread) return;
    // The next use starts a new one.
    this.threads[thread.index] = undefined;
    this.restarts++;
    this.options.metrics?.shadowThreadRestarts.labels('shadow').inc();
    const lost = this.users.map((user) => user.stopped(thread)).filter((what): what is string => what !== undefined);
    const why = error?.message ?? 'no reason given';
    this.options.logger?.error('shadow.thread', `a shadow thread stopped (${why})${lost.length ? `; lost: ${lost.join(', ')}` : ''}; a new thread takes over`);
  };
}
