/**
 * Comparison off the serving thread: the shadow path's PairSink.
 *
 * Decoding, parsing and comparing a pair (a JSON array of megabytes, an
 * HTML tree) is one unsliceable step; on the thread that serves users it
 * stalled every request behind it. Here the serving thread only hands the
 * pair over: its bodies are transferred (not copied) to a shadow thread
 * (threads.ts), which compares it in a DiffEngine of its own.
 *
 * - A route always goes to the same thread, so its learned noise, repeats
 *   and latency statistics stay whole.
 * - The hand-over is bounded, in pairs (limits.compareQueue) and in bytes
 *   (limits.shadowInflightBytes, the shadow path's own budget, once more):
 *   a pair that does not fit is dropped and counted, never queued.
 * - Outcomes come back as plain data (each route's counts added up per
 *   turn of the thread's loop, each event apart) and are counted and
 *   stored here, in the process's one metrics registry and store (or
 *   forwarder).
 * - A thread that dies loses its pairs, counted as failed.
 */
import type { Snapshot } from '../config/compile.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import type { MirroredPair, PairSink, UncomparedPair } from '../diff/pair.js';
import { countDropped, countOutcome, type OutcomeSink } from '../diff/outcome-metrics.js';
import { DiffConfigsSent, pairBytes, transferables, type Reported } from '../diff/thread-wire.js';
import type { ReportedOutcome } from '../diff/types.js';
import type { ThreadBatch, ToShadowThread } from './shadow-wire.js';
import type { ShadowThread, ShadowThreads, ThreadUser } from './threads.js';

export interface ComparePoolOptions {
  /** The threads that compare (and copy). */
  readonly threads: ShadowThreads;
  readonly sink: OutcomeSink;
  readonly metrics?: GatewayMetrics;
  readonly logger?: Logger;
  /** Pairs handed over and not yet compared, at most (limits.compareQueue). */
  readonly queueLimit: () => number;
  /** Their bytes, at most (limits.shadowInflightBytes). */
  readonly byteLimit: () => number;
}

/** Whether a snapshot compares anything: its shadow threads are then started before the first pair. */
export const comparesAny = (snapshot: Snapshot): boolean => snapshot.routes.some((r) => r.shadows.length > 0 && r.diff.enabled);

/** What one thread holds for comparison. */
class ThreadQueue {
  /** Bytes of each pair handed over, oldest first: the thread compares in order. */
  readonly waiting: number[] = [];
  waitingBytes = 0;
  /** Pairs of this turn of the loop, not yet posted, and the memory they take along. */
  outbox: MirroredPair[] = [];
  outboxTransfer: ArrayBuffer[] = [];
  /** The diff settings this thread was sent. */
  readonly configs = new DiffConfigsSent();

  constructor(readonly thread: ShadowThread) {}
}

export class ComparePool implements PairSink, ThreadUser {
  private readonly options: ComparePoolOptions;
  private readonly queues = new Map<ShadowThread, ThreadQueue>();
  private outstanding = 0;
  private outstandingBytes = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Totals, for tests and the bench. */
  compared = 0;
  dropped = 0;
  failed = 0;

  constructor(options: ComparePoolOptions) {
    this.options = options;
    options.threads.use(this);
  }

  /** Pairs handed over and not yet compared. */
  get pending(): number {
    return this.outstanding;
  }

  /** Their bytes. */
  get pendingBytes(): number {
    return this.outstandingBytes;
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
    let queue: ThreadQueue;
    try {
      queue = this.queueOf(this.options.threads.forKey(pair.route));
    } catch {
      // The threads are closing.
      return;
    }
    if (this.flushing.size === 0) setImmediate(this.flush);
    this.flushing.add(queue);
    queue.outbox.push(pair);
    queue.outboxTransfer.push(...transferables(pair));
    this.outstanding++;
    this.outstandingBytes += bytes;
    queue.waiting.push(bytes);
    queue.waitingBytes += bytes;
    queue.thread.hold();
  }

