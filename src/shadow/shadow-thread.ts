/**
 * The body of a shadow thread (threads.ts): one isolate that sends shadow
 * copies and reads their answers (thread-copies.ts) and compares mirrored
 * pairs (diff/thread-comparisons.ts). Each isolate costs a process about
 * 10 MB idle and a young generation of its own under load; copying and
 * comparing in one took the gateway under a saturating 100% shadow from
 * 176-181 to 156-158 MB of peak RSS, with as many requests served.
 *
 * Comparing runs in slices, between which the copies' answers are read: a
 * slice delays reading them by up to its length, which the stall watch
 * (stall-watch.ts) counts, so an answer read late gives no latency sample.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { ThreadComparisons } from '../diff/thread-comparisons.js';
import { pairBytes, type Reported } from '../diff/thread-wire.js';
import type { CopySettled, FromShadowThread, ToShadowThread } from './shadow-wire.js';
import { SpentBuffers } from './spent-buffers.js';
import { ThreadCopies } from './thread-copies.js';
import { ThreadHashes } from './thread-hashes.js';

/**
 * The lowest CPU priority: the shadow's work takes only what serving
 * leaves. Each message wakes this thread, and on a machine with few cores
 * a woken thread at the serving thread's priority takes its core at once
 * (in a profile at 2,500 copies a second, handing a copy over cost the
 * serving thread 83 µs; 3-6 µs at nice 5). Against nice 5, side by side
 * on two cores: an unrelated route's p95 with 150 KB answers shadowed at
 * 100 req/s rose 1.30-1.57x against 1.63-1.86x; under a saturating 100%
 * shadow users' requests did not suffer (4,231 against 4,438 req/s, within
 * the spread, in one run; 3,822 against 2,991 in another), but fewer
 * copies got through: 34-45k against 45-51k per 10 s, the rest dropped
 * and counted at the in-flight bound. Users first, so 19. Latencies read
 * late give no sample (stall-watch.ts). Linux keeps a nice value per thread; elsewhere this call
 * would lower the whole process, so only there.
 */
const NICE = 19;

/** Longest a run of comparisons keeps this thread's copies waiting (a single large body can take longer: it is not split). */
const COMPARE_SLICE_MS = 10;

if (process.platform === 'linux') {
  try {
    setPriority(NICE);
  } catch {
    // Not allowed here: run at normal priority.
  }
}

const port = parentPort!;

/**
 * What comparing found (counts, events, pairs done) goes back at most once
 * per this window; copies settled go back every turn, as they release
 * in-flight room. Below saturation pairs arrive one a turn, so each turn's
 * report was one message with one pair's counts, about a hundred small
 * objects for the serving thread to deserialize and add up: with 150 KB
 * answers shadowed at 100 req/s, messages to and from this thread were 23%
 * of the serving thread's CPU, and paced the handler of these batches took
 * half its time (bench/README.md, "Reports paced, and a gateway 20 seconds
 * old"). The first report after a quiet window goes at once, so a lone
 * pair is not held back. Events reach the diff stream up to this late.
 */
const REPORT_WINDOW_MS = 50;

/** What this turn of the loop produced, sent back in one message. */
let settled: CopySettled[] = [];
let transfer: ArrayBuffer[] = [];
let flushing = false;
/** Comparing has something to report. */
let reportsWaiting = false;
let lastReportAt = Number.NEGATIVE_INFINITY;
let reportTimer: NodeJS.Timeout | undefined;

function soon(): void {
  if (flushing) return;
  flushing = true;
  setImmediate(flush);
}

/** Flushes now when the window since the last report has passed, else once it has. */
function reportSoon(): void {
  reportsWaiting = true;
  const wait = lastReportAt + REPORT_WINDOW_MS - performance.now();
  if (wait <= 0) soon();
  else reportTimer ??= setTimeout(() => {
    reportTimer = undefined;
    soon();
  }, Math.ceil(wait));
}

function flush(): void {
  flushing = false;
  let reports: Reported[] = [];
  if (reportsWaiting) {
    const now = performance.now();
    if (now >= lastReportAt + REPORT_WINDOW_MS) {
      reports = comparisons.take();
      reportsWaiting = false;
      lastReportAt = now;
    } else {
      // A timer may fire a fraction of a millisecond early: wait for the rest.
      reportSoon();
    }
  }
  const pieces = hashes.takePieces();
  if (settled.length === 0 && reports.length === 0 && pieces.length === 0) return;
  const message: FromShadowThread = { type: 'batch', settled, reports, pieces };
  const buffers = pieces.length > 0 ? [...transfer, ...pieces] : transfer;
  settled = [];
  transfer = [];
  port.postMessage(message, buffers);
}

/** Read chunks and compared pairs: their memory is given back a few megabytes at a time. */
const spent = new SpentBuffers();

const copies = new ThreadCopies(
  (copy, buffer) => {
    soon();
    settled.push(copy);
    if (buffer) transfer.push(buffer);
  },
  (bytes) => spent.spent(bytes),
);
const comparisons = new ThreadComparisons(reportSoon, COMPARE_SLICE_MS);
/** Primary answers past their capture limit, hashed here rather than on the serving thread. */
const hashes = new ThreadHashes();

port.on('message', (message: ToShadowThread) => {
  switch (message.type) {
    case 'send':
      copies.send(message);
      return;
    case 'retain':
      copies.retainOnly(message.keys);
      return;
    case 'hash':
      hashes.add(message);
      // The pieces go back with the next batch, to be filled again, and the budget they held with them.
      soon();
      return;
    case 'pairs': {
      const { pairs, lost } = hashes.fill(message.pairs);
      comparisons.submit({ ...message, pairs });
      comparisons.skip(lost);
      // Counted on arrival: dead once compared, by the next collection or the one after.
      for (const pair of message.pairs) spent.spent(pairBytes(pair));
      return;
    }
  }
});

// Loaded: copies and pairs no longer wait for the code.
port.postMessage({ type: 'ready' } satisfies FromShadowThread);
