/**
 * The user's path: one request in, one response out.
 *
 *   screen (framing, limits, target) → route → pick backend → clean headers → forward
 *                                              └→ mirror (shadow/) when the route says so
 *
 * Forwarding goes through http-proxy-3 with a keep-alive agent per upstream;
 * bodies stream both ways without buffering. Every failure ends in a status
 * (400/404/405/408/413/431/502/504/505) with a small JSON body, never in a
 * crash: the proxy's error callback is always given, and response streams
 * always have an error handler. Once the gateway has answered "connection:
 * close", nothing more is read from that connection: requests pipelined
 * behind the refused one are dropped, never forwarded.
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
import { clientRequestId, downstreamHeaders, prepareUpstreamHeaders } from './headers.js';
import type { UpstreamPools } from './pools.js';
import { condemn, isCondemned, sendError } from './responses.js';
import { ALLOW, SERVER_OPTIONS, screenRequest, type Refusal } from './screen.js';
import { armUpstreamTimeouts, classifyUpstreamError } from './upstream-faults.js';

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

export interface ProxyHandlerOptions {
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly pools: UpstreamPools;
  readonly shadow: ShadowService | undefined;
  /** The config to serve a new request with. */
  readonly current: () => ActiveConfig;
}

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
    // toProxy: send req.url as it is. Without it the proxy re-parses the
    // path as a WHATWG URL, which re-encodes characters (and would resolve
    // dot segments), so the upstream could see a path other than the one
    // that was routed. screen.ts has already made req.url canonical.
    this.proxy = createProxyServer({ xfwd: false, selfHandleResponse: true, prependPath: true, toProxy: true });
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
    res.on('error', noop);
    req.on('error', noop);
    // Pipelined behind a request answered with "connection: close".
    if (isCondemned(req.socket)) return void req.resume();
    const started = performance.now();
    const active = this.current();
    const requestId = clientRequestId(req.headers) ?? randomUUID();

    const limits = active.snapshot.config.limits;
    const screened = screenRequest(req, limits);
    if (!screened.ok) return this.refuse(req, res, active, screened, requestId, started);
    const method = req.method ?? 'GET';

    const route = active.snapshot.route({ method, path: screened.path, host: active.hostOf(req), headers: req.headers });
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
    const upstreamTarget = screened.path + screened.query;
    if (upstreamTarget !== req.url) req.url = upstreamTarget;

    const mirror = route.shadows.length > 0 && this.shadow ? this.shadow.begin(req, route, requestId, upstream) : undefined;
    const exchange = new Exchange(active, requestId, started, route, upstream, stats, mirror);
    (req as ExchangeRequest)[kExchange] = exchange;
    active.inflight++;
    res.once('close', onResponseClose);

    if (screened.hasBody) {
      guardBody(req, res, exchange, screened.chunked ? limits.maxBodyBytes : Infinity, active.snapshot.config.timeouts.bodyMs, this.metrics);
    }
    // Only now, with the request accepted and routed, may the client send its body.
    if (expectContinue) res.writeContinue();

    this.proxy.web(
      req,
      res,
      { target: upstream.target, agent: this.pools.agentFor(upstream), selfHandleResponse: true },
      this.onForwardError,
    );
  };

  /** 'checkExpectation': an Expect other than 100-continue. */
  refuseExpectation = (req: IncomingMessage, res: ServerResponse): void => {
    res.on('error', noop);
    req.on('error', noop);
    if (isCondemned(req.socket)) return void req.resume();
    const active = this.current();
    const requestId = clientRequestId(req.headers) ?? randomUUID();
    this.reject(req, res, active, 417, 'only "Expect: 100-continue" is supported', 'expectation', requestId, performance.now());
  };

  private refuse(req: IncomingMessage, res: ServerResponse, active: ActiveConfig, refusal: Refusal, requestId: string, started: number): void {
    if (refusal === SERVER_OPTIONS) {
      // OPTIONS * asks about the server, not a resource: the gateway answers.
      res.writeHead(200, { allow: ALLOW, 'content-length': '0', 'x-request-id': requestId });
      res.end();
      req.resume();
      return;
    }
    this.reject(req, res, active, refusal.status, refusal.message, refusal.reason, requestId, started, refusal.headers);
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
    // A body we will not read cannot stay on a keep-alive connection, nor can
    // a request whose framing or head was refused.
    const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
    const close = hasBody || req.headers['transfer-encoding'] !== undefined || (status !== 404 && status !== 405);
    if (close) condemn(req.socket);
    sendError(res, status, message, requestId, { close, ...(headers ? { headers } : {}) });
    if (counted) active.unmatchedStats.observe(status, (performance.now() - started) / 1000);
    if (!close) req.resume();
  }

  private readonly onUpstreamRequest = (proxyReq: ClientRequest, req: IncomingMessage, res: ServerResponse): void => {
    const exchange = (req as ExchangeRequest)[kExchange];
    if (!exchange || !exchange.upstream) return;
    exchange.upstreamRequest = proxyReq;
    armUpstreamTimeouts(proxyReq, exchange.upstream, exchange);
    // A 101 to a request that asked for no upgrade: without this listener
    // Node drops the socket and the request would wait forever.
    proxyReq.once('upgrade', (_response: IncomingMessage, socket: Socket) => {
      socket.destroy();
      this.failUpstream(exchange, res, 'reset', 502, 'upstream switched protocols unasked', undefined);
    });
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
    if (!req.complete) {
      // Answered before the request body was all read (an early 413, say):
      // what is left of the body is not read, so the connection ends with it.
      res.shouldKeepAlive = false;
      condemn(req.socket);
    }
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
    if (req.socket.destroyed && !response.headersSent) {
      // The client left before the upstream answered: nothing to tell anyone.
      response.destroy();
      return;
    }
    const fault = classifyUpstreamError(err, exchange.connected);
    this.failUpstream(exchange, response, fault.reason, fault.status, fault.message, err);
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

/**
 * A request body in flight: a chunked body is counted against the size limit
 * as it streams (a declared length was checked before reading), and a client
 * that stops sending for longer than timeouts.body is answered 408 and cut
 * off. A pause caused by the upstream not reading (backpressure) is not the
 * client's: the upstream's own timeout covers it.
 */
function guardBody(req: IncomingMessage, res: ServerResponse, exchange: Exchange, limit: number, idleMs: number, metrics: GatewayMetrics): void {
  let received = 0;
  const stop = () => {
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', stop);
    req.off('close', stop);
  };
  const cut = (status: number, message: string, reason: string) => {
    stop();
    metrics.rejectedRequests.inc({ reason });
    exchange.upstreamFailed = true;
    exchange.upstreamRequest?.destroy();
    condemn(req.socket);
    sendError(res, status, message, exchange.requestId, { close: true });
    // Whatever the client still sends is not read: the connection ends here.
    req.socket.destroySoon();
  };
  const onData = (chunk: Buffer) => {
    timer.refresh();
    received += chunk.length;
    if (received > limit) cut(413, 'request body too large', 'body_size');
  };
  const timer = setTimeout(() => {
    if (req.socket.destroyed) return stop();
    if (req.readableFlowing === false) return void timer.refresh();
    cut(408, 'request body timed out', 'body_timeout');
  }, idleMs);
  req.on('data', onData);
  req.once('end', stop);
  req.once('close', stop);
}