  /** Threads with pairs waiting for the end of this turn of the loop. */
  private readonly flushing = new Set<ThreadQueue>();

  /** The pairs of this turn, one message per thread. */
  private readonly flush = (): void => {
    const queues = [...this.flushing];
    this.flushing.clear();
    for (const queue of queues) {
      const { outbox: pairs, outboxTransfer: transfer } = queue;
      queue.outbox = [];
      queue.outboxTransfer = [];
      if (this.closed || this.queues.get(queue.thread) !== queue) continue;
      try {
        const { message, posted } = queue.configs.wire(pairs);
        queue.thread.post(message satisfies ToShadowThread, transfer);
        posted();
      } catch {
        // Something in one pair cannot cross (a bug): that pair is lost, not the others.
        for (const pair of pairs) this.postOne(queue, pair);
      }
    }
  };

  private postOne(queue: ThreadQueue, pair: MirroredPair): void {
    try {
      const { message, posted } = queue.configs.wire([pair]);
      queue.thread.post(message satisfies ToShadowThread, transferables(pair));
      posted();
    } catch (err) {
      this.failed++;
      this.options.logger?.error('diff.failed', `handing a mirrored pair to comparison failed: ${(err as Error).message}`, { route: pair.route });
      // It never reaches the thread: its place in the order is given back as if compared.
      const at = queue.waiting.indexOf(pairBytes(pair));
      const bytes = at >= 0 ? queue.waiting.splice(at, 1)[0]! : 0;
      queue.waitingBytes -= bytes;
      queue.thread.letGo();
      this.release(1, bytes);
    }
  }

  /** Starts the threads now, so the first pairs do not wait for them to load their code. */
  warm(): Promise<void> {
    return this.closed ? Promise.resolve() : this.options.threads.warm();
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

  /** Forgets what is pending; the threads are closed by whoever made them. */
  async close(): Promise<void> {
    this.closed = true;
    for (const queue of this.queues.values()) queue.thread.letGo(queue.waiting.length);
    this.queues.clear();
    this.outstanding = 0;
    this.outstandingBytes = 0;
    this.settle();
  }

  received(thread: ShadowThread, batch: ThreadBatch): void {
    if (batch.reports.length === 0) return;
    const queue = this.queues.get(thread);
    for (const report of batch.reports) this.onReport(queue, report);
  }

  stopped(thread: ShadowThread): string | undefined {
    const queue = this.queues.get(thread);
    if (!queue) return undefined;
    this.queues.delete(thread);
    const lost = queue.waiting.length;
    this.failed += lost;
    this.release(lost, queue.waitingBytes);
    return lost > 0 ? `${lost} pairs not compared` : undefined;
  }

  private queueOf(thread: ShadowThread): ThreadQueue {
    let queue = this.queues.get(thread);
    if (!queue) this.queues.set(thread, (queue = new ThreadQueue(thread)));
    return queue;
  }

  private onReport(queue: ThreadQueue | undefined, message: Reported): void {
    if (this.closed) return;
    switch (message.type) {
      case 'counts':
        if (this.options.metrics) countOutcome(this.options.metrics, message.counts);
        this.store({ counts: message.counts });
        return;
      case 'event':
        this.store({ event: message.event, ...(message.example ? { example: message.example } : {}) });
        return;
      case 'latency':
        this.options.metrics?.shadowLatencyRatio.labels(message.route, message.shadow).set(message.ratio);
        return;
      case 'done': {
        if (!queue) return;
        for (let i = 0; i < message.pairs; i++) {
          const bytes = queue.waiting.shift() ?? 0;
          queue.waitingBytes -= bytes;
          queue.thread.letGo();
          this.release(1, bytes);
          this.compared++;
        }
        return;
      }
    }
  }

  private store(outcome: ReportedOutcome): void {
    try {
      this.options.sink.ingest(outcome);
    } catch (err) {
      this.options.logger?.error('diff.failed', `storing a comparison failed: ${(err as Error).message}`);
    }
  }

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
