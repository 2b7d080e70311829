/**
 * The user's path: one request in, one response out.
 *
 *   screen (framing, limits, target) → route → pick backend → clean headers → forward
 *                                              └→ mirror (shadow/) when the route says so
 *
 * Forwarding goes through http-proxy-3 with a keep-alive agent per endpoint;
 * bodies stream both ways without buffering. The upstream's pool
 * (src/upstream/) picks the endpoint for each try and hears how it went; a
 * try that failed before anything of it could matter is sent again, to
 * another endpoint, as src/upstream/retry.ts allows. Every failure ends in a
 * status (400/404/405/408/413/431/502/503/504/505) with a small JSON body, never in a
 * crash: the proxy's error callback is always given, and response streams
 * always have an error handler. Once the gateway has answered "connection:
 * close", nothing more is read from that connection: requests pipelined
 * behind the refused one are dropped, never forwarded.
 */
import { randomUUID } from 'node:crypto';
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import type { CompiledRoute, CompiledUpstream } from '../config/compile.js';
import type { AccessLog } from '../log/access-log.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, RequestStats, UpstreamErrorReason } from '../metrics/registry.js';
import type { ActiveConfig } from './active.js';
import type { MirrorSession, ShadowService } from '../shadow/service.js';
import { clientRequestId, downstreamHeaders, prepareUpstreamHeaders } from './headers.js';
import type { Endpoint } from '../upstream/endpoint.js';
import type { UpstreamPool } from '../upstream/pool.js';
import type { UpstreamPools } from '../upstream/pools.js';
import type { RetryCause } from '../upstream/retry.js';
import { UpstreamDeadlines, UpstreamTimeoutError, type Watched } from './deadlines.js';
import { condemn, isCondemned, sendError } from './responses.js';
import { ALLOW, SERVER_OPTIONS, escapedSlashRefused, screenRequest, type Refusal } from './screen.js';
import { classifyUpstreamError } from './upstream-faults.js';

export { UpstreamTimeoutError };

const kExchange = Symbol('gatewayctl.exchange');
const UNASKED_SWITCH = 'upstream switched protocols unasked';

/** Per-request state, attached to the request for the proxy's events. */
class Exchange implements Watched {
  upstreamFailed = false;
  /** The client was cut off (body too large or stalled): nothing to hold against the endpoint. */
  clientFault = false;
  /** Tries started; the endpoint of the last one, and whether it still counts as outstanding. */
  tries = 0;
  endpoint: Endpoint | undefined;
  holding = false;
  /** The request body, let through to the current try once its connection is up (retryable bodies). */
  bodyGate: PassThrough | undefined;
  bodyStarted = false;
  /** Bytes written on the try's socket before it carried this request. */
  writtenBefore = 0;
  upstreamSocket: Socket | undefined;
  poolTimeoutMs = 0;
  /** For the access log: when the first try started, when the upstream's answer ended. */
  sentAt = 0;
  upstreamEndedAt = 0;
  /** The upstream request, once it has a socket. */
  upstreamRequest: ClientRequest | undefined;
  upstreamResponse: IncomingMessage | undefined;
  connected = false;
  watchedSince = 0;
  /** When the current try's request was sent whole (deadlines.ts); 0 until then. */
  requestSentAt = 0;
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
    readonly pool: UpstreamPool,
    readonly method: string,
    readonly hasBody: boolean,
  ) {}

  /** The current try is over: the endpoint has one request fewer. */
  release(): void {
    if (!this.holding) return;
    this.holding = false;
    this.pool.finish(this.endpoint!);
  }
}

type ExchangeRequest = IncomingMessage & { [kExchange]?: Exchange };
type ExchangeResponse = IncomingMessage & { [kExchange]?: Exchange };
type ExchangeUpstreamRequest = ClientRequest & { [kExchange]?: Exchange };

export interface ProxyHandlerOptions {
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly pools: UpstreamPools;
  readonly shadow: ShadowService | undefined;
  /** The config to serve a new request with. */
  readonly current: () => ActiveConfig;
  /** Whether the gateway is shutting down: answers then close their connection. */
  readonly draining: () => boolean;
  /** The access log, when the config asks for one. */
  readonly accessLog?: () => AccessLog | undefined;
}

