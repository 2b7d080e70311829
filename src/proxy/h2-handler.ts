/**
 * The user's path for HTTP/2 requests (TLS by ALPN, or h2c): the steps of
 * handler.ts on an HTTP/2 stream.
 *
 *   screen → route (pseudo-headers mapped: :authority is the host, :path the
 *   target) → pick backend (weights, sticky keys: gRPC metadata are headers)
 *   → clean headers → forward (HTTP/2 upstream: a stream on the endpoint's
 *   pooled session; HTTP/1.1 upstream: the endpoint's keep-alive agent)
 *
 * gRPC calls (content-type application/grpc*) are answered as gRPC: every
 * failure the gateway tells is a grpc-status (UNAVAILABLE for an upstream
 * that cannot be reached or failed, DEADLINE_EXCEEDED past `grpc-timeout`
 * or the upstream's timeout), in a trailers-only answer before anything was
 * relayed, in the trailers after. Bodies stream both ways with backpressure
 * (pipe), so server, client and bidi streaming pass as they come.
 *
 * Deadlines: the answer's head within the upstream's timeout; a gRPC call
 * also ends at its grpc-timeout. A streaming answer is not cut for being
 * quiet (a server stream may wait long between messages). One Sweep
 * enforces both.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import https from 'node:https';
import type { CompiledRoute, CompiledUpstream } from '../config/compile.js';
import type { AccessLog } from '../log/access-log.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, RequestStats, UpstreamErrorReason } from '../metrics/registry.js';
import { hostOf, isGrpc } from '../routing/matcher.js';
import type { Endpoint } from '../upstream/endpoint.js';
import { H2Forward, h2HeaderObject, h2ResponseRaw, speaksH2, type H2Sessions } from '../upstream/h2.js';
import type { MirrorSession, ShadowService } from '../shadow/service.js';
import { outcomeOfStatus, type UpstreamPool } from '../upstream/pool.js';
import type { UpstreamPools } from '../upstream/pools.js';
import type { ActiveConfig } from './active.js';
import { Sweep, UpstreamTimeoutError } from '../upstream/deadlines.js';
import { GrpcStatus, grpcCodeName, grpcFailureHeaders, grpcMessage, grpcStatusFor, grpcTimeoutMs } from './grpc.js';
import { cleanUpstreamHeaders, clientRequestId, downstreamHeaders, headerObject } from './headers.js';
import { upstreamPath } from './path.js';
import { sendError } from './responses.js';
import { ALLOW, SERVER_OPTIONS, escapedSlashRefused, screenH2Request } from './screen.js';
import { classifyUpstreamError } from '../upstream/faults.js';

export interface H2HandlerOptions {
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly pools: UpstreamPools;
  readonly sessions: H2Sessions;
  /** Shadow copies of routes with shadow targets (gRPC calls compared field by field). */
  readonly shadow?: ShadowService;
  readonly current: () => ActiveConfig;
  readonly accessLog?: () => AccessLog | undefined;
}

/** One HTTP/2 request in flight. */
class H2Exchange {
  /** Its place in the sweep. */
  churnSlot = -1;
  tries = 0;
  endpoint: Endpoint | undefined;
  holding = false;
  /** The answer's head has come from the upstream (or the gateway answered). */
  responded = false;
  failed = false;
  done = false;
  /** ms epoch: the answer's head must come by then. */
  headDeadline = 0;
  /** ms epoch: grpc-timeout; 0 for none. */
  callDeadline = 0;
  /** The final grpc-status seen (headers, trailers, or the gateway's own). */
  grpcStatus: string | undefined;
  sentAt = 0;
  upstreamEndedAt = 0;
  bytes = 0;
  /** The answer's bytes, when the relay counts them itself (an HTTP/2 upstream's). */
  relayedBytes: (() => number) | undefined;
  cancelUpstream: (() => void) | undefined;
  /** The request's shadow copies, when the route mirrors it. */
  mirror: MirrorSession | undefined;
  /** The HTTP/2 upstream's trailers, once they came. */
  upstreamTrailers: IncomingHttpHeaders | undefined;

