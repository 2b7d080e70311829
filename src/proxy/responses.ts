/**
 * Answers the gateway gives itself (no route, bad request, upstream failure):
 * a status and a small JSON body `{error, code, requestId}` (the code from
 * the error catalogue, by status), through a
 * ServerResponse or, where there is none (parse errors, upgrades, CONNECT),
 * written raw on the socket and followed by closing it.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { answerCode } from '../errors.js';

const kCondemned = Symbol('gatewayctl.condemned');

/** Marks a connection the gateway has answered with "connection: close". */
export function condemn(socket: Duplex): void {
  (socket as Duplex & { [kCondemned]?: true })[kCondemned] = true;
}

/** Whether nothing more may be read from this connection (RFC 9112 section 9.6). */
export function isCondemned(socket: Duplex): boolean {
  return (socket as Duplex & { [kCondemned]?: true })[kCondemned] === true;
}

/**
 * Every refusal carries a request id, so a client's report can be matched
 * with the logs: the request's own, or a new one when there is none yet
 * (the parser refused the head, the connection was refused at a cap).
 */
function errorParts(
  status: number,
  error: string,
  requestId: string | undefined,
  extra: Record<string, string> | undefined,
): { body: string; headers: Record<string, string | number> } {
  const id = requestId ?? randomUUID();
  const body = JSON.stringify({ error, code: answerCode(status), requestId: id });
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      ...extra,
      'x-request-id': id,
    },
  };
}

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
  const { body, headers } = errorParts(status, error, requestId, options.headers);
  if (options.close) headers['connection'] = 'close';
  try {
    res.writeHead(status, headers);
    res.end(res.req?.method === 'HEAD' ? undefined : body);
  } catch {
    res.destroy();
  }
}

/**
 * Writes a whole error response on a raw socket and closes it once written.
 * Nothing more is read from the socket.
 */
export function sendRawError(
  socket: Duplex,
  status: number,
  error: string,
  requestId?: string,
  extraHeaders?: Record<string, string>,
): void {
  condemn(socket);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const { body, headers } = errorParts(status, error, requestId, extraHeaders);
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  socket.end(`${head}connection: close\r\n\r\n${body}`);
  (socket as Duplex & { destroySoon?: () => void }).destroySoon?.();
}
