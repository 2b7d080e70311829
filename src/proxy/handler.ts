/**
 * The user's path: one request in, one response out, as ordered steps over
 * one context object (context.ts; the steps are in steps.ts):
 *
 *   screen (framing, limits, target) → route → pick (backend, pool) → headers → mirror → forward
 *      └───────────┴→ refused: a status with a small JSON body     (shadow/, when the route has shadows)
 *
 *   forward: endpoint from the pool → one try over the upstream's protocol:
 *              http1     request on the endpoint's keep-alive agent (upstream/http1.ts)
 *              h2 / h2c  a stream on the endpoint's pooled HTTP/2 session (upstream/h2.ts
 *                        H2Forward, as the HTTP/2 path forwards): Host becomes :authority,
 *                        connection-specific headers stay behind, TE passes only as
 *                        "trailers", and the answer's trailers reach a client that said
 *                        `TE: trailers` (in a chunked answer), else are dropped
 *            → response relayed as it streams; a failed try is sent again when retry.ts allows
 *
 * Both kinds of try share everything else: the sweep's deadlines (an HTTP/2
 * stream's own bytes stand for a socket's progress), retries and passive
 * health, the response relay, the shadow's capture of the primary answer,
 * metrics and the access log. A client that leaves cancels the try (for
 * HTTP/2, RST_STREAM CANCEL on that stream only); an upstream that fails
 * mid-answer cuts the client's answer.
 *
 * Bodies stream both ways without buffering. The upstream's pool
 * (src/upstream/) picks the endpoint for each try and hears how it went; a
 * try that failed before anything of it could matter is sent again, to
 * another endpoint, as src/upstream/retry.ts allows. Deadlines are the
 * upstream sweep's (upstream/deadlines.ts). Every failure ends in a
 * status (400/404/405/408/413/431/502/503/504/505) with a small JSON body, never in a
 * crash: every upstream request and response stream has an error handler.
 * Once the gateway has answered "connection: close", nothing more is read
 * from that connection: requests pipelined behind the refused one are
 * dropped, never forwarded.
 */
import { randomUUID } from 'node:crypto';
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type http2 from 'node:http2';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import type { AccessLog } from '../log/access-log.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, UpstreamErrorReason } from '../metrics/registry.js';
import type { ActiveConfig } from './active.js';
import type { ShadowService } from '../shadow/service.js';
import { RequestContext } from './context.js';
import { clientRequestId, downstreamHeaders, headerObject } from './headers.js';
import { upstreamPath } from './path.js';
import type { Endpoint } from '../upstream/endpoint.js';
import { isGrpc } from '../routing/matcher.js';
import { openUpstreamRequest } from '../upstream/http1.js';
import { H2Forward, h2HeaderObject, h2ResponseRaw, speaksH2, type H2Sessions } from '../upstream/h2.js';
import { outcomeOfStatus } from '../upstream/pool.js';
import type { UpstreamPools } from '../upstream/pools.js';
import type { RetryCause } from '../upstream/retry.js';
import { UpstreamDeadlines, UpstreamTimeoutError } from '../upstream/deadlines.js';
import { classifyUpstreamError } from '../upstream/faults.js';
import { condemn, isCondemned, sendError } from './responses.js';
import { ALLOW, SERVER_OPTIONS } from './screen.js';
import { headers, mirror, pick, route, screen, type Rejection } from './steps.js';

export { UpstreamTimeoutError };

const UNASKED_SWITCH = 'upstream switched protocols unasked';
const EXPECTATION: Rejection = { status: 417, message: 'only "Expect: 100-continue" is supported', reason: 'expectation' };

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
  /** Pooled sessions to HTTP/2 upstreams (`protocol: h2 | h2c`), shared with the HTTP/2 path. */
  readonly sessions: H2Sessions;
}

export class ProxyHandler {
  private readonly deadlines = new UpstreamDeadlines<RequestContext>((ctx, error) => this.expire(ctx, error));
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly pools: UpstreamPools;
  private readonly shadow: ShadowService | undefined;
  private readonly current: () => ActiveConfig;
  private readonly draining: () => boolean;
  private readonly accessLog: () => AccessLog | undefined;
  private readonly sessions: H2Sessions;

  constructor(options: ProxyHandlerOptions) {
    this.accessLog = options.accessLog ?? (() => undefined);
    this.sessions = options.sessions;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.pools = options.pools;
    this.shadow = options.shadow;
    this.current = options.current;
    this.draining = options.draining;
  }

