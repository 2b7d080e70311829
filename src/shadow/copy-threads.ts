/**
 * Shadow copies sent from a thread of their own (node:worker_threads).
 *
 * Reading a shadow's answer, capturing it and hashing what passes the
 * capture limit is work on every byte the shadow sends: 6 MB answers at
 * 100 req/s are 600 MB/s that the serving thread should never see. Here
 * the serving thread picks the endpoint (one view of health with primary
 * traffic), posts the copy, and gets back the answer's head and its
 * captured bytes, transferred; the copying thread holds the connections
 * and enforces the shadow timeout. It runs at normal priority: the shadow's
 * latency is measured there, and compared with the primary's.
 *
 * A copying thread that dies fails its copies in flight (outcome "error"),
 * is counted and replaced by the next copy; the gateway serves on.
 */
import { Worker } from 'node:worker_threads';
import type { CompiledUpstream } from '../config/compile.js';
import { TicketTable } from '../churn.js';
import { EMBEDDED } from '../embedded.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import type { UpstreamPools } from '../upstream/pools.js';
import { boundHeapGrowth } from './heap-growth.js';
import { copyTarget, keptKeys, settleEndpoint, type CopyAnswer, type CopyRequest, type CopySender } from './clients.js';
import { errorFromWire, errorToWire, type CopyOrder, type CopySettled, type FromCopying, type ToCopying } from './copy-wire.js';

const THREAD = new URL('./copy-thread.js', import.meta.url);

/**
 * The copying thread's young generation. Its objects are a copy's request,
 * socket and answer, which live as long as the shadow takes; with V8's
 * default the thread's heap reached 58 MB under 1,000 copies in flight to a
 * 500 ms shadow, at 8 MB 41 MB.
 */
const THREAD_YOUNG_MB = 8;

interface Waiting {
  readonly resolve: (answer: CopyAnswer) => void;
  readonly reject: (err: Error) => void;
  readonly settle: (ok: boolean) => void;
}

export class ThreadedCopies implements CopySender {
  private worker: Worker | undefined;
  /** Copies handed over, by the id the thread answers with (a ticket: churn.ts says why not a Map). */
  private readonly waiting = new TicketTable<Waiting>();
  /** Copies waiting for the end of this turn of the loop, and the bodies they hand over. */
  private orders: CopyOrder[] = [];
  private transfer: ArrayBuffer[] = [];
  private kept: string[] | undefined;
  private closed = false;
  private started: Promise<void> = Promise.resolve();

  constructor(
    private readonly upstreams: UpstreamPools,
    private readonly metrics: GatewayMetrics,
    private readonly logger: Logger,
    /** limits.shadowInflightBytes of the config in service: what the copying thread's captures in flight may hold. */
    private readonly captureBudget: () => number,
  ) {}

  /** Resolves once the thread started (if one was) has loaded its code, or stopped. */
  ready(): Promise<void> {
    return this.started;
  }

  send(upstream: CompiledUpstream, copy: CopyRequest, captureBytes: number | undefined): Promise<CopyAnswer> {
    const pool = this.upstreams.poolFor(upstream);
    const endpoint = pool.pick();
    pool.begin(endpoint);
    return new Promise((resolve, reject) => {
      const settle = (ok: boolean) => settleEndpoint(pool, endpoint, ok);
      let worker: Worker;
      try {
        worker = this.thread();
      } catch (err) {
        settle(false);
        reject(err as Error);
        return;
      }
      const id = this.waiting.add({ resolve, reject, settle });
      if (this.waiting.size === 1) worker.ref();
      if (this.orders.length === 0) setImmediate(this.flush);
      this.orders.push({ id, target: copyTarget(upstream, endpoint), copy, captureBytes });
      // A body shared with other copies is copied; its last copy takes the memory itself.
      const buffer = copy.body?.buffer;
      if (copy.handOver && buffer instanceof ArrayBuffer && copy.body!.byteOffset === 0 && copy.body!.byteLength === buffer.byteLength) this.transfer.push(buffer);
    });
  }

