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
 * - A primary answer past diff.maxBodyBytes is compared by length and
 *   SHA-256. Hashing 6 MB took the serving thread 4-7 ms; it now only
 *   copies the bytes into pieces (bodyHash), which the thread that will
 *   compare the pair hashes as they come. The pieces in flight hold the
 *   same byte budget (and at most HASH_BYTES_IN_FLIGHT); past it the hash
 *   is given up and the pair counted as not compared.
 * - A thread that dies loses its pairs, counted as failed.
 */
import type { Snapshot } from '../config/compile.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import type { BodyHash, MirroredPair, PairSink, UncomparedPair } from '../diff/pair.js';
import { countDropped, countOutcome, type OutcomeSink } from '../diff/outcome-metrics.js';
import { DiffConfigsSent, pairBytes, transferables, type Reported } from '../diff/thread-wire.js';
import type { ReportedOutcome } from '../diff/types.js';
import type { HashPieces, ThreadBatch, ToShadowThread } from './shadow-wire.js';
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
  /** Hash pieces of this turn, not yet posted, and jobs for the thread to forget. */
  hashPieces: { job: number; bytes: Uint8Array }[] = [];
  hashForget: number[] = [];
  /** Bytes of hash pieces reserved from the budget and not yet taken in by the thread. */
  hashBytes = 0;

  constructor(readonly thread: ShadowThread) {}
}

export class ComparePool implements PairSink, ThreadUser {
  private readonly options: ComparePoolOptions;
  private readonly queues = new Map<ShadowThread, ThreadQueue>();
  private outstanding = 0;
  private outstandingBytes = 0;
  /** Bytes of hash pieces reserved, in all threads. */
  private hashBytes = 0;
  /** Pieces handed back by the threads, to fill again. */
  private readonly freePieces: ArrayBuffer[] = [];
  private nextHashJob = 1;
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

  /** Bytes of hash pieces handed over (or about to be) and not yet taken in by their thread. */
  get pendingHashBytes(): number {
    return this.hashBytes;
  }

  notCompared(pair: UncomparedPair): void {
    if (this.closed) return;
    this.dropped++;
    countDropped(pair, this.options.sink, this.options.metrics);
  }