  /** Entry point for 'request' (and, with expectContinue, 'checkContinue'). */
  handle = (req: IncomingMessage, res: ServerResponse, expectContinue = false): void => {
    const ctx = this.begin(req, res);
    if (!ctx) return;
    const refused = screen(ctx) ?? route(ctx) ?? pick(ctx, this.pools);
    if (refused) return refused === SERVER_OPTIONS ? answerServerOptions(ctx) : this.reject(ctx, refused);
    // TE is hop-by-hop and goes with the headers step; an HTTP/2 upstream's trailers depend on it.
    if (req.headers.te !== undefined) ctx.acceptsTrailers = acceptsTrailers(req.headers.te);
    headers(ctx);
    mirror(ctx, this.shadow);
    this.forward(ctx, expectContinue);
  };

  /** 'checkExpectation': an Expect other than 100-continue. */
  refuseExpectation = (req: IncomingMessage, res: ServerResponse): void => {
    const ctx = this.begin(req, res);
    if (ctx) this.reject(ctx, EXPECTATION);
  };

  /** The context of a new request, its access log line arranged; undefined when the connection takes no more requests. */
  private begin(req: IncomingMessage, res: ServerResponse): RequestContext | undefined {
    res.on('error', noop);
    req.on('error', noop);
    // Pipelined behind a request answered with "connection: close".
    if (isCondemned(req.socket)) return void req.resume();
    const ctx = new RequestContext(req, res, this.current(), clientRequestId(req.headers) ?? randomUUID(), performance.now());
    const log = this.accessLog();
    if (log) logOnClose(log, ctx);
    return ctx;
  }

  private reject(ctx: RequestContext, rejection: Rejection): void {
    const { req, res } = ctx;
    this.metrics.rejectedRequests.inc({ reason: rejection.reason });
    // A body we will not read cannot stay on a keep-alive connection, nor can
    // a request whose framing or head was refused.
    const status = rejection.status;
    const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
    const close = hasBody || req.headers['transfer-encoding'] !== undefined || (status !== 404 && status !== 405);
    if (close) condemn(req.socket);
    sendError(res, status, rejection.message, ctx.requestId, { close, ...(rejection.headers ? { headers: rejection.headers } : {}) });
    if (rejection.unmatched) ctx.active.unmatchedStats.observe(status, (performance.now() - ctx.started) / 1000);
    if (!close) req.resume();
  }

  /** The last step: the request accepted, its tries to the upstream begin. */
  private forward(ctx: RequestContext, expectContinue: boolean): void {
    const { req, res, active } = ctx;
    const pool = ctx.pool!;
    const upstream = ctx.upstream!;
    active.inflight++;
    // on(), not once(), for events that fire once: see send().
    res.on('close', () => this.finish(ctx));

    if (ctx.hasBody) {
      const limits = active.snapshot.config.limits;
      guardBody(ctx, ctx.chunked ? limits.maxBodyBytes : Infinity, active.snapshot.config.timeouts.bodyMs, this.metrics);
      // A body read only once the try's connection is up is still whole if the connect fails.
      if (pool.retry.attempts > 1) req.pause();
    }
    // Only now, with the request accepted and routed, may the client send its body.
    if (expectContinue) res.writeContinue();

    ctx.timeoutsOf(upstream);
    if (pool.retry.attempts > 1) pool.budget.request(Date.now());
    this.send(ctx, undefined);
  }

