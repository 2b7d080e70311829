/**
 * What every admin route is and how it answers: JSON bodies, and the one
 * way an error becomes an answer (its catalogue code decides the status).
 * Routes throw GatewayError; AdminServer catches and answers through
 * sendAdminError, so no route picks an error status of its own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpStatusOf, type ErrorCode } from '../../errors.js';

export interface AdminRoute {
  readonly method: string;
  /** Exact path, or a prefix ending in "/" matched by startsWith. */
  readonly path: string;
  /** With admin.token set, the call needs it: state changes, and reads that carry response values. */
  readonly requiresToken: boolean;
  handle(req: IncomingMessage, res: ServerResponse, url: URL): void | Promise<void>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** An error answer: `{error, code}` with the code's HTTP status from the catalogue. */
export function sendAdminError(res: ServerResponse, code: ErrorCode, message: string): void {
  sendJson(res, httpStatusOf(code), { error: message, code });
}

/** A path segment decoded; a malformed escape names nothing, rather than failing the request. */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return '';
  }
}
