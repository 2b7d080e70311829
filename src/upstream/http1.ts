/**
 * HTTP/1.1 to an upstream endpoint, on node:http: the one way the gateway
 * opens a request to a primary upstream, for forwarded requests and for
 * upgrades alike. The endpoint's keep-alive agent carries it; the headers
 * are the ones the request path prepared (hop-by-hop removed, framing
 * canonical, request id and forwarding headers set: proxy/headers.ts), and
 * deadlines are the sweep's (deadlines.ts), never a timer per request.
 *
 * This replaced http-proxy-3 for forwarding: with its response handling
 * taken over (selfHandleResponse) and its header passes unwanted (they
 * rewrite DELETE/OPTIONS framing and X-Forwarded-*), all it still did was
 * this call plus a merge of options, a URL join and four listeners per
 * request, and the passes could only be turned off through a private field.
 */
import http, { type ClientRequest, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Endpoint } from './endpoint.js';

/** Opens (does not end) a request to `endpoint`; `path` is the upstream path, already joined with the target's. */
export function openUpstreamRequest(endpoint: Endpoint, method: string, path: string, headers: OutgoingHttpHeaders): ClientRequest {
  return (endpoint.secure ? https : http).request({
    hostname: endpoint.hostname,
    port: endpoint.port,
    method,
    path,
    headers: headerList(headers, endpoint, method),
    agent: endpoint.agent,
  });
}

/** Methods Node sends without framing when no body is declared (its `useChunkedEncodingByDefault` is off for them). */
const UNFRAMED_BY_DEFAULT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/**
 * The headers as a flat [name, value, ...] list. Given an object, Node
 * copies each header into the request's own table with setHeader and
 * serialises the table later; given a list, it validates each pair as it
 * writes the head, once. The head is then fixed when the request is made
 * (nothing here sets a header after), so what Node would add at that point
 * is added here: Host when the client sent none (HTTP/1.0), and, for a
 * request without a body whose method Node would otherwise frame as
 * chunked, `Content-Length: 0`.
 */
export function headerList(headers: OutgoingHttpHeaders, endpoint: Endpoint, method: string): string[] {
  const list: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const one of value) list.push(name, one);
    else list.push(name, String(value));
  }
  if (headers.host === undefined) list.push('host', endpoint.url.host);
  if (headers['content-length'] === undefined && headers['transfer-encoding'] === undefined && !UNFRAMED_BY_DEFAULT.has(method)) {
    list.push('content-length', '0');
  }
  return list;
}
