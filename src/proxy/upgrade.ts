/**
 * Upgraded connections (WebSocket, and any other `Upgrade`), on the same
 * footing as plain requests: the same screening (framing, limits, target
 * normalization), the same routing and backend pick, the same header
 * hygiene, then a tunnel.
 *
 *   screen → route → pick → headers (steps.ts, as plain requests) → GET with Connection: upgrade ─┬→ 101: tunnel both ways
 *                                                                                                  └→ other: relayed, connection closed
 *
 * The tunnel opens only when the upstream itself answers 101 with the
 * protocol the client asked for; any other answer is passed back and the
 * connection closed, so a refused upgrade never leaves a raw pipe to the
 * upstream (the classic WebSocket smuggling). Both sockets carry error
 * handlers from the first moment (Node removes its own from an upgraded
 * socket), a tunnel with no traffic for timeouts.websocketIdle is closed,
 * and either side closing closes the other.
 *
 * Upgrade requests must be GET on HTTP/1.1 without a body. Where Node lets
 * the gateway decide per request (shouldUpgradeCallback, Node >= 24.9),
 * other Upgrade requests are served as plain requests, the Upgrade ignored
 * (RFC 9110 section 7.8); on older Node they are refused with 400.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { CompiledUpstream } from '../config/compile.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import type { ActiveConfig } from './active.js';
import { stepContext } from './context.js';
import { clientRequestId, downstreamHeaders } from './headers.js';
import { upstreamPath } from './path.js';
import { UpstreamDeadlines, WatchedRequest } from '../upstream/deadlines.js';
import { classifyUpstreamError } from '../upstream/faults.js';
import { openUpstreamRequest } from '../upstream/http1.js';
import type { UpstreamPools } from '../upstream/pools.js';
import { ownReads } from '../upstream/shared-reads.js';
import { sendRawError } from './responses.js';
import { headers, pick, route, screen } from './steps.js';

/** An upgrade's request to the upstream, watched by the upstream sweep until it is answered. */
class UpgradeAttempt extends WatchedRequest {
  constructor(
    readonly outgoing: ClientRequest,
    upstream: CompiledUpstream,
  ) {
    super();
    this.timeoutsOf(upstream);
  }
}

export interface UpgradeHandlerOptions {
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly pools: UpstreamPools;
  readonly current: () => ActiveConfig;
  readonly draining: () => boolean;
}

/** An Upgrade value: a list of protocol tokens (RFC 9110 section 7.8). */
const UPGRADE_VALUE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z/]+(?:[ \t]*,[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z/]+)*$/;

/**
 * Which upgrade requests are handled as upgrades (Node >= 24.9 asks): GET
 * on HTTP/1.1 without a body. Others are plain requests.
 */
export function upgradeWanted(req: IncomingMessage): boolean {
  return (
    req.method === 'GET' &&
    req.httpVersionMajor === 1 &&
    req.httpVersionMinor === 1 &&
    req.headers['content-length'] === undefined &&
    req.headers['transfer-encoding'] === undefined
  );
}

export class UpgradeHandler {
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly pools: UpstreamPools;
  private readonly current: () => ActiveConfig;
  private readonly draining: () => boolean;
  /** Client sockets of open tunnels. */
  private readonly tunnels = new Set<Duplex>();
  /** Until the upstream answers; an open tunnel has its idle timeout instead. */
  private readonly deadlines = new UpstreamDeadlines<UpgradeAttempt>((attempt, error) => attempt.outgoing.destroy(error));

  constructor(options: UpgradeHandlerOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.pools = options.pools;
    this.current = options.current;
    this.draining = options.draining;
  }

  get open(): number {
    return this.tunnels.size;
  }

  /** Entry point for the server's 'upgrade' event. */
  handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Node has removed its own listeners from an upgraded socket.
    socket.on('error', noop);
    const started = performance.now();
    const active = this.current();
    const requestId = clientRequestId(req.headers) ?? randomUUID();
    const refuse = (status: number, message: string, reason: string, headers?: Record<string, string>) => {
      this.metrics.rejectedRequests.inc({ reason });
      sendRawError(socket, status, message, requestId, headers);
    };
    if (this.draining()) return refuse(503, 'the gateway is shutting down', 'draining');

    const ctx = stepContext(req, active, requestId);
    const screenRefused = screen(ctx);
    if (screenRefused) return refuse(screenRefused.status === 200 ? 400 : screenRefused.status, screenRefused.message || 'bad request', screenRefused.reason, screenRefused.headers);
    if (!upgradeWanted(req) || ctx.hasBody) {
      return refuse(400, 'bad request: an upgrade must be a GET on HTTP/1.1 without a body', 'upgrade');
    }
    const protocol = req.headers.upgrade ?? '';
    if (!UPGRADE_VALUE.test(protocol)) return refuse(400, 'bad request: malformed Upgrade header', 'upgrade');
    const refused = route(ctx) ?? pick(ctx, this.pools);
    if (refused) {
      if (refused.unmatched) active.unmatchedStats.observe(refused.status, (performance.now() - started) / 1000);
      return refuse(refused.status, refused.message, refused.reason, refused.headers);
    }
    headers(ctx);
    req.headers.connection = 'upgrade';
    req.headers.upgrade = protocol;
    const upstream = ctx.upstream!;
    const stats = ctx.stats!;

