/**
 * Upstream failures on the user's path, shared by forwarded requests and
 * upgrades: what a failure (a deadline of deadlines.ts included) means for
 * the client (status) and for the metrics (reason).
 */
import type { UpstreamErrorReason } from '../metrics/registry.js';
import { isCertificateError } from '../tls/upstream.js';
import { UpstreamTimeoutError } from './deadlines.js';

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

export interface UpstreamFault {
  readonly reason: UpstreamErrorReason;
  readonly status: 502 | 503 | 504;
  readonly message: string;
}

const POOL_EXHAUSTED: UpstreamFault = { reason: 'pool_exhausted', status: 503, message: 'no upstream connection free (pool exhausted)' };

/** What an upstream request's error means: 504 for a response timeout, else 502. */
export function classifyUpstreamError(err: unknown, connected: boolean): UpstreamFault {
  if (err instanceof UpstreamTimeoutError) {
    if (err.phase === 'queue') return POOL_EXHAUSTED;
    return err.phase === 'connect'
      ? { reason: 'connect', status: 502, message: 'upstream connect timed out' }
      : { reason: 'timeout', status: 504, message: 'upstream timed out' };
  }
  if (isCertificateError(err)) return { reason: 'connect', status: 502, message: 'upstream certificate rejected' };
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  if (CONNECT_ERRORS.has(code) || (!connected && code === 'ECONNRESET')) {
    return { reason: 'connect', status: 502, message: 'upstream unavailable' };
  }
  return { reason: 'reset', status: 502, message: 'upstream connection failed' };
}