  constructor(
    readonly active: ActiveConfig,
    readonly requestId: string,
    readonly started: number,
    readonly route: CompiledRoute,
    readonly upstream: CompiledUpstream,
    readonly stats: RequestStats,
    readonly pool: UpstreamPool,
    readonly req: Http2ServerRequest,
    readonly res: Http2ServerResponse,
    readonly grpc: boolean,
    readonly method: string,
    readonly path: string,
    readonly headers: IncomingHttpHeaders,
    readonly hasBody: boolean,
  ) {}

  release(): void {
    if (!this.holding) return;
    this.holding = false;
    this.pool.finish(this.endpoint!);
  }
}

export class H2RequestHandler {
  private readonly sweep = new Sweep<H2Exchange>((exchange, now) => this.visit(exchange, now));
  private readonly accessLog: () => AccessLog | undefined;

  constructor(private readonly options: H2HandlerOptions) {
    this.accessLog = options.accessLog ?? (() => undefined);
  }

  handle = (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    res.on('error', noop);
    req.on('error', noop);
    const started = performance.now();
    const active = this.options.current();
    const requestId = clientRequestId(req.headers) ?? randomUUID();
    const grpc = isGrpc(req.headers);
    const method = req.method;
    const url = req.url;
    const log = this.accessLog();
    // The exchange, once the request is routed: what the access log line names.
    const routed: { exchange?: H2Exchange } = {};
    if (log) res.once('close', () => this.log(log, req, res, requestId, started, routed.exchange));

    const limits = active.snapshot.config.limits;
    const hasBody = !req.stream.endAfterHeaders;
    const headerCount = req.rawHeaders.length / 2;
    const screened = screenH2Request(method, url, req.headers, headerCount, hasBody, limits, active.snapshot.keepEscapedSlashes);
    if (!screened.ok) {
      if (screened === SERVER_OPTIONS) {
        res.writeHead(200, { allow: ALLOW, 'content-length': '0', 'x-request-id': requestId });
        return void res.end();
      }
      return this.reject(res, grpc, screened.status, screened.message, screened.reason, requestId, screened.headers);
    }
    // What routing and the upstream see: headers without pseudo-headers, the authority as Host.
    const headers: IncomingHttpHeaders = {};
    for (const name in req.headers) if (name.charCodeAt(0) !== 58) headers[name] = req.headers[name];
    const authority = req.headers[':authority'] ?? req.headers.host;
    if (typeof authority === 'string') headers.host = authority;
    const route = active.snapshot.route({ method, path: screened.path, host: hostOf(headers.host), headers });
    if (!route) {
      active.unmatchedStats.observe(404, 0);
      return this.reject(res, grpc, 404, 'no route matches this request', 'no_route', requestId);
    }
    if (escapedSlashRefused(active.snapshot, route, screened.path)) {
      return this.reject(res, grpc, 400, 'bad request: encoded slash or backslash in path', 'bad_path', requestId);
    }
    const upstream = route.pickBackend(headers);
    const stats = active.statsFor(route, upstream);
    const session = req.stream.session;
    const peer = session?.socket?.remoteAddress ?? '';
    cleanUpstreamHeaders(headers, { requestId, peer, trustedPeer: active.isTrusted(peer), encrypted: session?.encrypted === true });
    const pool = this.options.pools.poolFor(upstream);
    const exchange = new H2Exchange(active, requestId, started, route, upstream, stats, pool, req, res, grpc, method, screened.path + screened.query, headers, hasBody);
    const timeout = grpc ? grpcTimeoutMs(req.headers['grpc-timeout']) : undefined;
    if (timeout !== undefined) exchange.callDeadline = Date.now() + timeout;
    routed.exchange = exchange;
    // After the headers were cleaned: the copies carry what the primary gets, marked x-shadow-request.
    if (route.shadows.length > 0) exchange.mirror = this.options.shadow?.begin(req, route, requestId, upstream, { headers, hasBody, grpc });
    active.inflight++;
    res.once('close', () => this.closed(exchange));
    if (hasBody) guardBody(exchange, limits.maxBodyBytes, this.options.metrics);
    this.send(exchange, undefined);
  };

