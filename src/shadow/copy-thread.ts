/**
 * The body of the copying thread (copy-threads.ts): sends shadow copies and
 * reads their answers, so the shadow's bytes never pass through the thread
 * that serves users. Captured answers go back transferred, not copied; each
 * copy's health verdict goes back with it.
 */
import { parentPort } from 'node:worker_threads';
import { OriginAgents } from './clients.js';
import { errorToWire, type FromCopying, type ToCopying } from './copy-wire.js';

const port = parentPort!;
const origins = new OriginAgents();
const post = (message: FromCopying, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

port.on('message', (message: ToCopying) => {
  switch (message.type) {
    case 'send': {
      let ok = false;
      const body = message.copy.body && Buffer.from(message.copy.body.buffer, message.copy.body.byteOffset, message.copy.body.byteLength);
      origins.send(message.target, { ...message.copy, body }, message.captureBytes, (good) => (ok = good)).then(
        (answer) => {
          const buffer = answer.capture?.body.buffer;
          post({ type: 'answer', id: message.id, ok, answer }, buffer instanceof ArrayBuffer && buffer.byteLength > 0 ? [buffer] : []);
        },
        (err: unknown) => post({ type: 'failed', id: message.id, error: errorToWire(err) }),
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
