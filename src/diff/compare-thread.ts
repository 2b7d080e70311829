/**
 * The body of one comparing thread (compare-pool.ts): a DiffEngine of its
 * own, fed the pairs of the routes assigned to this thread, so each route's
 * learned noise, repeats and latency statistics live in one place. Bodies
 * arrive as transferred bytes; outcomes, latency ratios and one
 * acknowledgement per pair go back to the serving thread, which counts them
 * in its metrics and adds them to its store (or forwards them).
 */
import { parentPort } from 'node:worker_threads';
import { DiffEngine } from './engine.js';
import { fromThread, type FromComparing, type ToComparing } from './thread-wire.js';

const port = parentPort!;
const post = (message: FromComparing) => port.postMessage(message);

const engine = new DiffEngine({
  sink: { ingest: (outcome) => post({ type: 'outcome', outcome }) },
  // Bounded by the serving thread's hand-over queue: whatever arrives is compared.
  queueLimit: () => Number.POSITIVE_INFINITY,
  // Nobody is served on this thread: longer slices, fewer turns of the loop.
  sliceBudgetMs: 50,
  latencyRatio: (route, shadow, ratio) => post({ type: 'latency', route, shadow, ratio }),
  onPairDone: () => post({ type: 'done' }),
});

port.on('message', (message: ToComparing) => {
  if (message.type === 'pair') engine.submit(fromThread(message.pair));
});