  /** One try: an endpoint from the pool, the request forwarded over the upstream's protocol. */
  private send(exchange: H2Exchange, avoid: Endpoint | undefined): void {
    const endpoint = exchange.pool.pick(avoid);
    if (exchange.tries === 0) exchange.sentAt = performance.now();
    exchange.endpoint = endpoint;
    exchange.holding = true;
    exchange.tries++;
    exchange.pool.begin(endpoint);
    exchange.headDeadline = Date.now() + exchange.upstream.timeoutMs;
    this.sweep.add(exchange);
    if (speaksH2(exchange.upstream)) this.sendH2(exchange, endpoint);
    else this.sendHttp1(exchange, endpoint);
  }

  private sendH2(exchange: H2Exchange, endpoint: Endpoint): void {
    const { req } = exchange;
    const announced = req.headers['trailer'] !== undefined;
    let upstream: H2Forward;
    try {
      upstream = new H2Forward(
        this.options.sessions,
        endpoint,
        {
          method: exchange.method,
          path: upstreamPath(exchange.upstream.target, exchange.path),
          authority: exchange.headers.host ?? exchange.upstream.target.host,
          headers: exchange.headers,
          trailers: req.headers['te'] === 'trailers' || exchange.grpc,
          body: exchange.hasBody ? req : undefined,
          ...(announced ? { bodyTrailers: () => req.trailers } : {}),
        },
        {
          response: (status, headers, headOnly) => {
            exchange.mirror?.primaryAnswer(status, h2HeaderObject(headers), upstream.stream, exchange.sentAt, () => exchange.upstreamTrailers);
            this.relay(exchange, status, h2ResponseRaw(headers), upstream.stream, headers['grpc-status'] as string | undefined, headOnly, (res) => upstream.relay(res));
          },
          trailers: (trailers) => {
            exchange.upstreamTrailers = h2HeaderObject(trailers);
            const clean = headerObject(h2ResponseRaw(trailers));
            if (clean['grpc-status'] !== undefined) exchange.grpcStatus = String(clean['grpc-status']);
            if (!exchange.res.writableEnded && !exchange.failed) exchange.res.addTrailers(clean);
          },
          // A reset before the answer's head is told as one on a connection not made (retried like a failed connect).
          failed: (err, connected) => this.upstreamFailed(exchange, err, connected && exchange.responded),
          closed: () => {
            exchange.upstreamEndedAt = performance.now();
          },
        },
      );
    } catch (err) {
      return this.upstreamFailed(exchange, err, false);
    }
    exchange.cancelUpstream = () => upstream.destroy();
    exchange.relayedBytes = () => upstream.socket.bytesRead;
  }

  private sendHttp1(exchange: H2Exchange, endpoint: Endpoint): void {
    const { req } = exchange;
    const url = endpoint.url;
    const request = (endpoint.tls ? https : http).request({
      agent: endpoint.agent,
      protocol: url.protocol,
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port,
      method: exchange.method,
      path: upstreamPath(exchange.upstream.target, exchange.path),
      headers: http1Headers(exchange.headers, exchange.hasBody),
    });
    let connected = false;
    request.once('socket', (socket) => {
      if (socket.connecting) socket.once('connect', () => (connected = true));
      else connected = true;
    });
    exchange.cancelUpstream = () => request.destroy();
    request.on('error', (err) => this.upstreamFailed(exchange, err, connected));
    request.once('response', (response: IncomingMessage) => {
      response.on('error', noop);
      // Set before pipe() ends the client's answer on 'end'.
      response.once('end', () => {
        exchange.upstreamEndedAt = performance.now();
        const trailers = headerObject(response.rawTrailers);
        if (Object.keys(trailers).length > 0 && !exchange.res.writableEnded) exchange.res.addTrailers(trailers);
      });
      exchange.mirror?.primaryResponse(response, exchange.sentAt);
      response.once('close', () => {
        if (!response.complete && !exchange.done && !exchange.failed) this.upstreamFailed(exchange, Object.assign(new Error('upstream response cut'), { code: 'ECONNRESET' }), true);
      });
      this.relay(exchange, response.statusCode ?? 502, response.rawHeaders, response, response.headers['grpc-status'] as string | undefined, false);
    });
    if (exchange.hasBody) req.pipe(request);
    else request.end();
  }