  /** One try: an endpoint from the pool, the request forwarded to it. */
  private send(ctx: RequestContext, avoid: Endpoint | undefined): void {
    const pool = ctx.pool!;
    const endpoint = pool.pick(avoid);
    if (ctx.tries === 0) ctx.sentAt = performance.now();
    ctx.endpoint = endpoint;
    ctx.holding = true;
    ctx.tries++;
    pool.begin(endpoint);
    ctx.upstreamRequest = undefined;
    ctx.upstreamResponse = undefined;
    ctx.upstreamSocket = undefined;
    ctx.requestSentAt = 0;
    ctx.connected = false;
    ctx.expired = undefined;
    this.deadlines.watch(ctx);
    if (speaksH2(ctx.upstream!)) return this.sendH2(ctx, endpoint);
    const { req } = ctx;
    const upstreamReq = openUpstreamRequest(endpoint, ctx.method, upstreamPath(endpoint.url, req.url!), req.headers);
    ctx.outgoing = upstreamReq;
    // Each of these events fires at most once per request, so on() does
    // what once() would without its per-listener wrapper (a bound function)
    // and the removal when it fires: four listeners here, and the 'close'
    // of both answers, on every request.
    upstreamReq.on('error', (err) => this.onUpstreamError(ctx, upstreamReq, err));
    upstreamReq.on('socket', (socket: Socket) => this.onUpstreamSocket(ctx, upstreamReq, socket));
    upstreamReq.on('response', (response: IncomingMessage) => this.onUpstreamResponse(ctx, upstreamReq, response));
    // A 101 to a request that asked for no upgrade: without this listener
    // Node drops the socket and the request would wait forever.
    upstreamReq.on('upgrade', (_response: IncomingMessage, socket: Socket) => {
      socket.destroy();
      if (ctx.outgoing === upstreamReq) this.failUpstream(ctx, 'reset', 502, UNASKED_SWITCH, undefined);
    });
    // The response deadline counts from here: upload time is not the upstream's.
    upstreamReq.on('finish', () => {
      if (ctx.upstreamRequest === upstreamReq) ctx.requestSentAt = Date.now();
    });
    if (!ctx.hasBody) {
      // Nothing to stream: Node reads the empty request to its end itself
      // once the response is done, and a pipe would cost listeners both ways.
      upstreamReq.end();
    } else if (pool.retry.attempts > 1) {
      ctx.bodyGate?.destroy();
      ctx.bodyGate = new PassThrough();
      ctx.bodyGate.pipe(upstreamReq);
    } else req.pipe(upstreamReq);
  }

  /**
   * Whether the failed try may be tried again, and if so sends it. The
   * current try must be over (released) before.
   */
  private retry(ctx: RequestContext, cause: RetryCause, status = 0): boolean {
    const pool = ctx.pool!;
    if (ctx.tries >= pool.retry.attempts || ctx.res.headersSent || ctx.req.socket.destroyed || ctx.upstreamFailed) return false;
    // On an HTTP/2 session that is up, the request's head has gone (or goes) out.
    const written = ctx.upstreamSocket ? ctx.upstreamSocket.bytesWritten > ctx.writtenBefore : ctx.connected;
    const facts = { method: ctx.method, hasBody: ctx.hasBody, requestWritten: written, bodyStarted: ctx.bodyStarted };
    if (!pool.retry.allows(cause, facts, status) || !pool.budget.tryRetry(Date.now())) return false;
    ctx.stats!.retries.inc();
    ctx.release();
    this.send(ctx, ctx.endpoint);
    return true;
  }

  /** The sweep found a request past a deadline. */
  private expire(ctx: RequestContext, error: UpstreamTimeoutError): void {
    if (ctx.upstreamRequest) {
      // Ends in onUpstreamError (no answer yet) or in the response's close.
      ctx.upstreamRequest.destroy(error);
      return;
    }
    // Still queued for a pooled connection: answer without it. The pool is
    // full, which says nothing of the endpoint's health.
    ctx.release();
    const fault = classifyUpstreamError(error, false);
    this.failUpstream(ctx, fault.reason, fault.status, fault.message, error);
  }

  /** The try's upstream request has its connection (new, or a pooled one). */
  private onUpstreamSocket(ctx: RequestContext, upstreamReq: ClientRequest, socket: Socket): void {
    if (ctx.closed || ctx.outgoing !== upstreamReq) {
      // Its request was answered while this waited for a pooled connection
      // (pool exhausted, client gone): it must not hold the connection.
      upstreamReq.destroy();
      return;
    }
    ctx.upstreamRequest = upstreamReq;
    if (ctx.expired) {
      upstreamReq.destroy(ctx.expired);
      return;
    }
    // Timeouts are the sweep's; here only note whether the connection is
    // new, to tell a failed connect from a reset, and whether anything of
    // the request was written on it.
    ctx.upstreamSocket = socket;
    ctx.writtenBefore = socket.bytesWritten;
    if (socket.connecting) {
      socket.once('connect', () => {
        if (ctx.upstreamRequest !== upstreamReq) return;
        ctx.connected = true;
        openBodyGate(ctx);
      });
    } else {
      ctx.connected = true;
      openBodyGate(ctx);
    }
  }