    active.inflight++;
    let settled = false;
    const settle = (code: number) => {
      if (settled) return;
      settled = true;
      stats.observe(code, (performance.now() - started) / 1000);
      active.requestDone();
    };
    const state = { connected: false };
    // The endpoint carries this exchange, tunnel included, until it closes.
    const pool = ctx.pool!;
    const endpoint = pool.pick();
    pool.begin(endpoint);
    let held = true;
    let tunnelled = false;
    const release = () => {
      if (held) pool.finish(endpoint);
      held = false;
    };
    const upReq = openUpstreamRequest(endpoint, 'GET', upstreamPath(endpoint.url, ctx.path + ctx.query), req.headers);
    upReq.end();
    const attempt = new UpgradeAttempt(upReq, upstream);
    this.deadlines.watch(attempt);
    upReq.once('close', () => {
      this.deadlines.unwatch(attempt);
      // The tunnel's socket was handed over: it is released when that closes.
      if (!tunnelled) release();
    });
    upReq.once('socket', (upstreamSocket: Socket) => {
      attempt.upstreamRequest = upReq;
      if (!upstreamSocket.connecting) state.connected = true;
      else upstreamSocket.once('connect', () => (state.connected = true));
    });
    upReq.once('finish', () => (attempt.requestSentAt = Date.now()));
    // The client left during the handshake: drop the upstream request at once.
    const onClientGone = () => {
      upReq.destroy();
      settle(499);
    };
    socket.once('close', onClientGone);

    upReq.on('error', (err) => {
      socket.off('close', onClientGone);
      if (settled) return;
      if (socket.destroyed) return settle(499);
      const fault = classifyUpstreamError(err, state.connected);
      pool.record(endpoint, 'failure');
      stats.upstreamError(fault.reason);
      this.warn(upstream, fault.message, err, requestId);
      settle(fault.status);
      sendRawError(socket, fault.status, fault.message, requestId);
    });

    upReq.on('response', (res: IncomingMessage) => {
      // Not switched: pass the answer back, then close; no tunnel.
      this.deadlines.unwatch(attempt);
      socket.off('close', onClientGone);
      res.on('error', noop);
      const status = res.statusCode ?? 502;
      if (status < 200) {
        // A 101 that Node did not take for a switch (no Upgrade header).
        res.destroy();
        stats.upstreamError('reset');
        this.warn(upstream, 'upstream sent 101 without a protocol', undefined, requestId);
        settle(502);
        return sendRawError(socket, 502, 'upstream switched protocols without naming one', requestId);
      }
      settle(status);
      if (socket.destroyed) return void res.destroy();
      socket.write(responseHead(status, res.statusMessage, downstreamHeaders(res.rawHeaders, requestId), 'connection: close\r\n'));
      res.pipe(socket);
      socket.once('finish', () => socket.destroy());
      socket.once('close', () => res.destroy());
    });

    upReq.on('upgrade', (res: IncomingMessage, upSocket: Socket, sharedHead: Buffer) => {
      // The connection's reads shared a buffer until now; a tunnel keeps what it reads (shared-reads.ts).
      ownReads(upSocket);
      const upHead = Buffer.from(sharedHead);
      this.deadlines.unwatch(attempt);
      socket.off('close', onClientGone);
      upSocket.on('error', noop);
      const switched = res.headers.upgrade;
      if (!switched || !offered(protocol, switched)) {
        upSocket.destroy();
        stats.upstreamError('reset');
        this.warn(upstream, 'upstream switched to a protocol the client did not ask for', undefined, requestId);
        settle(502);
        return sendRawError(socket, 502, 'upstream switched to a protocol the client did not ask for', requestId);
      }
      settle(101);
      pool.record(endpoint, 'ok');
      tunnelled = true;
      upSocket.once('close', release);
      if (socket.destroyed) return void upSocket.destroy();
      upSocket.setTimeout(0);
      const extra = `connection: Upgrade\r\nupgrade: ${switched}\r\n`;
      socket.write(responseHead(101, res.statusMessage, downstreamHeaders(res.rawHeaders, requestId), extra));
      this.tunnel(socket, upSocket, head, upHead, active.snapshot.config.timeouts.websocketIdleMs);
    });
  };

  /** Ends every open tunnel (shutdown). */
  closeAll(): void {
    for (const socket of this.tunnels) socket.destroy();
  }

  close(): void {
    this.closeAll();
    this.deadlines.close();
  }

  private tunnel(client: Duplex, server: Socket, head: Buffer, upHead: Buffer, idleMs: number): void {
    this.tunnels.add(client);
    const close = () => {
      client.destroy();
      server.destroy();
    };
    client.once('close', () => {
      this.tunnels.delete(client);
      server.destroy();
    });
    server.once('close', () => client.destroy());
    const idle = () => close();
    (client as Socket).setTimeout?.(idleMs, idle);
    server.setTimeout(idleMs, idle);
    (client as Socket).setNoDelay?.(true);
    server.setNoDelay(true);
    if (upHead.length > 0) client.write(upHead);
    if (head.length > 0) server.write(head);
    client.pipe(server);
    server.pipe(client);
  }

  private warn(upstream: CompiledUpstream, message: string, err: unknown, requestId: string): void {
    if (!this.logger.enabled('warn')) return;
    this.logger.warn('upstream.error', `${upstream.name}: ${message} (upgrade)`, {
      upstream: upstream.name,
      error: (err as Error | undefined)?.message,
      requestId,
    });
  }
}

function noop(): void {}

/** A status line and headers, for a response written on a raw socket. */
function responseHead(status: number, message: string | undefined, headers: string[], extra: string): string {
  let head = `HTTP/1.1 ${status} ${message || STATUS_CODES[status] || ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}${extra}\r\n`;
}

/** Whether every protocol the upstream switched to is one the client offered. */
function offered(requested: string, chosen: string): boolean {
  const tokens = (v: string) => v.split(',').map((t) => t.trim().toLowerCase());
  const want = new Set(tokens(requested));
  return tokens(chosen).every((t) => t !== '' && want.has(t));
}
