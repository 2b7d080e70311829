/**
 * Upstream failures on the user's path, shared by forwarded requests and
 * upgrades: the connect and response deadlines, and what a failure means
 * for the client (status) and for the metrics (reason).
 */
import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import type { CompiledUpstream } from '../config/compile.js';
import type { UpstreamErrorReason } from '../metrics/registry.js';

import { isCertificateError } from '../tls/upstream.js';
import { UpstreamTimeoutError } from './deadlines.js';

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

/**
 * Arms the connect deadline (while the socket connects) and then the
 * response deadline (socket idle) on an upstream request that has its
 * socket. `state.connected` records whether the connection was made.
 * For upgrades; forwarded requests use the sweep in deadlines.ts.
 */
export function armUpstreamTimeouts(proxyReq: ClientRequest, upstream: CompiledUpstream, state: { connected: boolean }): void {
  const socket = proxyReq.socket as Socket | null;
  const responseTimeout = upstream.timeoutMs;
  if (socket && (socket.connecting || (socket as Socket & { pending?: boolean }).pending)) {
    proxyReq.setTimeout(Math.min(upstream.config.connectTimeoutMs, responseTimeout), () => {
      proxyReq.destroy(new UpstreamTimeoutError(state.connected ? 'response' : 'connect'));
    });
    socket.once('connect', () => {
      state.connected = true;
      proxyReq.setTimeout(responseTimeout);
    });
  } else {
    state.connected = true;
    proxyReq.setTimeout(responseTimeout, () => proxyReq.destroy(new UpstreamTimeoutError('response')));
  }
}

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
