/**
 * The body of the copying thread (copy-threads.ts): sends shadow copies and
 * reads their answers, so the shadow's bytes never pass through the thread
 * that serves users. Captured answers go back transferred, not copied; each
 * copy's health verdict goes back with it.
 */
import { parentPort } from 'node:worker_threads';
import { OriginAgents } from './clients.js';
import { errorToWire, type FromCopying, type ToCopying } from './copy-wire.js';
import { StallWatch } from './stall-watch.js';

const port = parentPort!;
const origins = new OriginAgents();
const stalls = new StallWatch();
const post = (message: FromCopying, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

port.on('message', (message: ToCopying) => {
  switch (message.type) {
    case 'send': {
      let ok = false;
      const body = message.copy.body && Buffer.from(message.copy.body.buffer, message.copy.body.byteOffset, message.copy.body.byteLength);
      const sent = performance.now();
      stalls.begin();
      origins.send(message.target, { ...message.copy, body }, message.captureBytes, (good) => (ok = good)).then(
        (answer) => {
          const stalledMs = stalls.end(sent);
          const buffer = answer.capture?.body.buffer;
          const measured = stalledMs > 0 ? { ...answer, stalledMs } : answer;
          post({ type: 'answer', id: message.id, ok, answer: measured }, buffer instanceof ArrayBuffer && buffer.byteLength > 0 ? [buffer] : []);
        },
        (err: unknown) => {
          stalls.end(sent);
          post({ type: 'failed', id: message.id, error: errorToWire(err) });
        },
      );
      return;
    }
    case 'retain':
      origins.retainOnly(new Set(message.keys));
      return;
  }
});

// Loaded: copies no longer wait for the code.
post({ type: 'ready' });