  submit(pair: MirroredPair): void {
    if (this.closed || !pair.diff.enabled || pair.shadows.length === 0) return this.forgetHash(pair);
    const bytes = pairBytes(pair);
    if (this.outstanding >= this.options.queueLimit() || (this.outstanding > 0 && this.outstandingBytes + this.hashBytes + bytes > this.options.byteLimit())) {
      this.forgetHash(pair);
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
    this.flushSoon(queue);
    queue.outbox.push(pair);
    queue.outboxTransfer.push(...transferables(pair));
    this.outstanding++;
    this.outstandingBytes += bytes;
    queue.waiting.push(bytes);
    queue.waitingBytes += bytes;
    queue.thread.hold();
  }

  /**
   * Hashes a primary answer of `route` past its capture limit on the thread
   * that will compare its pair (see the top of this file).
   */
  bodyHash(route: string): BodyHash | undefined {
    if (this.closed) return undefined;
    try {
      return new OffThreadHash(this, this.queueOf(this.options.threads.forKey(route)), this.nextHashJob++);
    } catch {
      // The threads are closing: hashed where it is read.
      return undefined;
    }
  }

  /** Takes `bytes` from the budget for a hash piece of `queue`'s thread; false when they do not fit. */
  reserveHash(queue: ThreadQueue, bytes: number): boolean {
    if (this.closed || this.queues.get(queue.thread) !== queue) return false;
    const busy = this.outstanding > 0 || this.hashBytes > 0;
    if (busy && this.outstandingBytes + this.hashBytes + bytes > this.options.byteLimit()) return false;
    if (this.hashBytes + bytes > HASH_BYTES_IN_FLIGHT) return false;
    this.hashBytes += bytes;
    queue.hashBytes += bytes;
    return true;
  }

  /** Gives back what reserveHash took: pieces the thread has taken in, or pieces never posted. */
  unreserveHash(queue: ThreadQueue, bytes: number): void {
    const back = Math.min(bytes, queue.hashBytes);
    queue.hashBytes -= back;
    this.hashBytes -= back;
  }

  /** A piece's memory: one handed back if there is one. */
  takePiece(): Buffer {
    const piece = this.freePieces.pop();
    return piece ? Buffer.from(piece) : Buffer.allocUnsafeSlow(HASH_PIECE_BYTES);
  }

  /** Queues a piece for the end of this turn; false when its thread is gone (its reservation is given back). */
  postHashPiece(queue: ThreadQueue, job: number, bytes: Uint8Array): boolean {
    if (this.closed || this.queues.get(queue.thread) !== queue) {
      this.unreserveHash(queue, bytes.buffer.byteLength);
      return false;
    }
    this.flushSoon(queue);
    queue.hashPieces.push({ job, bytes });
    return true;
  }

  /** Tells the thread to forget a job whose pair will not come. */
  forgetHashJob(queue: ThreadQueue, job: number): void {
    if (this.closed || this.queues.get(queue.thread) !== queue) return;
    this.flushSoon(queue);
    queue.hashForget.push(job);
  }

  /** A pair not handed over: the thread forgets its primary's hash job. */
  private forgetHash(pair: MirroredPair): void {
    const job = pair.primary.sha256Job;
    if (job === undefined || this.closed) return;
    try {
      this.forgetHashJob(this.queueOf(this.options.threads.forKey(pair.route)), job);
    } catch {
      // The threads are closing: nothing to forget.
    }
  }

  /** Threads with pairs or hash pieces waiting for the end of this turn of the loop. */
  private readonly flushing = new Set<ThreadQueue>();

  private flushSoon(queue: ThreadQueue): void {
    if (this.flushing.size === 0) setImmediate(this.flush);
    this.flushing.add(queue);
  }

  /** The hash pieces and pairs of this turn: a message of each per thread, the pieces first. */
  private readonly flush = (): void => {
    const queues = [...this.flushing];
    this.flushing.clear();
    for (const queue of queues) {
      const { outbox: pairs, outboxTransfer: transfer, hashPieces: pieces, hashForget: forget } = queue;
      queue.outbox = [];
      queue.outboxTransfer = [];
      queue.hashPieces = [];
      queue.hashForget = [];
      if (this.closed || this.queues.get(queue.thread) !== queue) continue;
      if (pieces.length > 0 || forget.length > 0) {
        const message: HashPieces = { type: 'hash', pieces, forget };
        // Each piece is memory of its own (takePiece), so each buffer is listed once.
        queue.thread.post(message, pieces.map((p) => p.bytes.buffer as ArrayBuffer));
      }
      if (pairs.length === 0) continue;
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
    this.hashBytes = 0;
    this.settle();
  }

  received(thread: ShadowThread, batch: ThreadBatch): void {
    const queue = this.queues.get(thread);
    for (const piece of batch.pieces) {
      if (queue) this.unreserveHash(queue, piece.byteLength);
      if (this.freePieces.length < FREE_PIECES && piece.byteLength === HASH_PIECE_BYTES) this.freePieces.push(piece);
    }
    for (const report of batch.reports) this.onReport(queue, report);
  }

  stopped(thread: ShadowThread): string | undefined {
    const queue = this.queues.get(thread);
    if (!queue) return undefined;
    this.queues.delete(thread);
    // Its hash pieces are lost with it: their pairs will find no hash, and are not compared.
    this.unreserveHash(queue, queue.hashBytes);
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

/** Pieces a primary answer past its capture limit is handed over in: a post (and a wake-up of the thread) per 256 KB. */
export const HASH_PIECE_BYTES = 256 * 1024;

/** Pieces kept to fill again, at most: each goes to a thread and comes back, rather than being allocated per answer and freed by the thread. */
const FREE_PIECES = 8;

/**
 * Hash pieces handed over and not yet hashed, at most, in bytes (within
 * limits.shadowInflightBytes). The shadow threads run at the lowest
 * priority and fall behind when the cores are busy: a 6 MB answer streams
 * through the serving thread in a few milliseconds, and its pieces wait.
 * What waits is memory, so past this the hash is given up and the pair
 * counted as not compared. 6 MB answers at 20 req/s on 2 cores: with 4 MB,
 * 385 of 388 pairs went uncompared; with 12 MB, 12-34 of 360, at 142-146
 * MB of peak RSS (127-132 hashing on the serving thread).
 */
const HASH_BYTES_IN_FLIGHT = 12 * 1024 * 1024;

/**
 * A primary answer's SHA-256, computed on the shadow thread of its route
 * (ThreadHashes): the bytes are copied into pieces of memory of their own,
 * which are transferred. A copy costs a fraction of hashing (6 MB: well
 * under a millisecond), and the answer's own chunks stay with the user's
 * socket. Past the byte budget the hash is given up.
 */
class OffThreadHash implements BodyHash {
  private piece: Buffer | undefined;
  private filled = 0;
  private posted = false;
  private over = false;

  constructor(
    private readonly pool: ComparePool,
    private readonly queue: ThreadQueue,
    private readonly job: number,
  ) {}

  update(chunk: Buffer): void {
    let at = 0;
    while (!this.over && at < chunk.length) {
      if (!this.piece) {
        if (!this.pool.reserveHash(this.queue, HASH_PIECE_BYTES)) return this.giveUp();
        this.piece = this.pool.takePiece();
        this.filled = 0;
      }
      const copied = chunk.copy(this.piece, this.filled, at);
      at += copied;
      this.filled += copied;
      if (this.filled === HASH_PIECE_BYTES) this.post();
    }
  }

  finish(): { readonly sha256Job: number } | undefined {
    if (this.over) return undefined;
    // The thread learns of a job from its first piece: an empty body still sends one.
    if (this.piece || !this.posted) this.post();
    return this.over ? undefined : { sha256Job: this.job };
  }

  abandon(): void {
    if (this.over) return;
    this.giveUp();
  }

  private post(): void {
    const bytes = this.piece ? new Uint8Array(this.piece.buffer, 0, this.filled) : new Uint8Array(new ArrayBuffer(0));
    this.piece = undefined;
    this.filled = 0;
    if (this.pool.postHashPiece(this.queue, this.job, bytes)) this.posted = true;
    else this.giveUp();
  }

  private giveUp(): void {
    this.over = true;
    if (this.piece) this.pool.unreserveHash(this.queue, HASH_PIECE_BYTES);
    this.piece = undefined;
    if (this.posted) this.pool.forgetHashJob(this.queue, this.job);
  }
}
