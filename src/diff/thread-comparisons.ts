/**
 * The comparing half of a shadow thread (shadow/shadow-thread.ts): a
 * DiffEngine of its own, fed the pairs of the routes assigned to this
 * thread, so each route's learned noise, repeats and latency statistics
 * live in one place. Bodies arrive as transferred bytes, each route's diff
 * settings once (thread-wire.ts, DiffConfigsSent); what comparing
 * found goes back to the serving thread, which counts it in its metrics and
 * adds it to its store (or forwards it).
 *
 * What goes back is gathered until the thread takes it (take(), at most
 * every 50 ms: shadow/shadow-thread.ts): each route's counts added up,
 * each event apart, each route's latest latency ratio, and how many pairs
 * are done. A pair's counts are about a hundred small objects; cloned one
 * pair at a time, they cost the serving thread more than the rest of a
 * copy's hand-over.
 */
import { CountsMerger } from './counts.js';
import { DiffEngine } from './engine.js';
import { DiffConfigsReceived, fromThread, type Reported, type ToComparing } from './thread-wire.js';

export class ThreadComparisons {
  private readonly engine: DiffEngine;
  private readonly counts = new CountsMerger();
  private readonly configs = new DiffConfigsReceived();
  private events: Reported[] = [];
  private ratios = new Map<string, Reported>();
  private done = 0;
  /** Told `reported` since the last take(). */
  private nudged = false;

  /** @param reported called when there is something to take(), once per take() at most. */
  constructor(
    private readonly reported: () => void,
    sliceBudgetMs: number,
  ) {
    this.engine = new DiffEngine({
      sink: {
        ingest: (outcome) => {
          if (outcome.counts) this.counts.add(outcome.counts);
          if (outcome.event) this.events.push({ type: 'event', event: outcome.event, ...(outcome.example ? { example: outcome.example } : {}) });
          this.nudge();
        },
      },
      // Bounded by the serving thread's hand-over queue: whatever arrives is compared.
      queueLimit: () => Number.POSITIVE_INFINITY,
      sliceBudgetMs,
      latencyRatio: (route, shadow, ratio) => {
        this.ratios.set(route + '\u0000' + shadow, { type: 'latency', route, shadow, ratio });
        this.nudge();
      },
      onPairDone: () => {
        this.done++;
        this.nudge();
      },
    });
  }

  private nudge(): void {
    if (this.nudged) return;
    this.nudged = true;
    this.reported();
  }

  /** A message of pairs, with the diff settings it brings. */
  submit(message: ToComparing): void {
    const { pairs, unknown } = this.configs.pairs(message);
    for (const pair of pairs) this.engine.submit(fromThread(pair));
    // Settings never sent (a bug on the serving side): not compared, but not left waiting either.
    if (unknown > 0) {
      this.done += unknown;
      this.nudge();
    }
  }

  /** Pairs that came but cannot be compared (their primary's hash was lost with a thread): done, not compared. */
  skip(count: number): void {
    if (count <= 0) return;
    this.done += count;
    this.nudge();
  }

  /** What was found since the last take(): counts first, then events, ratios, and the pairs done. */
  take(): Reported[] {
    this.nudged = false;
    const out: Reported[] = this.counts.take().map((counts) => ({ type: 'counts', counts }));
    out.push(...this.events, ...this.ratios.values());
    if (this.done > 0) out.push({ type: 'done', pairs: this.done });
    this.events = [];
    this.ratios = new Map();
    this.done = 0;
    return out;
  }
}