  /** The copies of this turn of the loop, handed over in one message. */
  private readonly flush = (): void => {
    const copies = this.orders;
    const transfer = this.transfer;
    this.orders = [];
    this.transfer = [];
    if (copies.length === 0) return;
    try {
      this.thread().postMessage({ type: 'send', copies, captureBudget: this.captureBudget() } satisfies ToCopying, transfer);
    } catch (err) {
      for (const order of copies) this.settled({ id: order.id, error: errorToWire(err) });
    }
  };

  /** The upstreams shadowed now; with any, the thread starts (loading its code takes a while the first copies should not wait for). */
  retainOnly(upstreams: Iterable<CompiledUpstream>): void {
    this.kept = [...keptKeys(this.upstreams, upstreams)];
    if (this.kept.length > 0 && !this.closed) this.thread().postMessage({ type: 'retain', keys: this.kept } satisfies ToCopying);
    else this.worker?.postMessage({ type: 'retain', keys: this.kept } satisfies ToCopying);
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.failAll('the gateway is closing');
    await worker?.terminate().catch(() => undefined);
  }

  /** Started with the first copy: a gateway that shadows nothing pays nothing for it. */
  private thread(): Worker {
    if (this.closed) throw new Error('the gateway is closing');
    if (this.worker) return this.worker;
    // This process shadows: its heaps grow less (heap-growth.ts says why; once is enough, again is harmless).
    boundHeapGrowth();
    const worker = new Worker(EMBEDDED.copyWorker ?? THREAD, {
      eval: EMBEDDED.copyWorker !== undefined,
      resourceLimits: { maxYoungGenerationSizeMb: THREAD_YOUNG_MB },
    });
    // Only copies in flight keep a process alive; closing the gateway ends the thread.
    worker.unref();
    let failure: Error | undefined;
    let loaded!: () => void;
    this.started = new Promise((resolve) => (loaded = resolve));
    worker.on('message', (message: FromCopying) => (message.type === 'ready' ? loaded() : this.onMessage(message)));
    worker.on('error', (err) => (failure = err));
    worker.once('exit', (code) => {
      loaded();
      if (this.worker !== worker) return;
      this.worker = undefined;
      if (this.closed) return;
      this.metrics.shadowThreadRestarts.labels('copy').inc();
      const why = failure?.message ?? `exited with code ${code}`;
      this.logger.error('shadow.thread', `the copying thread stopped (${why}); ${this.waiting.size} copies in flight failed; a new thread takes over`);
      this.failAll(`the copying thread stopped: ${why}`);
    });
    if (this.kept) worker.postMessage({ type: 'retain', keys: this.kept } satisfies ToCopying);
    return (this.worker = worker);
  }

  private onMessage(message: Exclude<FromCopying, { type: 'ready' }>): void {
    for (const copy of message.copies) this.settled(copy);
  }

  private settled(copy: CopySettled): void {
    const waiting = this.waiting.take(copy.id);
    if (!waiting) return;
    if (this.waiting.size === 0) this.worker?.unref();
    if ('error' in copy) {
      waiting.settle(false);
      waiting.reject(errorFromWire(copy.error));
      return;
    }
    waiting.settle(copy.ok);
    const { answer } = copy;
    const capture = answer.capture;
    // Structured cloning made the Buffer a Uint8Array over the transferred memory.
    waiting.resolve(capture ? { ...answer, capture: { ...capture, body: Buffer.from(capture.body.buffer, capture.body.byteOffset, capture.body.byteLength) } } : answer);
  }

  private failAll(why: string): void {
    const waiting = this.waiting.takeAll();
    this.orders = [];
    this.transfer = [];
    for (const w of waiting) {
      w.settle(false);
      w.reject(new Error(why));
    }
  }
}
