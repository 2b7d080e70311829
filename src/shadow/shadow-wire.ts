/** Messages between the serving thread and a shadow thread (threads.ts). */
import type { Reported, ToComparing } from '../diff/thread-wire.js';
import type { CopyAnswer, CopyRequest, CopyTarget } from './clients.js';

/**
 * One copy to send. Its target travels once per thread (with the first
 * copy that needs it), then only its key: a target carries its TLS CA
 * bundle, kilobytes that were cloned for every copy.
 */
export interface CopyOrder {
  readonly id: number;
  readonly key: string;
  readonly target: CopyTarget | undefined;
  readonly copy: CopyRequest;
  readonly captureBytes: number | undefined;
}

/** How one copy ended: its answer (and whether the endpoint answered well), or why not. */
export type CopySettled = { readonly id: number; readonly ok: boolean; readonly answer: CopyAnswer } | { readonly id: number; readonly error: WireError };

/** The copies of one turn of the serving thread's loop. */
export interface SendCopies {
  readonly type: 'send';
  readonly copies: readonly CopyOrder[];
  /** Bytes the copies in flight may hold in captured answers (limits.shadowInflightBytes, as it is now). */
  readonly captureBudget: number;
}

/**
 * Both ways, what one turn of a thread's event loop produced travels as one
 * message: a message wakes the other thread, and on a machine with few
 * cores each wake-up of the copying thread took the serving thread's core
 * for a while (83 µs a copy, in a profile at 2,500 copies a second).
 */
export type ToShadowThread = SendCopies | { readonly type: 'retain'; readonly keys: string[] } | HashPieces | ToComparing;

/**
 * Pieces of primary answers past their capture limit, to hash on the
 * thread that will compare their pairs (compare-pool.ts, bodyHash), and the
 * jobs to forget. Posted before the pairs of the same turn, so a pair
 * finds its whole hash.
 */
export interface HashPieces {
  readonly type: 'hash';
  readonly pieces: readonly { readonly job: number; readonly bytes: Uint8Array }[];
  readonly forget: readonly number[];
}

/**
 * What a shadow thread sends back in one turn of its loop: copies settled
 * (their captured answers transferred with them) and, at most every 50 ms,
 * what comparing reported.
 */
export interface ThreadBatch {
  readonly type: 'batch';
  readonly settled: readonly CopySettled[];
  readonly reports: readonly Reported[];
  /**
   * Hash pieces taken in since the last batch, handed back (transferred) to
   * be filled again: no piece is allocated per answer. Their byte lengths
   * are given back to the byte budget.
   */
  readonly pieces: readonly ArrayBuffer[];
}

export type FromShadowThread = { readonly type: 'ready' } | ThreadBatch;

/** What the shadow path reads of an error (outcome and description), as plain data. */
export interface WireError {
  readonly name?: string;
  readonly code?: string;
  readonly message: string;
  readonly cause?: { readonly code?: string; readonly message?: string };
}

export function errorToWire(err: unknown): WireError {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause && typeof e.cause === 'object' ? { code: e.cause.code, message: e.cause.message } : undefined;
  return { name: e?.name, code: e?.code, message: e?.message ?? String(err), ...(cause ? { cause } : {}) };
}

export function errorFromWire(wire: WireError): Error {
  const error = new Error(wire.message) as Error & { code?: string; cause?: unknown };
  if (wire.name) error.name = wire.name;
  if (wire.code) error.code = wire.code;
  if (wire.cause) error.cause = wire.cause;
  return error;
}
