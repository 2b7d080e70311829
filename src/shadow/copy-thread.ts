/**
 * The body of the copying thread (copy-threads.ts): sends shadow copies and
 * reads their answers, so the shadow's bytes never pass through the thread
 * that serves users. Captured answers go back transferred, not copied; each
 * copy's health verdict goes back with it.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { OriginAgents } from './clients.js';
import { errorToWire, type CopyOrder, type CopySettled, type FromCopying, type ToCopying } from './copy-wire.js';
import { StallWatch } from './stall-watch.js';

const COPYING_NICE = 5;

// Each message wakes this thread, and on a machine with few cores a woken
// thread at the serving thread's priority takes its core at once: in a
// profile at 2,500 copies a second, handing a copy over cost the serving
// thread 83 µs. A little lower (nice 5) it waits its turn instead (3-6 µs
// a copy), and still gets a fair share of the cores: at nice 10 and more,
// on a busy machine, copies came late and fewer pairs were compared. Linux
// keeps a nice value per thread; elsewhere this call would lower the whole
// process, so only there.
if (process.platform === 'linux') {
  try {
    setPriority(COPYING_NICE);
  } catch {
    // Not allowed here: copy at normal priority.
  }
}

const port = parentPort!;
const origins = new OriginAgents();
const stalls = new StallWatch();
const post = (message: FromCopying, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

/** What settled in this turn of the loop, sent back together. */
let settled: CopySettled[] = [];
let transfer: ArrayBuffer[] = [];
function report(copy: CopySettled, buffer?: ArrayBuffer): void {
  if (settled.length === 0) setImmediate(flush);
  settled.push(copy);
  if (buffer) transfer.push(buffer);
}
function flush(): void {
  const copies = settled;
  const buffers = transfer;
  settled = [];
  transfer = [];
  post({ type: 'settled', copies }, buffers);
}

function send(order: CopyOrder): void {
  let ok = false;
  const body = order.copy.body && Buffer.from(order.copy.body.buffer, order.copy.body.byteOffset, order.copy.body.byteLength);
  const sent = performance.now();
  stalls.begin();
  origins.send(order.target, { ...order.copy, body }, order.captureBytes, (good) => (ok = good)).then(
    (answer) => {
      const stalledMs = stalls.end(sent);
      const buffer = answer.capture?.body.buffer;
      const measured = stalledMs > 0 ? { ...answer, stalledMs } : answer;
      report({ id: order.id, ok, answer: measured }, buffer instanceof ArrayBuffer && buffer.byteLength > 0 ? buffer : undefined);
    },
    (err: unknown) => {
      stalls.end(sent);
      report({ id: order.id, error: errorToWire(err) });
    },
  );
}

port.on('message', (message: ToCopying) => {
  switch (message.type) {
    case 'send':
      origins.captures.limit = message.captureBudget;
      for (const order of message.copies) send(order);
      return;
    case 'retain':
      origins.retainOnly(new Set(message.keys));
      return;
  }
});

// Loaded: copies no longer wait for the code.
post({ type: 'ready' });
