/**
 * The body of the validation worker (offthread.ts): runs exactly what
 * `gatewayctl validate` runs and posts the result back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isGatewayError } from '../errors.js';
import { validateConfigFile, validateConfigSource } from './validate.js';

const { file, text } = workerData as { file: string; text?: string };
try {
  const result = text === undefined ? validateConfigFile(file) : validateConfigSource({ file, text });
  parentPort!.postMessage({ result });
} catch (err) {
  parentPort!.postMessage({ unreadable: isGatewayError(err) ? err.message : String(err) });
}