  private onUpstreamResponse(ctx: RequestContext, upstreamReq: ClientRequest, proxyRes: IncomingMessage): void {
    const { req, res } = ctx;
    proxyRes.on('error', noop);
    if (ctx.closed || ctx.outgoing !== upstreamReq || res.destroyed || res.writableEnded) {
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
      this.failUpstream(ctx, 'reset', 502, UNASKED_SWITCH, undefined);
      return;
    }
    // In flight when the drain began: the answer says the connection ends.
    if (this.draining()) res.shouldKeepAlive = false;
    const pool = ctx.pool!;
    pool.record(ctx.endpoint!, outcomeOfStatus(status));
    if (pool.retry.retriesStatus(status) && this.retry(ctx, 'status', status)) {
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
      res.writeHead(status, proxyRes.statusMessage, downstreamHeaders(proxyRes.rawHeaders, ctx.requestId));
    } catch (err) {
      // Headers Node accepted from the upstream but will not send on.
      proxyRes.destroy();
      this.failUpstream(ctx, 'reset', 502, 'upstream sent an invalid response', err);
      return;
    }
    ctx.upstreamResponse = proxyRes;
    ctx.lastBytes = proxyRes.socket?.bytesRead ?? 0;
    ctx.lastProgress = Date.now();
    ctx.mirror?.primaryResponse(proxyRes, ctx.started);
    // pipe(), not pipeline(): on Node 20 pipeline costs an AbortController
    // and a DOMException with a stack trace per response (a tenth of the
    // request path's CPU). What pipeline would clean up is handled here:
    // an upstream that dies mid-body cuts the client's response too, and a
    // client that leaves destroys the upstream request (finish).
    proxyRes.on('close', () => this.onUpstreamResponseClose(ctx, proxyRes));
    proxyRes.pipe(res);
  }

  /**
   * One try to an HTTP/2 upstream: a stream on the endpoint's pooled
   * session (upstream/h2.ts, as the HTTP/2 path forwards). Host becomes
   * :authority and connection-specific headers stay behind; the sweep
   * watches the stream as it watches a socket.
   */
  private sendH2(ctx: RequestContext, endpoint: Endpoint): void {
    const { req } = ctx;
    const pool = ctx.pool!;
    const gated = ctx.hasBody && pool.retry.attempts > 1;
    if (gated) {
      ctx.bodyGate?.destroy();
      ctx.bodyGate = new PassThrough();
    }
    let upstream: H2Forward;
    try {
      upstream = new H2Forward(
        this.sessions,
        endpoint,
        {
          method: ctx.method,
          path: upstreamPath(endpoint.url, req.url!),
          authority: req.headers.host ?? endpoint.url.host,
          headers: req.headers,
          trailers: ctx.acceptsTrailers,
          body: ctx.hasBody ? (ctx.bodyGate ?? req) : undefined,
        },
        {
          response: (status, headers, headOnly) => this.onH2Response(ctx, upstream, status, headers, headOnly),
          trailers: (trailers) => this.onH2Trailers(ctx, upstream, trailers),
          failed: (err, connected) => this.onH2Failed(ctx, upstream, err, connected),
          // Once its answer is being relayed: an answer that ends short cuts the client's too.
          closed: () => {
            if (ctx.upstreamResponse === upstream) this.onUpstreamResponseClose(ctx, upstream);
          },
        },
      );
    } catch (err) {
      ctx.release();
      return this.failUpstream(ctx, 'connect', 502, 'upstream unavailable', err);
    }
    ctx.outgoing = upstream;
    ctx.upstreamRequest = upstream;
    // The stream has its id once the session is up: the body may flow (and can no longer be replayed).
    const ready = () => {
      if (ctx.outgoing !== upstream) return;
      ctx.connected = true;
      openBodyGate(ctx);
    };
    if (upstream.stream.pending) upstream.stream.once('ready', ready);
    else ready();
    upstream.stream.once('finish', () => {
      if (ctx.upstreamRequest === upstream) ctx.requestSentAt = Date.now();
    });
  }

