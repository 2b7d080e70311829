/**
 * The copying half of a shadow thread (shadow-thread.ts): sends shadow
 * copies and reads their answers, so the shadow's bytes never pass through
 * the thread that serves users. Each answer goes back with its captured
 * bytes (transferred, not copied) and its endpoint's health verdict.
 */
import { OriginAgents, type CopyAnswer, type CopyTarget } from './clients.js';
import { errorToWire, type CopyOrder, type CopySettled, type SendCopies } from './shadow-wire.js';
import { StallWatch } from './stall-watch.js';
import { outcomeOfStatus } from '../upstream/pool.js';

export class ThreadCopies {
  private readonly origins: OriginAgents;
  private readonly stalls = new StallWatch();
  /** Targets by key: each comes once, with the first copy to it (shadow-wire.ts). */
  private readonly targets = new Map<string, CopyTarget>();

  constructor(
    /** A copy settled; `buffer` is its captured answer's memory, to transfer with it. */
    private readonly settled: (copy: CopySettled, buffer?: ArrayBuffer) => void,
    /** Told the size of each chunk of an answer read, once it is captured or counted. */
    read?: (bytes: number) => void,
  ) {
    this.origins = new OriginAgents(read);
  }

  send(message: SendCopies): void {
    this.origins.captures.limit = message.captureBudget;
    for (const order of message.copies) this.sendOne(order);
  }

  /** Retires the connections of endpoints no longer shadowed. */
  retainOnly(keys: readonly string[]): void {
    const kept = new Set(keys);
    this.origins.retainOnly(kept);
    for (const key of this.targets.keys()) if (!kept.has(key)) this.targets.delete(key);
  }

  private sendOne(order: CopyOrder): void {
    if (order.target) this.targets.set(order.key, order.target);
    const target = this.targets.get(order.key);
    if (!target) {
      this.settled({ id: order.id, error: errorToWire(new Error(`no target for ${order.key} in the shadow thread`)) });
      return;
    }
    void this.exchange(order, target);
  }

  // Awaited in a method, not in callbacks made per copy (clients.ts says why).
  private async exchange(order: CopyOrder, target: CopyTarget): Promise<void> {
    const body = order.copy.body && Buffer.from(order.copy.body.buffer, order.copy.body.byteOffset, order.copy.body.byteLength);
    const sent = performance.now();
    this.stalls.begin();
    let answer: CopyAnswer;
    try {
      answer = await this.origins.send(target, { ...order.copy, body }, order.captureBytes, order.key);
    } catch (err) {
      this.stalls.end(sent);
      this.settled({ id: order.id, error: errorToWire(err) });
      return;
    }
    const stalledMs = this.stalls.end(sent);
    const buffer = answer.capture?.body.buffer;
    const measured = stalledMs > 0 ? { ...answer, stalledMs } : answer;
    this.settled({ id: order.id, ok: outcomeOfStatus(answer.status) === 'ok', answer: measured }, buffer instanceof ArrayBuffer && buffer.byteLength > 0 ? buffer : undefined);
  }
}
