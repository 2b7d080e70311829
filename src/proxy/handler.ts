/**
 * The user's path: one request in, one response out.
 *
 *   normalize target → route → pick backend → clean headers → forward
 *                                 └→ mirror (shadow/) when the route says so
 *
 * Forwarding goes through http-proxy-3 with a keep-alive agent per upstream;
 * bodies stream both ways without buffering. Every failure ends in a status
 * (400/404/413/502/504) with a small JSON body, never in a crash: the proxy's
 * error callback is always given, and response streams always have an error
 * handler.
 */
import { randomUUID } from 'node:crypto';
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import type { CompiledRoute, CompiledUpstream } from '../config/compile.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, RequestStats, UpstreamErrorReason } from '../metrics/registry.js';
import type { ActiveConfig } from '../runtime/active.js';
import type { MirrorSession, ShadowService } from '../shadow/service.js';
import { isCertificateError } from '../tls/upstream.js';
import { clientRequestId, downstreamHeaders, prepareUpstreamHeaders } from './headers.js';
import { normalizeTarget } from './path.js';
import type { UpstreamPools } from './pools.js';
import { UpstreamDeadlines, UpstreamTimeoutError, type Watched } from './deadlines.js';
import { sendError } from './responses.js';

export { UpstreamTimeoutError };

const kExchange = Symbol('gatewayctl.exchange');

/** Per-request state, attached to the request for the proxy's events. */
class Exchange implements Watched {
  code = 0;
  upstreamFailed = false;
  /** The upstream request, once it has a socket. */
  upstreamRequest: ClientRequest | undefined;
  upstreamResponse: IncomingMessage | undefined;
  connected = false;
  watchedSince = 0;
  connectTimeoutMs = 0;
  responseTimeoutMs = 0;
  lastBytes = 0;
  lastProgress = 0;
  expired: UpstreamTimeoutError | undefined;
  response: ServerResponse | undefined;
  deadlines: UpstreamDeadlines<Exchange> | undefined;
  constructor(
    readonly active: ActiveConfig,
    readonly requestId: string,
    readonly started: number,
    readonly route: CompiledRoute | undefined,
    readonly upstream: CompiledUpstream | undefined,
    readonly stats: RequestStats,
    readonly mirror: MirrorSession | undefined,
  ) {}
}

type ExchangeRequest = IncomingMessage & { [kExchange]?: Exchange };
type ExchangeResponse = IncomingMessage & { [kExchange]?: Exchange };


export interface ProxyHandlerOptions {
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly pools: UpstreamPools;
  readonly shadow: ShadowService | undefined;
  /** The config to serve a new request with. */
  readonly current: () => ActiveConfig;
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

export class ProxyHandler {
  /** One http-proxy-3 server per connection pool, its target and agent set once. */
  private readonly proxies = new WeakMap<object, ProxyServer>();
  private readonly deadlines = new UpstreamDeadlines<Exchange>((exchange, error) => this.expire(exchange, error));
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly pools: UpstreamPools;
  private readonly shadow: ShadowService | undefined;
  private readonly current: () => ActiveConfig;

  constructor(options: ProxyHandlerOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.pools = options.pools;
    this.shadow = options.shadow;
    this.current = options.current;
  }

  /**
   * The proxy for an upstream's pool. Options fixed per server (not per
   * call) spare http-proxy-3 a merge and a URL parse on every request.
   */
  private proxyFor(upstream: CompiledUpstream): ProxyServer {
    const agent = this.pools.agentFor(upstream);
    let proxy = this.proxies.get(agent);
    if (!proxy) {
      proxy = createProxyServer({ target: upstream.target, agent, xfwd: false, selfHandleResponse: true, prependPath: true });
      // Only the streaming pass: the others rewrite framing headers
      // (DELETE/OPTIONS bodies) or set X-Forwarded-* in ways we do not want.
      const passes = (proxy as unknown as { webPasses: { name: string }[] }).webPasses;
      (proxy as unknown as { webPasses: unknown[] }).webPasses = passes.filter((p) => p.name === 'stream');
      proxy.on('proxyReq', this.onUpstreamRequest);
      proxy.on('proxyRes', this.onUpstreamResponse);
      proxy.on('error', this.onProxyError);
      proxy.on('econnreset', () => {
        // The client went away; the proxy has already destroyed the upstream request.
      });
      this.proxies.set(agent, proxy);
    }
    return proxy;
  }

  /** Entry point for 'request' (and, with expectContinue, 'checkContinue'). */
  handle = (req: IncomingMessage, res: ServerResponse, expectContinue = false): void => {
    const started = performance.now();
    const active = this.current();
    const requestId = clientRequestId(req.headers) ?? randomUUID();
    res.on('error', noop);
    req.on('error', noop);

    const target = normalizeTarget(req.url ?? '');
    if (!target.ok) return this.reject(req, res, active, 400, `bad request: ${target.reason}`, 'bad_path', requestId, started);
    const method = req.method ?? 'GET';
    if (method === 'TRACE' || method === 'CONNECT') {
      return this.reject(req, res, active, 405, `method ${method} is not allowed`, 'method', requestId, started, {
        allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
      });
    }
    const limits = active.snapshot.config.limits;
    if (req.rawHeaders.length / 2 > limits.maxHeaderCount) {
      return this.reject(req, res, active, 431, 'too many request headers', 'header_count', requestId, started);
    }
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > limits.maxBodyBytes) {
      return this.reject(req, res, active, 413, 'request body too large', 'body_size', requestId, started);
    }

