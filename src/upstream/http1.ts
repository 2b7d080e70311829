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
    headers,
    agent: endpoint.agent,
  });
}
