/**
 * Validation off the serving thread, for reloads. Parsing and checking a
 * large config took seconds and hundreds of megabytes (a 60,000-route file:
 * 23.7 s at 614 MB), and on the serving thread every request waited. A
 * worker thread runs the same validateConfigFile/validateConfigSource that
 * `gatewayctl validate` and the first load run, bounded in time and heap:
 * past either bound the config is refused like any invalid one and the
 * running one stays.
 */
import { Worker } from 'node:worker_threads';
import { EMBEDDED } from '../embedded.js';
import { ConfigUnreadableError } from '../errors.js';
import type { Diagnostic } from './diagnostics.js';
import { deepFreeze, type ValidationResult } from './validate.js';

export interface ValidationBounds {
  /** Longest a validation may take. */
  readonly timeoutMs: number;
  /** Largest heap (V8 old generation) it may use, MB. */
  readonly maxHeapMb: number;
}

export const VALIDATION_BOUNDS: ValidationBounds = { timeoutMs: 30_000, maxHeapMb: 512 };

const WORKER = new URL('./validate-worker.js', import.meta.url);

/** Validates the file (or `text` as that file) in a worker thread. Rejects only when the file is unreadable. */
export function validateOffThread(input: { file: string; text?: string }, bounds: ValidationBounds = VALIDATION_BOUNDS): Promise<ValidationResult> {
  const source = { file: input.file, text: input.text ?? '' };
  const refused = (code: string, message: string): ValidationResult => {
    const diagnostic: Diagnostic = { severity: 'error', code, message, path: '', file: input.file, line: 1, column: 1 };
    return { source, config: undefined, diagnostics: [diagnostic] };
  };
  return new Promise((resolve, reject) => {
    // The single-file binary carries the worker's code; the source tree has its file.
    const worker = new Worker(EMBEDDED.validateWorker ?? WORKER, {
      eval: EMBEDDED.validateWorker !== undefined,
      workerData: input,
      resourceLimits: { maxOldGenerationSizeMb: bounds.maxHeapMb },
    });
    let settled = false;
    const settle = (finish: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      finish();
    };
    const timer = setTimeout(
      () => settle(() => resolve(refused('too-costly', `validation took longer than ${bounds.timeoutMs} ms; the config is too large or too complex`))),
      bounds.timeoutMs,
    );
    worker.once('message', (message: { result?: ValidationResult; unreadable?: string }) =>
      settle(() => {
        if (message.result) {
          const { result } = message;
          resolve({ ...result, config: result.config && deepFreeze(result.config) });
        } else reject(new ConfigUnreadableError(input.file, message.unreadable ?? 'cannot read config'));
      }),
    );
    worker.once('error', (err: NodeJS.ErrnoException) =>
      settle(() =>
        resolve(
          err.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? refused('too-costly', `validation needed more than ${bounds.maxHeapMb} MB; the config is too large or too complex`)
            : refused('internal', `validation failed: ${err.message}`),
        ),
      ),
    );
    worker.once('exit', (code) => settle(() => resolve(refused('internal', `validation stopped (exit code ${code})`))));
  });
}