    const route = active.snapshot.route({ method, path: target.path, host: active.hostOf(req), headers: req.headers });
    if (!route) {
      return this.reject(req, res, active, 404, 'no route matches this request', 'no_route', requestId, started, undefined, true);
    }
    const upstream = route.pickBackend(req.headers);
    const stats = active.statsFor(route, upstream);
    const socket = req.socket;
    prepareUpstreamHeaders(req, {
      requestId,
      peer: socket.remoteAddress ?? '',
      trustedPeer: active.isTrusted(socket.remoteAddress),
      encrypted: socket instanceof TLSSocket,
    });
    const upstreamTarget = target.path + target.query;
    if (upstreamTarget !== req.url) req.url = upstreamTarget;

    const mirror = route.shadows.length > 0 && this.shadow ? this.shadow.begin(req, route, requestId, upstream) : undefined;
    const exchange = new Exchange(active, requestId, started, route, upstream, stats, mirror);
    (req as ExchangeRequest)[kExchange] = exchange;
    active.inflight++;
    res.once('close', onResponseClose);

    if (length === undefined && req.headers['transfer-encoding'] !== undefined) {
      watchBodySize(req, res, limits.maxBodyBytes, requestId);
    }
    if (expectContinue) res.writeContinue();

    exchange.connectTimeoutMs = upstream.config.connectTimeoutMs;
    exchange.responseTimeoutMs = upstream.timeoutMs;
    exchange.response = res;
    exchange.deadlines = this.deadlines;
    this.deadlines.watch(exchange);
    this.proxyFor(upstream).web(req, res, this.onForwardError);
  };

  /** The sweep found an exchange past a deadline. */
  private expire(exchange: Exchange, error: UpstreamTimeoutError): void {
    if (exchange.upstreamRequest) {
      // Ends in onForwardError (no answer yet) or in the response's close.
      exchange.upstreamRequest.destroy(error);
      return;
    }
    // Still queued for a pooled connection: answer without it.
    const res = exchange.response;
    if (res) this.failUpstream(exchange, res, 'timeout', 504, 'upstream timed out', error);
  }

  private reject(
    req: IncomingMessage,
    res: ServerResponse,
    active: ActiveConfig,
    status: number,
    message: string,
    reason: string,
    requestId: string,
    started: number,
    headers?: Record<string, string>,
    counted = false,
  ): void {
    this.metrics.rejectedRequests.inc({ reason });
    // A body we will not read cannot stay on a keep-alive connection.
    const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
    const close = hasBody || req.headers['transfer-encoding'] !== undefined || status === 400 || status === 431;
    sendError(res, status, message, requestId, { close, ...(headers ? { headers } : {}) });
    if (counted) active.unmatchedStats.observe(status, (performance.now() - started) / 1000);
    if (!close) req.resume();
  }

  private readonly onUpstreamRequest = (proxyReq: ClientRequest, req: IncomingMessage): void => {
    const exchange = (req as ExchangeRequest)[kExchange];
    if (!exchange || !exchange.upstream) return;
    exchange.upstreamRequest = proxyReq;
    if (exchange.expired) {
      proxyReq.destroy(exchange.expired);
      return;
    }
    // Timeouts are the sweep's (deadlines.ts); here only note whether the
    // connection is new, to tell a failed connect from a reset.
    const socket = proxyReq.socket as Socket | null;
    if (socket && socket.connecting) socket.once('connect', () => (exchange.connected = true));
    else exchange.connected = true;
  };