  private onH2Response(ctx: RequestContext, upstream: H2Forward, status: number, headers: http2.IncomingHttpHeaders, headOnly: boolean): void {
    const { req, res } = ctx;
    if (ctx.closed || ctx.outgoing !== upstream || res.destroyed || res.writableEnded) return upstream.destroy();
    if (this.draining()) res.shouldKeepAlive = false;
    const pool = ctx.pool!;
    pool.record(ctx.endpoint!, outcomeOfStatus(status));
    if (pool.retry.retriesStatus(status) && this.retry(ctx, 'status', status)) return upstream.destroy();
    if (!req.complete) {
      res.shouldKeepAlive = false;
      condemn(req.socket);
    }
    const raw = downstreamHeaders(h2ResponseRaw(headers), ctx.requestId);
    // Trailers travel only in a chunked answer: a client that takes them gets one when trailers are announced.
    if (ctx.acceptsTrailers && !headOnly && (headers['trailer'] !== undefined || isGrpc(headers))) withoutLength(raw);
    try {
      res.writeHead(status, raw);
    } catch (err) {
      upstream.destroy();
      return this.failUpstream(ctx, 'reset', 502, 'upstream sent an invalid response', err);
    }
    ctx.upstreamResponse = upstream;
    ctx.lastBytes = 0;
    ctx.lastProgress = Date.now();
    ctx.mirror?.primaryAnswer(status, h2HeaderObject(headers), upstream.stream, ctx.started, () => ctx.upstreamTrailers);
    upstream.relay(res);
  }

  /** Trailers reach an HTTP/1.1 client (in its chunked answer) only when it said `TE: trailers`. */
  private onH2Trailers(ctx: RequestContext, upstream: H2Forward, trailers: http2.IncomingHttpHeaders): void {
    if (ctx.outgoing !== upstream) return;
    if (ctx.mirror) ctx.upstreamTrailers = h2HeaderObject(trailers);
    const res = ctx.res;
    if (!ctx.acceptsTrailers || res.writableEnded || ctx.upstreamFailed) return;
    try {
      res.addTrailers(headerObject(h2ResponseRaw(trailers)));
    } catch {
      // A trailer Node will not write on HTTP/1.1 is dropped; the answer stands.
    }
  }

  /** The stream failed before its answer was relayed: the same verdicts as an HTTP/1.1 try's error. */
  private onH2Failed(ctx: RequestContext, upstream: H2Forward, err: Error, connected: boolean): void {
    // A superseded try, an answer over, or one being relayed (its close cuts the client's answer).
    if (ctx.outgoing !== upstream || ctx.closed || ctx.upstreamResponse === upstream) return;
    upstream.destroy();
    this.tryFailed(ctx, err, connected);
  }

  /** An upstream response that ends short cuts the client's response too. */
  private onUpstreamResponseClose(ctx: RequestContext, proxyRes: IncomingMessage | H2Forward): void {
    this.deadlines.unwatch(ctx);
    ctx.release();
    ctx.upstreamEndedAt = performance.now();
    const res = ctx.res;
    if (proxyRes.complete || res.writableFinished) return;
    if (!ctx.upstreamFailed && !ctx.req.socket.destroyed) {
      ctx.upstreamFailed = true;
      ctx.stats!.upstreamError(ctx.expired ? 'timeout' : 'reset');
    }
    res.destroy();
  }

