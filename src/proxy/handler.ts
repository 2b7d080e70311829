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
import { pipeline } from 'node:stream';
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
import { sendError } from './responses.js';

const kExchange = Symbol('gatewayctl.exchange');

/** Per-request state, attached to the request for the proxy's events. */
class Exchange {
  code = 0;
  upstreamFailed = false;
  /** The upstream request, once it has a socket. */
  upstreamRequest: ClientRequest | undefined;
  connected = false;
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

export class UpstreamTimeoutError extends Error {
  readonly code = 'GW_UPSTREAM_TIMEOUT';
  constructor(readonly phase: 'connect' | 'response') {
    super(phase === 'connect' ? 'upstream connect timed out' : 'upstream response timed out');
  }
}

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
  private readonly proxy: ProxyServer;
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
    this.proxy = createProxyServer({ xfwd: false, selfHandleResponse: true, prependPath: true });
    // Only the streaming pass: the others rewrite framing headers
    // (DELETE/OPTIONS bodies) or set X-Forwarded-* in ways we do not want.
    const passes = (this.proxy as unknown as { webPasses: { name: string }[] }).webPasses;
    (this.proxy as unknown as { webPasses: unknown[] }).webPasses = passes.filter((p) => p.name === 'stream');
    this.proxy.on('proxyReq', this.onUpstreamRequest);
    this.proxy.on('proxyRes', this.onUpstreamResponse);
    this.proxy.on('error', this.onProxyError);
    this.proxy.on('econnreset', () => {
      // The client went away; the proxy has already destroyed the upstream request.
    });
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

    this.proxy.web(
      req,
      res,
      { target: upstream.target, agent: this.pools.agentFor(upstream), selfHandleResponse: true },
      this.onForwardError,
    );
  };

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
    const socket = proxyReq.socket as Socket | null;
    const responseTimeout = exchange.upstream.timeoutMs;
    if (socket && (socket.connecting || (socket as Socket & { pending?: boolean }).pending)) {
      proxyReq.setTimeout(Math.min(exchange.upstream.config.connectTimeoutMs, responseTimeout), () => {
        proxyReq.destroy(new UpstreamTimeoutError(exchange.connected ? 'response' : 'connect'));
      });
      socket.once('connect', () => {
        exchange.connected = true;
        proxyReq.setTimeout(responseTimeout);
      });
    } else {
      exchange.connected = true;
      proxyReq.setTimeout(responseTimeout, () => proxyReq.destroy(new UpstreamTimeoutError('response')));
    }
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
    exchange.mirror?.primaryResponse(proxyRes, exchange.started);
    pipeline(proxyRes, res, (err) => {
      if (err && !res.writableFinished) {
        if (!exchange.upstreamFailed && proxyRes.destroyed && !proxyRes.complete && !req.socket.destroyed) {
          exchange.upstreamFailed = true;
          exchange.stats.upstreamError('reset');
        }
        res.destroy();
      }
    });
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
    this.proxy.removeAllListeners();
  }
}

function noop(): void {}

/** Counts the request once, however it ended. */
function onResponseClose(this: ServerResponse): void {
  const req = this.req as ExchangeRequest;
  const exchange = req[kExchange];
  if (!exchange) return;
  req[kExchange] = undefined;
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
