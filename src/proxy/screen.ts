/**
 * What a request must be before it is routed, for plain requests and
 * upgrades alike. Node's parser (llhttp, strict mode) already refuses most
 * malformed framing: Content-Length with Transfer-Encoding, any repeated
 * Content-Length, non-digit lengths, a Transfer-Encoding whose last coding
 * is not chunked, bare CR or LF, obs-fold, whitespace before a colon. What
 * it lets through, and what is refused here:
 *
 * - HTTP versions other than 1.0 and 1.1 (llhttp parses 0.9 and 2.0 lines): 505.
 * - TRACE (and CONNECT, which Node hands to its own event): 405.
 * - more header lines than limits.maxHeaderCount: 431 (Node's own cap would
 *   drop the extra lines from `req.headers` yet still frame the body with them).
 * - a Transfer-Encoding other than exactly `chunked` (llhttp accepts
 *   `gzip, chunked`), or any Transfer-Encoding on HTTP/1.0: 400.
 * - a declared body over limits.maxBodyBytes: 413, before a byte is read.
 * - more than one Host line (Node keeps the first and drops the rest) or a
 *   Host value that is not a host: 400.
 * - a target that does not normalize (see path.ts): 400.
 *
 * Framing headers are left in canonical form: `content-length` without
 * leading zeros, `transfer-encoding: chunked`. A well-formed request costs
 * a few comparisons and one pass over the header names.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { LimitsConfig } from '../config/types.js';
import { isValidHost, normalizeTarget } from './path.js';

export interface Refusal {
  readonly ok: false;
  readonly status: number;
  readonly message: string;
  /** Label value of gatewayctl_rejected_requests_total: a fixed word. */
  readonly reason: string;
  readonly headers?: Record<string, string>;
}

export interface Admitted {
  readonly ok: true;
  readonly path: string;
  readonly query: string;
  /** Whether the request carries a body (declared length > 0, or chunked). */
  readonly hasBody: boolean;
  readonly chunked: boolean;
}

export const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

/** `OPTIONS *`: not refused, answered by the gateway (200 with Allow). */
export const SERVER_OPTIONS: Refusal = { ok: false, status: 200, message: '', reason: 'server_options' };

const refusal = (status: number, message: string, reason: string, headers?: Record<string, string>): Refusal =>
  headers ? { ok: false, status, message, reason, headers } : { ok: false, status, message, reason };

const VERSION = refusal(505, 'only HTTP/1.0 and HTTP/1.1 are served', 'version');
const TOO_MANY_HEADERS = refusal(431, 'too many request headers', 'header_count');
const TE_ON_10 = refusal(400, 'bad request: Transfer-Encoding in an HTTP/1.0 request', 'framing');
const TE_VALUE = refusal(400, 'bad request: Transfer-Encoding other than "chunked"', 'framing');
const TE_AND_CL = refusal(400, 'bad request: both Content-Length and Transfer-Encoding', 'framing');
const BAD_LENGTH = refusal(400, 'bad request: malformed Content-Length', 'framing');
const TOO_LARGE = refusal(413, 'request body too large', 'body_size');
const TWO_HOSTS = refusal(400, 'bad request: more than one Host header', 'host');
const BAD_HOST = refusal(400, 'bad request: malformed Host header', 'host');

/** How many Host lines a request has: Node keeps the first of several and drops the rest. */
export function hostLines(rawHeaders: readonly string[]): number {
  let hosts = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) hosts++;
  }
  return hosts;
}