  private readonly onUpstreamResponse = (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void => {
    const exchange = (req as ExchangeRequest)[kExchange];
    if (!exchange) {
      proxyRes.destroy();
      return;
    }
    proxyRes.on('error', noop);
    if (res.destroyed || res.writableEnded) {
      proxyRes.destroy();
      return;
    }
    const status = proxyRes.statusCode ?? 502;
    try {
      res.writeHead(status, proxyRes.statusMessage, downstreamHeaders(proxyRes.rawHeaders, exchange.requestId));
    } catch (err) {
      // Headers Node accepted from the upstream but will not send on.
      proxyRes.destroy();
      this.failUpstream(exchange, res, 'reset', 502, 'upstream sent an invalid response', err);
      return;
    }
    exchange.upstreamResponse = proxyRes;
    exchange.lastBytes = proxyRes.socket?.bytesRead ?? 0;
    exchange.lastProgress = Date.now();
    exchange.mirror?.primaryResponse(proxyRes, exchange.started);
    // pipe(), not pipeline(): on Node 20 pipeline costs an AbortController
    // and a DOMException with a stack trace per response (a tenth of the
    // request path's CPU). What pipeline would clean up is handled here:
    // an upstream that dies mid-body cuts the client's response too, and a
    // client that leaves destroys the upstream request (onResponseClose).
    (proxyRes as ExchangeResponse)[kExchange] = exchange;
    proxyRes.once('close', this.onUpstreamResponseClose);
    proxyRes.pipe(res);
  };

  /** An upstream response that ends short cuts the client's response too. */
  private readonly onUpstreamResponseClose = function (this: IncomingMessage): void {
    const exchange = (this as ExchangeResponse)[kExchange];
    if (!exchange) return;
    (this as ExchangeResponse)[kExchange] = undefined;
    exchange.deadlines?.unwatch(exchange);
    const res = exchange.response;
    if (this.complete || !res || res.writableFinished) return;
    if (!exchange.upstreamFailed && !res.req.socket.destroyed) {
      exchange.upstreamFailed = true;
      exchange.stats.upstreamError(exchange.expired ? 'timeout' : 'reset');
    }
    res.destroy();
  };

  private readonly onForwardError = (err: Error, req: IncomingMessage, res: ServerResponse | Socket): void => {
    const exchange = (req as ExchangeRequest)[kExchange];
    const response = res as ServerResponse;
    if (!exchange) {
      if ('writeHead' in response) sendError(response, 502, 'bad gateway', undefined);
      return;
    }
    exchange.upstreamRequest?.destroy();
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (req.socket.destroyed && !response.headersSent) {
      // The client left before the upstream answered: nothing to tell anyone.
      response.destroy();
      return;
    }
    if (err instanceof UpstreamTimeoutError) {
      if (err.phase === 'connect') this.failUpstream(exchange, response, 'connect', 502, 'upstream connect timed out', err);
      else this.failUpstream(exchange, response, 'timeout', 504, 'upstream timed out', err);
    } else if (isCertificateError(err)) {
      this.failUpstream(exchange, response, 'connect', 502, 'upstream certificate rejected', err);
    } else if (CONNECT_ERRORS.has(code) || (!exchange.connected && code === 'ECONNRESET')) {
      this.failUpstream(exchange, response, 'connect', 502, 'upstream unavailable', err);
    } else {
      this.failUpstream(exchange, response, 'reset', 502, 'upstream connection failed', err);
    }
  };

  private failUpstream(
    exchange: Exchange,
    res: ServerResponse,
    reason: UpstreamErrorReason,
    status: number,
    message: string,
    err: unknown,
  ): void {
    if (!exchange.upstreamFailed) {
      exchange.upstreamFailed = true;
      exchange.stats.upstreamError(reason);
      exchange.mirror?.primaryFailed(status, exchange.started);
      if (this.logger.enabled('warn')) {
        this.logger.warn('upstream.error', `${exchange.upstream?.name}: ${message}`, {
          route: exchange.route?.name,
          upstream: exchange.upstream?.name,
          reason,
          error: (err as Error)?.message,
          requestId: exchange.requestId,
        });
      }
    }
    // After a partial response the only honest signal left is a cut connection.
    sendError(res, status, message, exchange.requestId, { close: true });
  }

  private readonly onProxyError = (err: Error, req: IncomingMessage, res: ServerResponse | Socket): void => {
    // Errors with no per-call callback (should not happen): answer, never throw.
    this.logger.error('proxy.error', err.message);
    if ('writeHead' in res) sendError(res as ServerResponse, 502, 'bad gateway', (req as ExchangeRequest)[kExchange]?.requestId);
    else (res as Socket).destroy();
  };

  close(): void {
    this.deadlines.close();
  }
}

function noop(): void {}

/** Counts the request once, however it ended. */
function onResponseClose(this: ServerResponse): void {
  const req = this.req as ExchangeRequest;
  const exchange = req[kExchange];
  if (!exchange) return;
  req[kExchange] = undefined;
  exchange.deadlines?.unwatch(exchange);
  const code = this.headersSent ? this.statusCode : 499;
  exchange.stats.observe(code, (performance.now() - exchange.started) / 1000);
  if (!this.writableFinished) exchange.upstreamRequest?.destroy();
  exchange.mirror?.clientClosed(this.writableFinished);
  exchange.active.requestDone();
}

/** Chunked bodies have no declared length: count while they stream. */
function watchBodySize(req: IncomingMessage, res: ServerResponse, limit: number, requestId: string): void {
  let received = 0;
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > limit) {
      req.off('data', onData);
      const exchange = (req as ExchangeRequest)[kExchange];
      exchange?.upstreamRequest?.destroy();
      if (exchange) exchange.upstreamFailed = true;
      sendError(res, 413, 'request body too large', requestId, { close: true });
      req.socket.destroySoon?.();
    }
  };
  req.on('data', onData);
}
