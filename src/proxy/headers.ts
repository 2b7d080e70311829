/**
 * Header hygiene at the gateway boundary, in both directions:
 * hop-by-hop headers (and every header `Connection` names) never cross;
 * framing is re-stated in canonical form; `x-shadow-request` is the
 * gateway's alone; `x-request-id` is set here, the forwarding headers
 * (`X-Forwarded-*`, `X-Real-IP`, `Forwarded`) in forwarding.ts.
 *
 * A `Connection` token never removes framing (Content-Length,
 * Transfer-Encoding), Host, or a header the gateway sets itself: such
 * tokens are ignored (docs/security.md, "Connection tokens"). Removing the
 * framing of a GET body let the body reach the pooled upstream connection
 * unframed, where it was read as a second request.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { setForwardingHeaders, type ForwardingPeer } from './forwarding.js';

export const REQUEST_ID = 'x-request-id';
export const SHADOW_MARKER = 'x-shadow-request';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-');
}

/**
 * Names a `Connection` token may not remove from a request: the framing the
 * gateway parsed, the host it routed on, and what it sets itself.
 */
const NEVER_NOMINATED = new Set([
  'content-length',
  'transfer-encoding',
  'host',
  'x-request-id',
  'x-shadow-request',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-real-ip',
  'forwarded',
]);

/** Header names listed in a Connection header, lower-cased. */
function connectionTokens(value: string | string[] | undefined): string[] {
  if (!value) return [];
  const text = Array.isArray(value) ? value.join(',') : value;
  const out: string[] = [];
  for (const part of text.split(',')) {
    const token = part.trim().toLowerCase();
    if (token && token !== 'close' && token !== 'keep-alive') out.push(token);
  }
  return out;
}

/**
 * With a dark egress, the diff baseline's copy carries the request id with
 * this suffix, so the egress can tell its dependency calls from the shadow
 * target's (both replayed from the same live calls).
 */
export const BASELINE_ID_SUFFIX = '.baseline';

const REQUEST_ID_SHAPE = /^[A-Za-z0-9._:@/+=-]{1,200}$/;

/** The client's request id when it is sane, else undefined. */
export function clientRequestId(headers: IncomingHttpHeaders): string | undefined {
  const value = headers[REQUEST_ID];
  return typeof value === 'string' && REQUEST_ID_SHAPE.test(value) ? value : undefined;
}

export interface ForwardContext extends ForwardingPeer {
  readonly requestId: string;
}

/**
 * Rewrites `req.headers` in place into what the upstream must receive.
 * In place, because the proxy copies req.headers once when it builds the
 * upstream request; this is the only per-request header work.
 */
export function prepareUpstreamHeaders(req: IncomingMessage, ctx: ForwardContext): void {
  cleanUpstreamHeaders(req.headers, ctx);
}

/** The same rewrite on a headers object (HTTP/2 requests carry no IncomingMessage). */
export function cleanUpstreamHeaders(h: IncomingHttpHeaders, ctx: ForwardContext): void {
  for (const name of connectionTokens(h.connection)) {
    if (!NEVER_NOMINATED.has(name)) delete h[name];
  }
  const chunked = h['transfer-encoding'] !== undefined;
  for (const name in h) {
    if (isHopByHop(name)) delete h[name];
  }
  // Node frames the upstream body by these headers (and, for GET, HEAD,
  // DELETE and OPTIONS, writes a body unframed without them): the framing
  // parsed from the request is stated, canonically.
  if (chunked) h['transfer-encoding'] = 'chunked';
  // The gateway answers 100-continue itself before forwarding.
  delete h.expect;
  delete h[SHADOW_MARKER];
  h[REQUEST_ID] = ctx.requestId;

  setForwardingHeaders(h, ctx);
}

/**
 * The upstream's response headers minus hop-by-hop ones, as a flat
 * [name, value, ...] list that keeps repeated headers and their case.
 */
export function downstreamHeaders(rawHeaders: readonly string[], requestId: string): string[] {
  let named: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 10 && rawHeaders[i]!.toLowerCase() === 'connection') {
      named ??= new Set();
      for (const token of connectionTokens(rawHeaders[i + 1])) named.add(token);
    }
  }
  const out: string[] = [];
  let hasRequestId = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (isHopByHop(lower) || named?.has(lower)) continue;
    if (lower === REQUEST_ID) hasRequestId = true;
    out.push(name, rawHeaders[i + 1]!);
  }
  if (!hasRequestId) out.push(REQUEST_ID, requestId);
  return out;
}

/** A flat [name, value, ...] list as an object (trailers to set on an answer), repeated names kept as arrays, hop-by-hop gone. */
export function headerObject(raw: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (isHopByHop(name)) continue;
    const value = raw[i + 1]!;
    const before = out[name];
    out[name] = before === undefined ? value : Array.isArray(before) ? [...before, value] : [before, value];
  }
  return out;
}