export function screenRequest(req: IncomingMessage, limits: LimitsConfig, keepEscapedSlashes = false): Admitted | Refusal {
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor > 1) return VERSION;
  const method = req.method;
  if (method === 'TRACE' || method === 'CONNECT') {
    return refusal(405, `method ${method} is not allowed`, 'method', { allow: ALLOW });
  }
  const raw = req.rawHeaders;
  if (raw.length > limits.maxHeaderCount * 2) return TOO_MANY_HEADERS;

  const headers = req.headers;
  let chunked = false;
  const te = headers['transfer-encoding'];
  if (te !== undefined) {
    if (req.httpVersionMinor === 0) return TE_ON_10;
    if (te.length !== 7 || te.toLowerCase() !== 'chunked') return TE_VALUE;
    if (headers['content-length'] !== undefined) return TE_AND_CL;
    if (te !== 'chunked') headers['transfer-encoding'] = 'chunked';
    chunked = true;
  }
  let hasBody = chunked;
  const cl = headers['content-length'];
  if (cl !== undefined) {
    // llhttp has already refused anything but digits; checked again, cheaply.
    if (cl.length === 0) return BAD_LENGTH;
    if (cl.length > 15) return /^\d+$/.test(cl) ? TOO_LARGE : BAD_LENGTH;
    let length = 0;
    for (let i = 0; i < cl.length; i++) {
      const digit = cl.charCodeAt(i) - 48;
      if (digit < 0 || digit > 9) return BAD_LENGTH;
      length = length * 10 + digit;
    }
    if (length > limits.maxBodyBytes) return TOO_LARGE;
    if (cl.length > 1 && cl.charCodeAt(0) === 48 /* 0 */) headers['content-length'] = String(length);
    hasBody = length > 0;
  }

  if (hostLines(raw) > 1) return TWO_HOSTS;
  const host = headers.host;
  if (host !== undefined && !isValidHost(host)) return BAD_HOST;

  const target = normalizeTarget(req.url ?? '', keepEscapedSlashes);
  if (!target.ok) {
    if (req.url === '*') return method === 'OPTIONS' ? SERVER_OPTIONS : refusal(400, 'bad request: "*" is a target for OPTIONS only', 'bad_path');
    return refusal(400, `bad request: ${target.reason}`, 'bad_path');
  }
  // absolute-form: the target's authority is the host (RFC 9112 section 3.2.2).
  if (target.authority !== undefined) headers.host = target.authority;
  return { ok: true, path: target.path, query: target.query, hasBody, chunked };
}

/** Paths were screened with %2F kept because some route keeps it; this route does not. */
export function escapedSlashRefused(snapshot: { keepEscapedSlashes: boolean }, route: { keepEscapedSlashes: boolean }, path: string): boolean {
  return snapshot.keepEscapedSlashes && !route.keepEscapedSlashes && path.includes('%2F');
}

/**
 * The same screen for an HTTP/2 request. Framing is HTTP/2's (nghttp2 has
 * refused malformed frames, connection-specific headers and a
 * content-length that disagrees with the DATA frames), so what is left:
 * the method, the header count, a declared body over the limit, the
 * authority, and the target.
 */
export function screenH2Request(
  method: string,
  url: string,
  headers: IncomingHttpHeaders,
  headerCount: number,
  hasBody: boolean,
  limits: LimitsConfig,
  keepEscapedSlashes = false,
): Admitted | Refusal {
  if (method === 'TRACE' || method === 'CONNECT') return refusal(405, `method ${method} is not allowed`, 'method', { allow: ALLOW });
  if (headerCount > limits.maxHeaderCount) return TOO_MANY_HEADERS;
  const cl = headers['content-length'];
  if (cl !== undefined && (!/^\d{1,15}$/.test(cl) || Number(cl) > limits.maxBodyBytes)) return /^\d+$/.test(cl) ? TOO_LARGE : BAD_LENGTH;
  const authority = headers[':authority'] ?? headers.host;
  if (typeof authority === 'string' && !isValidHost(authority)) return BAD_HOST;
  const target = normalizeTarget(url, keepEscapedSlashes);
  if (!target.ok) {
    if (url === '*') return method === 'OPTIONS' ? SERVER_OPTIONS : refusal(400, 'bad request: "*" is a target for OPTIONS only', 'bad_path');
    return refusal(400, `bad request: ${target.reason}`, 'bad_path');
  }
  return { ok: true, path: target.path, query: target.query, hasBody, chunked: cl === undefined && hasBody };
}
