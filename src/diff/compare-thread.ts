/**
 * The body of one comparing thread (compare-pool.ts): a DiffEngine of its
 * own, fed the pairs of the routes assigned to this thread, so each route's
 * learned noise, repeats and latency statistics live in one place. Bodies
 * arrive as transferred bytes; outcomes, latency ratios and one
 * acknowledgement per pair go back to the serving thread, which counts them
 * in its metrics and adds them to its store (or forwards them).
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { DiffEngine } from './engine.js';
import { fromThread, type FromComparing, type Reported, type ToComparing } from './thread-wire.js';

// On a machine with few cores a comparing thread competes with the serving
// thread for CPU (a 150 KB pair costs milliseconds). At the lowest priority
// it only takes what serving leaves; when that is not enough the hand-over
// queue fills and pairs are dropped and counted. Linux keeps a nice value
// per thread; elsewhere this call would lower the whole process, so only there.
if (process.platform === 'linux') {
  try {
    setPriority(19);
  } catch {
    // Not allowed here: compare at normal priority.
  }
}

const port = parentPort!;
let reports: Reported[] = [];
const post = (report: Reported) => {
  if (reports.length === 0) setImmediate(flush);
  reports.push(report);
};
function flush(): void {
  const batch = reports;
  reports = [];
  port.postMessage({ type: 'reports', reports: batch } satisfies FromComparing);
}

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
  if (message.type === 'pairs') for (const pair of message.pairs) engine.submit(fromThread(pair));
});

// Loaded: pairs no longer wait for the code.
port.postMessage({ type: 'ready' } satisfies FromComparing);
