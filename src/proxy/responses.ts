/**
 * Answers the gateway gives itself (no route, bad request, upstream failure):
 * a status and a small JSON body `{error, requestId}`.
 */
import type { ServerResponse } from 'node:http';

export function sendError(
  res: ServerResponse,
  status: number,
  error: string,
  requestId: string | undefined,
  options: { close?: boolean; headers?: Record<string, string> } = {},
): void {
  if (res.writableEnded) return;
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(requestId ? { error, requestId } : { error });
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...options.headers,
  };
  if (requestId) headers['x-request-id'] = requestId;
  if (options.close) headers['connection'] = 'close';
  try {
    res.writeHead(status, headers);
    res.end(res.req?.method === 'HEAD' ? undefined : body);
  } catch {
    res.destroy();
  }
}
