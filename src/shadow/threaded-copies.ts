/**
 * Shadow copies sent from a shadow thread (threads.ts).
 *
 * Reading a shadow's answer, capturing it and hashing what passes the
 * capture limit is work on every byte the shadow sends: 6 MB answers at
 * 100 req/s are 600 MB/s that the serving thread should never see. Here
 * the serving thread picks the endpoint (one view of health with primary
 * traffic), posts the copy, and gets back the answer's head and its
 * captured bytes, transferred; the thread holds the connections and
 * enforces the shadow timeout. Copies go to the first shadow thread: one
 * set of connections per endpoint, one capture budget.
 *
 * A thread that dies fails its copies in flight (outcome "error"); the next
 * copy starts a new one, and the gateway serves on.
 */
import type { CompiledUpstream } from '../config/compile.js';
import { TicketTable } from '../churn.js';
import type { UpstreamPools } from '../upstream/pools.js';
import type { Endpoint } from '../upstream/endpoint.js';
import { copyTarget, keptKeys, settleEndpoint, targetKey, type CopyAnswer, type CopyRequest, type CopySender, type CopyTarget } from './clients.js';
import { errorFromWire, errorToWire, type CopyOrder, type CopySettled, type ThreadBatch, type ToShadowThread } from './shadow-wire.js';
import type { ShadowThread, ShadowThreads, ThreadUser } from './threads.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The shadow thread that sends the copies. */
const COPYING = 0;

interface Waiting {
  readonly resolve: (answer: CopyAnswer) => void;
  readonly reject: (err: Error) => void;
  readonly settle: (ok: boolean) => void;
}

export class ThreadedCopies implements CopySender, ThreadUser {
  /** Copies handed over, by the id the thread answers with (a ticket: churn.ts says why not a Map). */
  private readonly waiting = new TicketTable<Waiting>();
  /** Copies waiting for the end of this turn of the loop (each with its target until then), and the bodies they hand over. */
  private orders: Mutable<CopyOrder>[] = [];
  /** Each endpoint's target and its key, made once (per upstream settings) rather than per copy. */
  private readonly targets = new WeakMap<Endpoint, { readonly upstream: CompiledUpstream; readonly target: CopyTarget; readonly key: string }>();
  /** The targets a copying thread has been sent, by key: later copies carry only the key. */
  private readonly told = new WeakMap<ShadowThread, Set<string>>();
  private transfer: ArrayBuffer[] = [];
  private kept: string[] | undefined;
  private closed = false;

  constructor(
    private readonly threads: ShadowThreads,
    private readonly upstreams: UpstreamPools,
    /** limits.shadowInflightBytes of the config in service: what the thread's captures in flight may hold. */
    private readonly captureBudget: () => number,
  ) {
    threads.use(this);
    // A new copying thread (a replacement too) learns which endpoints are shadowed.
    threads.onStart((thread) => {
      if (thread.index === COPYING && this.kept) thread.post({ type: 'retain', keys: this.kept });
    });
  }

  /** Resolves once the copying thread (if started) has loaded its code, or stopped. */
  ready(): Promise<void> {
    return this.threads.started(COPYING)?.ready ?? Promise.resolve();
  }

  send(upstream: CompiledUpstream, copy: CopyRequest, captureBytes: number | undefined): Promise<CopyAnswer> {
    const pool = this.upstreams.poolFor(upstream);
    const endpoint = pool.pick();
    pool.begin(endpoint);
    return new Promise((resolve, reject) => {
      const settle = (ok: boolean) => settleEndpoint(pool, endpoint, ok);
      let thread: ShadowThread;
      try {
        if (this.closed) throw new Error('the gateway is closing');
        thread = this.threads.at(COPYING);
      } catch (err) {
        settle(false);
        reject(err as Error);
        return;
      }
      const id = this.waiting.add({ resolve, reject, settle });
      thread.hold();
      if (this.orders.length === 0) setImmediate(this.flush);
      const { target, key } = this.targetOf(upstream, endpoint);
      this.orders.push({ id, key, target, copy, captureBytes });
      // A body shared with other copies is copied; its last copy takes the memory itself.
      const buffer = copy.body?.buffer;
      if (copy.handOver && buffer instanceof ArrayBuffer && copy.body!.byteOffset === 0 && copy.body!.byteLength === buffer.byteLength) this.transfer.push(buffer);
    });
  }

  private targetOf(upstream: CompiledUpstream, endpoint: Endpoint): { readonly target: CopyTarget; readonly key: string } {
    let made = this.targets.get(endpoint);
    if (made?.upstream !== upstream) {
      const target = copyTarget(upstream, endpoint);
      this.targets.set(endpoint, (made = { upstream, target, key: targetKey(target) }));
    }
    return made;
  }

  /** The copies of this turn of the loop, handed over in one message. */
  private readonly flush = (): void => {
    const copies = this.orders;
    const transfer = this.transfer;
    this.orders = [];
    this.transfer = [];
    if (copies.length === 0) return;
    try {
      const thread = this.threads.at(COPYING);
      let told = this.told.get(thread);
      if (!told) this.told.set(thread, (told = new Set()));
      const telling = new Set<string>();
      for (const order of copies) {
        if (told.has(order.key) || telling.has(order.key)) order.target = undefined;
        else telling.add(order.key);
      }
      thread.post({ type: 'send', copies, captureBudget: this.captureBudget() } satisfies ToShadowThread, transfer);
      // Only once posted: a post that throws sent nothing, and the next copy must carry its target.
      for (const key of telling) told.add(key);
    } catch (err) {
      for (const order of copies) this.settled(this.threads.started(COPYING), { id: order.id, error: errorToWire(err) });
    }
  };

  /** The upstreams shadowed now; with any, the copying thread starts (loading its code takes a while the first copies should not wait for). */
  retainOnly(upstreams: Iterable<CompiledUpstream>): void {
    const kept = keptKeys(this.upstreams, upstreams);
    this.kept = [...kept];
    // The thread forgets the targets it no longer keeps; a copy to one of them later sends it again.
    const copying = this.threads.started(COPYING);
    const told = copying && this.told.get(copying);
    if (told) for (const key of told) if (!kept.has(key)) told.delete(key);
    const message = { type: 'retain', keys: this.kept } satisfies ToShadowThread;
    if (this.kept.length > 0 && !this.closed && !this.threads.isClosed) this.threads.at(COPYING).post(message);
    else this.threads.started(COPYING)?.post(message);
  }

  /** Fails the copies in flight; the threads are closed by whoever made them. */
  async close(): Promise<void> {
    this.closed = true;
    this.failAll(this.threads.started(COPYING), 'the gateway is closing');
  }

  received(thread: ShadowThread, batch: ThreadBatch): void {
    for (const copy of batch.settled) this.settled(thread, copy);
  }

  stopped(thread: ShadowThread): string | undefined {
    if (thread.index !== COPYING) return undefined;
    const count = this.waiting.size;
    this.failAll(undefined, 'the shadow thread stopped');
    return count > 0 ? `${count} copies in flight (failed)` : undefined;
  }

  private settled(thread: ShadowThread | undefined, copy: CopySettled): void {
    const waiting = this.waiting.take(copy.id);
    if (!waiting) return;
    thread?.letGo();
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

  private failAll(thread: ShadowThread | undefined, why: string): void {
    const waiting = this.waiting.takeAll();
    this.orders = [];
    this.transfer = [];
    thread?.letGo(waiting.length);
    for (const w of waiting) {
      w.settle(false);
      w.reject(new Error(why));
    }
  }
}