  /** The upstream's answer head is in: relay it and stream the body. */
  private relay(
    exchange: H2Exchange,
    status: number,
    raw: string[],
    body: NodeJS.ReadableStream & { destroy(): void },
    grpcStatus: string | undefined,
    /** The answer ended with its head (gRPC's trailers-only): it must end with it downstream too. */
    headOnly: boolean,
    /** How an HTTP/2 upstream's body reaches the client (H2Forward.relay, which counts its bytes); else piped here. */
    forward?: (res: Http2ServerResponse) => void,
  ): void {
    const { res } = exchange;
    if (exchange.done || exchange.failed || res.writableEnded || res.destroyed) return void body.destroy();
    exchange.responded = true;
    if (grpcStatus !== undefined) exchange.grpcStatus = grpcStatus;
    exchange.pool.record(exchange.endpoint!, outcomeOfStatus(status));
    // A gRPC call has no deadline on its body beyond its own grpc-timeout.
    if (!exchange.callDeadline) this.sweep.delete(exchange);
    const headers = headerObject(downstreamHeaders(raw, exchange.requestId));
    try {
      if (headOnly) {
        body.resume();
        return void res.stream.respond({ ...headers, ':status': status }, { endStream: true });
      }
      res.writeHead(status, headers);
    } catch (err) {
      body.destroy();
      return this.fail(exchange, 'reset', 502, 'upstream sent an invalid response', err);
    }
    if (forward) return forward(res);
    body.on('data', (chunk: Buffer) => {
      exchange.bytes += chunk.length;
    });
    body.pipe(res);
  }

  private upstreamFailed(exchange: H2Exchange, err: unknown, connected: boolean): void {
    if (exchange.done || exchange.failed) return;
    const fault = classifyUpstreamError(err, connected);
    const held = exchange.holding;
    exchange.release();
    if (held) exchange.pool.record(exchange.endpoint!, 'failure');
    // Nothing of the request has gone anywhere yet: another endpoint may take it.
    const pool = exchange.pool;
    const facts = { method: exchange.method, hasBody: exchange.hasBody, requestWritten: false, bodyStarted: exchange.hasBody };
    if (
      fault.reason === 'connect' &&
      !exchange.responded &&
      exchange.tries < pool.retry.attempts &&
      pool.retry.allows('connect', facts, 0) &&
      pool.budget.tryRetry(Date.now())
    ) {
      exchange.stats.retries.inc();
      return this.send(exchange, exchange.endpoint);
    }
    this.fail(exchange, fault.reason, fault.status, fault.message, err);
  }

  /** The sweep found an exchange past a deadline. */
  private visit(exchange: H2Exchange, now: number): boolean {
    if (exchange.done || exchange.failed) return false;
    const callOver = exchange.callDeadline > 0 && now >= exchange.callDeadline;
    if (!callOver && (exchange.responded || now < exchange.headDeadline)) return true;
    exchange.cancelUpstream?.();
    exchange.release();
    this.fail(exchange, 'timeout', 504, callOver ? 'deadline exceeded' : 'upstream timed out', new UpstreamTimeoutError('response'));
    return false;
  }

  private fail(exchange: H2Exchange, reason: UpstreamErrorReason, status: number, message: string, err: unknown): void {
    if (exchange.failed) return;
    exchange.failed = true;
    exchange.release();
    exchange.cancelUpstream?.();
    exchange.upstreamEndedAt ||= performance.now();
    exchange.stats.upstreamError(reason);
    exchange.mirror?.primaryFailed(status, exchange.started);
    if (this.options.logger.enabled('warn')) {
      this.options.logger.warn('upstream.error', `${exchange.upstream.name}: ${message}`, {
        route: exchange.route.name,
        upstream: exchange.upstream.name,
        endpoint: exchange.endpoint?.name,
        tries: exchange.tries,
        reason,
        error: (err as Error)?.message,
        requestId: exchange.requestId,
      });
    }
    const { res } = exchange;
    if (exchange.grpc) {
      const code = grpcStatusFor(status, reason === 'timeout');
      exchange.grpcStatus = String(code);
      return endGrpc(res, code, message, exchange.requestId);
    }
    if (res.headersSent) return void res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    sendError(res as never, status, message, exchange.requestId);
  }

  private reject(res: Http2ServerResponse, grpc: boolean, status: number, message: string, reason: string, requestId: string, headers?: Record<string, string>): void {
    this.options.metrics.rejectedRequests.inc({ reason });
    if (grpc) return endGrpc(res, grpcStatusFor(status, false), message, requestId);
    sendError(res as never, status, message, requestId, headers ? { headers } : {});
  }