export class ProxyHandler {
  /** One http-proxy-3 server per connection pool, its target and agent set once. */
  private readonly proxies = new WeakMap<object, ProxyServer>();
  private readonly deadlines = new UpstreamDeadlines<Exchange>((exchange, error) => this.expire(exchange, error));
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly pools: UpstreamPools;
  private readonly shadow: ShadowService | undefined;
  private readonly current: () => ActiveConfig;
  private readonly draining: () => boolean;
  private readonly accessLog: () => AccessLog | undefined;

  constructor(options: ProxyHandlerOptions) {
    this.accessLog = options.accessLog ?? (() => undefined);
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.pools = options.pools;
    this.shadow = options.shadow;
    this.current = options.current;
    this.draining = options.draining;
  }

  /**
   * The proxy for an upstream's pool. Options fixed per server (not per
   * call) spare http-proxy-3 a merge and a URL parse on every request.
   */
  private proxyFor(endpoint: Endpoint): ProxyServer {
    const agent = endpoint.agent;
    let proxy = this.proxies.get(agent);
    if (!proxy) {
      proxy = createProxyServer({
        target: endpoint.url,
        agent,
        xfwd: false,
        selfHandleResponse: true,
        prependPath: true,
        // toProxy: send req.url as it is. Without it the proxy re-parses the
        // path as a WHATWG URL, which re-encodes characters (and would
        // resolve dot segments), so the upstream could see a path other than
        // the one that was routed. screen.ts has already made req.url canonical.
        toProxy: true,
      });
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
    res.on('error', noop);
    req.on('error', noop);
    // Pipelined behind a request answered with "connection: close".
    if (isCondemned(req.socket)) return void req.resume();
    const started = performance.now();
    const active = this.current();
    const requestId = clientRequestId(req.headers) ?? randomUUID();
    const log = this.accessLog();
    if (log) logOnClose(log, req, res, requestId, started);

    const limits = active.snapshot.config.limits;
    const screened = screenRequest(req, limits, active.snapshot.keepEscapedSlashes);
    if (!screened.ok) return this.refuse(req, res, active, screened, requestId, started);
    const method = req.method ?? 'GET';

    const route = active.snapshot.route({ method, path: screened.path, host: active.hostOf(req), headers: req.headers });
    if (!route) {
      return this.reject(req, res, active, 404, 'no route matches this request', 'no_route', requestId, started, undefined, true);
    }
    if (escapedSlashRefused(active.snapshot, route, screened.path)) {
      return this.reject(req, res, active, 400, 'bad request: encoded slash or backslash in path', 'bad_path', requestId, started);
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
    const pool = this.pools.poolFor(upstream);
    const exchange = new Exchange(active, requestId, started, route, upstream, stats, mirror, pool, method, screened.hasBody);
    (req as ExchangeRequest)[kExchange] = exchange;
    active.inflight++;
    res.once('close', onResponseClose);

    if (screened.hasBody) {
      guardBody(req, res, exchange, screened.chunked ? limits.maxBodyBytes : Infinity, active.snapshot.config.timeouts.bodyMs, this.metrics);
      // A body read only once the try's connection is up is still whole if the connect fails.
      if (pool.retry.attempts > 1) req.pause();
    }
    // Only now, with the request accepted and routed, may the client send its body.
    if (expectContinue) res.writeContinue();

    exchange.poolTimeoutMs = upstream.config.poolTimeoutMs;
    exchange.connectTimeoutMs = upstream.config.connectTimeoutMs;
    exchange.responseTimeoutMs = upstream.timeoutMs;
    exchange.response = res;
    exchange.deadlines = this.deadlines;
    if (pool.retry.attempts > 1) pool.budget.request(Date.now());
    this.send(exchange, req, res, undefined);
  };

  /** One try: an endpoint from the pool, the request forwarded to it. */
  private send(exchange: Exchange, req: IncomingMessage, res: ServerResponse, avoid: Endpoint | undefined): void {
    const endpoint = exchange.pool.pick(avoid);
    if (exchange.tries === 0) exchange.sentAt = performance.now();
    exchange.endpoint = endpoint;
    exchange.holding = true;
    exchange.tries++;
    exchange.pool.begin(endpoint);
    exchange.upstreamRequest = undefined;
    exchange.upstreamResponse = undefined;
    exchange.upstreamSocket = undefined;
    exchange.requestSentAt = 0;
    exchange.connected = false;
    exchange.expired = undefined;
    this.deadlines.watch(exchange);
    const proxy = this.proxyFor(endpoint);
    if (exchange.hasBody && exchange.pool.retry.attempts > 1) {
      exchange.bodyGate?.destroy();
      exchange.bodyGate = new PassThrough();
      proxy.web(req, res, { buffer: exchange.bodyGate }, this.onForwardError);
    } else proxy.web(req, res, this.onForwardError);
  }

  /**
   * Whether the failed try may be tried again, and if so sends it. The
   * current try must be over (released) before.
   */
  private retry(exchange: Exchange, req: IncomingMessage, res: ServerResponse, cause: RetryCause, status = 0): boolean {
    const pool = exchange.pool;
    if (exchange.tries >= pool.retry.attempts || res.headersSent || req.socket.destroyed || exchange.upstreamFailed) return false;
    const written = exchange.upstreamSocket ? exchange.upstreamSocket.bytesWritten > exchange.writtenBefore : false;
    const facts = { method: exchange.method, hasBody: exchange.hasBody, requestWritten: written, bodyStarted: exchange.bodyStarted };
    if (!pool.retry.allows(cause, facts, status) || !pool.budget.tryRetry(Date.now())) return false;
    exchange.stats.retries.inc();
    exchange.release();
    this.send(exchange, req, res, exchange.endpoint);
    return true;
  }

  /** The sweep found an exchange past a deadline. */
  private expire(exchange: Exchange, error: UpstreamTimeoutError): void {
    if (exchange.upstreamRequest) {
      // Ends in onForwardError (no answer yet) or in the response's close.
      exchange.upstreamRequest.destroy(error);
      return;
    }
    // Still queued for a pooled connection: answer without it. The pool is
    // full, which says nothing of the endpoint's health.
    exchange.release();
    const res = exchange.response;
    const fault = classifyUpstreamError(error, false);
    if (res) this.failUpstream(exchange, res, fault.reason, fault.status, fault.message, error);
  }

  /** 'checkExpectation': an Expect other than 100-continue. */
  refuseExpectation = (req: IncomingMessage, res: ServerResponse): void => {
    res.on('error', noop);
    req.on('error', noop);
    if (isCondemned(req.socket)) return void req.resume();
    const active = this.current();
    const requestId = clientRequestId(req.headers) ?? randomUUID();
    const log = this.accessLog();
    if (log) logOnClose(log, req, res, requestId, performance.now());
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

  private readonly onUpstreamRequest = (proxyReq: ClientRequest, req: IncomingMessage): void => {
    const exchange = (req as ExchangeRequest)[kExchange];
    if (!exchange || !exchange.upstream) {
      // Its request was answered while this waited for a pooled connection
      // (pool exhausted, client gone): it must not hold the connection.
      proxyReq.destroy();
      return;
    }
    exchange.upstreamRequest = proxyReq;
    if (exchange.expired) {
      proxyReq.destroy(exchange.expired);
      return;
    }
    // Timeouts are the sweep's (deadlines.ts); here only note whether the
    // connection is new, to tell a failed connect from a reset, and whether
    // anything of the request was written on it.
    const socket = proxyReq.socket as Socket | null;
    exchange.upstreamSocket = socket ?? undefined;
    exchange.writtenBefore = socket?.bytesWritten ?? 0;
    if (socket && socket.connecting) {
      socket.once('connect', () => {
        if (exchange.upstreamRequest !== proxyReq) return;
        exchange.connected = true;
        openBodyGate(exchange, req);
      });
    } else {
      exchange.connected = true;
      openBodyGate(exchange, req);
    }
    // A 101 to a request that asked for no upgrade: without this listener
    // Node drops the socket and the request would wait forever.
    (proxyReq as ExchangeUpstreamRequest)[kExchange] = exchange;
    proxyReq.once('upgrade', this.onUnaskedUpgrade);
    // The response deadline counts from here: upload time is not the upstream's.
    proxyReq.once('finish', onUpstreamRequestSent);
  };

  /** Shared by every request (`this` is the upstream request). */
  private readonly onUnaskedUpgrade = (() => {
    const handler = this;
    return function (this: ExchangeUpstreamRequest, _response: IncomingMessage, socket: Socket): void {
      socket.destroy();
      const exchange = this[kExchange];
      if (exchange?.response) handler.failUpstream(exchange, exchange.response, 'reset', 502, UNASKED_SWITCH, undefined);
    };
  })();

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
    if (status === 101) {
      // Upgrades are upgrade.ts's: a 101 here answers a request that asked
      // for none (Node hands it over as a response when it lacks
      // `Connection: upgrade`). What follows on that connection is another
      // protocol, so it is closed, never pooled.
      proxyRes.socket?.destroy();
      proxyRes.destroy();
      this.failUpstream(exchange, res, 'reset', 502, UNASKED_SWITCH, undefined);
      return;
    }
    // In flight when the drain began: the answer says the connection ends.
    if (this.draining()) res.shouldKeepAlive = false;
    const endpoint = exchange.endpoint!;
    exchange.pool.record(endpoint, status >= 500 ? 'failure' : 'ok');
    if (exchange.pool.retry.retriesStatus(status) && this.retry(exchange, req, res, 'status', status)) {
      // Read and dropped, so its connection can serve again.
      proxyRes.resume();
      return;
    }
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
    exchange.release();
    exchange.upstreamEndedAt = performance.now();
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
    if (exchange.upstreamResponse?.complete && !exchange.upstreamFailed) {
      // Bytes after a complete response (a HEAD answered with a body): Node
      // has closed that upstream connection, so they reach no one; the
      // answer itself stands and is relayed.
      return;
    }
    exchange.upstreamRequest?.destroy();
    const held = exchange.holding;
    exchange.release();
    if (exchange.clientFault) return;
    if (req.socket.destroyed && !response.headersSent) {
      // The client left before the upstream answered: nothing to tell anyone.
      response.destroy();
      return;
    }
    const fault = classifyUpstreamError(err, exchange.connected);
    if (held && fault.reason !== 'pool_exhausted') exchange.pool.record(exchange.endpoint!, 'failure');
    if ((fault.reason === 'connect' || fault.reason === 'reset') && held && this.retry(exchange, req, response, fault.reason)) return;
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
    exchange.release();
    exchange.upstreamEndedAt ||= performance.now();
    if (!exchange.upstreamFailed) {
      exchange.upstreamFailed = true;
      exchange.stats.upstreamError(reason);
      exchange.mirror?.primaryFailed(status, exchange.started);
      if (this.logger.enabled('warn')) {
        this.logger.warn('upstream.error', `${exchange.upstream?.name}: ${message}`, {
          route: exchange.route?.name,
          upstream: exchange.upstream?.name,
          endpoint: exchange.endpoint?.name,
          tries: exchange.tries,
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

/** The request, body and all, has been handed to the upstream connection. */
function onUpstreamRequestSent(this: ExchangeUpstreamRequest): void {
  const exchange = this[kExchange];
  if (exchange && exchange.upstreamRequest === this) exchange.requestSentAt = Date.now();
}

/**
 * One access log line once the response is over (and, for a mirrored
 * request, once its copies have an outcome). Registered before the
 * exchange's own close listener, so the exchange is still attached.
 */
function logOnClose(log: AccessLog, req: IncomingMessage, res: ServerResponse, requestId: string, started: number): void {
  const socket = req.socket;
  const bytesBefore = socket.bytesWritten;
  res.once('close', () => {
    const exchange = (req as ExchangeRequest)[kExchange];
    const ended = performance.now();
    const entry = {
      requestId,
      client: socket.remoteAddress ?? '',
      route: exchange?.route?.name ?? '',
      upstream: exchange?.upstream?.name ?? '',
      endpoint: exchange?.endpoint?.name ?? '',
      method: req.method ?? '',
      path: req.url ?? '',
      httpVersion: req.httpVersion,
      status: res.headersSent ? res.statusCode : 499,
      bytes: socket.bytesWritten - bytesBefore,
      durationMs: ended - started,
      upstreamMs: exchange && exchange.sentAt > 0 ? (exchange.upstreamEndedAt || ended) - exchange.sentAt : undefined,
      retries: exchange ? Math.max(0, exchange.tries - 1) : 0,
      shadow: '',
      headers: req.headers,
    };
    if (exchange?.mirror) exchange.mirror.whenSettled((shadow) => log.write({ ...entry, shadow }));
    else log.write(entry);
  });
}

/** The try's connection is up: the body may flow to it now (and can no longer be replayed). */
function openBodyGate(exchange: Exchange, req: IncomingMessage): void {
  const gate = exchange.bodyGate;
  if (!gate || exchange.bodyStarted) return;
  exchange.bodyStarted = true;
  req.pipe(gate);
}

/** Counts the request once, however it ended. */
function onResponseClose(this: ServerResponse): void {
  const req = this.req as ExchangeRequest;
  const exchange = req[kExchange];
  if (!exchange) return;
  req[kExchange] = undefined;
  exchange.deadlines?.unwatch(exchange);
  exchange.release();
  exchange.bodyGate?.destroy();
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
    exchange.clientFault = true;
    exchange.release();
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
