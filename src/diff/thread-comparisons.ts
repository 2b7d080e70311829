/**
 * The comparing half of a shadow thread (shadow/shadow-thread.ts): a
 * DiffEngine of its own, fed the pairs of the routes assigned to this
 * thread, so each route's learned noise, repeats and latency statistics
 * live in one place. Bodies arrive as transferred bytes; outcomes, latency
 * ratios and one acknowledgement per pair go back to the serving thread,
 * which counts them in its metrics and adds them to its store (or forwards
 * them).
 */
import { DiffEngine } from './engine.js';
import { fromThread, type Reported } from './thread-wire.js';
import type { MirroredPair } from './pair.js';

export class ThreadComparisons {
  private readonly engine: DiffEngine;

  constructor(report: (reported: Reported) => void, sliceBudgetMs: number) {
    this.engine = new DiffEngine({
      sink: { ingest: (outcome) => report({ type: 'outcome', outcome }) },
      // Bounded by the serving thread's hand-over queue: whatever arrives is compared.
      queueLimit: () => Number.POSITIVE_INFINITY,
      sliceBudgetMs,
      latencyRatio: (route, shadow, ratio) => report({ type: 'latency', route, shadow, ratio }),
      onPairDone: () => report({ type: 'done' }),
    });
  }

  submit(pairs: readonly MirroredPair[]): void {
    for (const pair of pairs) this.engine.submit(fromThread(pair));
  }
}