  private onUpstreamError(ctx: RequestContext, upstreamReq: ClientRequest, err: Error): void {
    if (ctx.req.socket.destroyed && (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
      // The client went away: the response's close has dealt with the rest.
      upstreamReq.destroy();
      return;
    }
    // A superseded try, or an answer already over: nothing left to answer.
    if (ctx.outgoing !== upstreamReq || ctx.closed) return;
    if (ctx.upstreamResponse?.complete && !ctx.upstreamFailed) {
      // Bytes after a complete response (a HEAD answered with a body): Node
      // has closed that upstream connection, so they reach no one; the
      // answer itself stands and is relayed.
      return;
    }
    upstreamReq.destroy();
    this.tryFailed(ctx, err, ctx.connected);
  }

  /** The current try failed before its answer was relayed (either protocol): tried again, or answered for. */
  private tryFailed(ctx: RequestContext, err: Error, connected: boolean): void {
    const { req, res } = ctx;
    const held = ctx.holding;
    ctx.release();
    if (ctx.clientFault) return;
    if (req.socket.destroyed && !res.headersSent) {
      // The client left before the upstream answered: nothing to tell anyone.
      res.destroy();
      return;
    }
    const fault = classifyUpstreamError(err, connected);
    if (held && fault.reason !== 'pool_exhausted') ctx.pool!.record(ctx.endpoint!, 'failure');
    if ((fault.reason === 'connect' || fault.reason === 'reset') && held && this.retry(ctx, fault.reason)) return;
    this.failUpstream(ctx, fault.reason, fault.status, fault.message, err);
  }

  private failUpstream(ctx: RequestContext, reason: UpstreamErrorReason, status: number, message: string, err: unknown): void {
    ctx.release();
    ctx.upstreamEndedAt ||= performance.now();
    if (!ctx.upstreamFailed) {
      ctx.upstreamFailed = true;
      ctx.stats!.upstreamError(reason);
      ctx.mirror?.primaryFailed(status, ctx.started);
      if (this.logger.enabled('warn')) {
        this.logger.warn('upstream.error', `${ctx.upstream?.name}: ${message}`, {
          route: ctx.route?.name,
          upstream: ctx.upstream?.name,
          endpoint: ctx.endpoint?.name,
          tries: ctx.tries,
          reason,
          error: (err as Error)?.message,
          requestId: ctx.requestId,
        });
      }
    }
    // After a partial response the only honest signal left is a cut connection.
    sendError(ctx.res, status, message, ctx.requestId, { close: true });
  }

  /** The response has closed: the request is counted once, however it ended. */
  private finish(ctx: RequestContext): void {
    const res = ctx.res;
    ctx.closed = true;
    this.deadlines.unwatch(ctx);
    ctx.release();
    ctx.bodyGate?.destroy();
    const code = res.headersSent ? res.statusCode : 499;
    ctx.stats!.observe(code, (performance.now() - ctx.started) / 1000);
    if (!res.writableFinished) ctx.outgoing?.destroy();
    ctx.mirror?.clientClosed(res.writableFinished);
    ctx.active.requestDone();
  }

  close(): void {
    this.deadlines.close();
  }
}

function noop(): void {}

/** OPTIONS * asks about the server, not a resource: the gateway answers. */
function answerServerOptions(ctx: RequestContext): void {
  ctx.res.writeHead(200, { allow: ALLOW, 'content-length': '0', 'x-request-id': ctx.requestId });
  ctx.res.end();
  ctx.req.resume();
}

/**
 * One access log line once the response is over (and, for a mirrored
 * request, once its copies have an outcome).
 */
function logOnClose(log: AccessLog, ctx: RequestContext): void {
  const { req, res } = ctx;
  const socket = req.socket;
  const bytesBefore = socket.bytesWritten;
  res.once('close', () => {
    const ended = performance.now();
    const entry = {
      requestId: ctx.requestId,
      client: socket.remoteAddress ?? '',
      route: ctx.route?.name ?? '',
      upstream: ctx.upstream?.name ?? '',
      endpoint: ctx.endpoint?.name ?? '',
      method: req.method ?? '',
      path: req.url ?? '',
      httpVersion: req.httpVersion,
      status: res.headersSent ? res.statusCode : 499,
      bytes: socket.bytesWritten - bytesBefore,
      durationMs: ended - ctx.started,
      upstreamMs: ctx.sentAt > 0 ? (ctx.upstreamEndedAt || ended) - ctx.sentAt : undefined,
      retries: Math.max(0, ctx.tries - 1),
      shadow: '',
      headers: req.headers,
    };
    if (ctx.mirror) ctx.mirror.whenSettled((shadow) => log.write({ ...entry, shadow }));
    else log.write(entry);
  });
}

/** Whether a TE header lists "trailers" (RFC 9110 section 10.1.4). */
function acceptsTrailers(te: string | string[]): boolean {
  for (const part of String(te).split(',')) if (part.split(';', 1)[0]!.trim().toLowerCase() === 'trailers') return true;
  return false;
}

/** Drops Content-Length from a flat header list: the answer goes chunked. */
function withoutLength(raw: string[]): void {
  for (let i = raw.length - 2; i >= 0; i -= 2) if (raw[i]!.toLowerCase() === 'content-length') raw.splice(i, 2);
}

/** The try's connection is up: the body may flow to it now (and can no longer be replayed). */
function openBodyGate(ctx: RequestContext): void {
  const gate = ctx.bodyGate;
  if (!gate || ctx.bodyStarted) return;
  ctx.bodyStarted = true;
  ctx.req.pipe(gate);
}

/**
 * A request body in flight: a chunked body is counted against the size limit
 * as it streams (a declared length was checked before reading), and a client
 * that stops sending for longer than timeouts.body is answered 408 and cut
 * off. A pause caused by the upstream not reading (backpressure) is not the
 * client's: the upstream's own timeout covers it.
 */
function guardBody(ctx: RequestContext, limit: number, idleMs: number, metrics: GatewayMetrics): void {
  const { req, res } = ctx;
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
    ctx.upstreamFailed = true;
    ctx.clientFault = true;
    ctx.release();
    ctx.outgoing?.destroy();
    condemn(req.socket);
    sendError(res, status, message, ctx.requestId, { close: true });
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