  /** The client's stream is over, answered or not: counted, and the upstream's stream let go. */
  private closed(exchange: H2Exchange): void {
    if (exchange.done) return;
    exchange.done = true;
    this.sweep.delete(exchange);
    const { res } = exchange;
    // A stream the client reset also counts as finished for the compat response: the reset code tells.
    const finished = res.writableFinished && (res.stream.rstCode ?? 0) === http2.constants.NGHTTP2_NO_ERROR;
    if (!finished) exchange.cancelUpstream?.();
    exchange.mirror?.clientClosed(finished);
    exchange.release();
    const code = res.headersSent && finished ? res.statusCode : 499;
    exchange.stats.observe(code, (performance.now() - exchange.started) / 1000);
    if (exchange.grpc) {
      const name = finished ? grpcCodeName(exchange.grpcStatus) : 'Canceled';
      this.options.metrics.grpcRequests.labels(exchange.route.name, exchange.upstream.name, name).inc();
    }
    exchange.active.requestDone();
  }

  private log(log: AccessLog, req: Http2ServerRequest, res: Http2ServerResponse, requestId: string, started: number, exchange: H2Exchange | undefined): void {
    const ended = performance.now();
    const entry = {
      requestId,
      client: req.stream.session?.socket?.remoteAddress ?? '',
      route: exchange?.route.name ?? '',
      upstream: exchange?.upstream.name ?? '',
      endpoint: exchange?.endpoint?.name ?? '',
      method: req.method,
      path: req.url,
      httpVersion: '2.0',
      status: res.headersSent ? res.statusCode : 499,
      bytes: exchange?.relayedBytes?.() ?? exchange?.bytes ?? 0,
      durationMs: ended - started,
      upstreamMs: exchange && exchange.sentAt > 0 ? (exchange.upstreamEndedAt || ended) - exchange.sentAt : undefined,
      retries: exchange ? Math.max(0, exchange.tries - 1) : 0,
      shadow: '',
      headers: req.headers,
    };
    // A mirrored request's line waits for its copies' outcomes, as on HTTP/1.1.
    if (exchange?.mirror) exchange.mirror.whenSettled((shadow) => log.write({ ...entry, shadow }));
    else log.write(entry);
  }

  close(): void {
    this.sweep.close();
  }
}

function noop(): void {}

/**
 * Ends a gRPC call with `status`: trailers-only when nothing was answered
 * yet, else in the trailers after what was relayed.
 */
function endGrpc(res: Http2ServerResponse, status: number, message: string, requestId: string): void {
  if (res.writableEnded || res.destroyed) return;
  try {
    // Trailers-only: the status in headers that end the stream (a gRPC client reads them only so).
    if (!res.headersSent) return void res.stream.respond({ ...grpcFailureHeaders(status, message, requestId), ':status': 200 }, { endStream: true });
    res.addTrailers({ 'grpc-status': String(status), 'grpc-message': grpcMessage(message) });
    res.end();
  } catch {
    res.destroy();
  }
}

/** An HTTP/2 request's headers for an HTTP/1.1 upstream: its body, of unknown length, goes chunked. */
function http1Headers(headers: IncomingHttpHeaders, hasBody: boolean): IncomingHttpHeaders {
  if (!hasBody || headers['content-length'] !== undefined) return headers;
  return { ...headers, 'transfer-encoding': 'chunked' };
}

/** A request body over limits.maxBodyBytes ends the call: 413 (RESOURCE_EXHAUSTED for gRPC). */
function guardBody(exchange: H2Exchange, limit: number, metrics: GatewayMetrics): void {
  let received = 0;
  const { req } = exchange;
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received <= limit) return;
    req.off('data', onData);
    metrics.rejectedRequests.inc({ reason: 'body_size' });
    exchange.failed = true;
    exchange.release();
    exchange.cancelUpstream?.();
    if (exchange.grpc) endGrpc(exchange.res, GrpcStatus.RESOURCE_EXHAUSTED, 'request body too large', exchange.requestId);
    else if (!exchange.res.headersSent) sendError(exchange.res as never, 413, 'request body too large', exchange.requestId);
    else exchange.res.stream.close(http2.constants.NGHTTP2_CANCEL);
    req.resume();
  };
  req.on('data', onData);
}
