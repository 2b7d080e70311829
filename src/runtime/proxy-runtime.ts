/**
 * The serving half of a gateway: the user-facing listener, the request
 * handler, connection pools and shadow copies, running from one snapshot at
 * a time. `apply` swaps a new snapshot in whole; requests already in flight
 * finish on the one they started with. Used by a single-process gateway and
 * by each worker of a multi-process one.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Snapshot } from '../config/compile.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, RequestStats } from '../metrics/registry.js';
import { ProxyHandler } from '../proxy/handler.js';
import { UpstreamPools } from '../proxy/pools.js';
import type { PairSink } from '../shadow/pair.js';
import { ShadowService } from '../shadow/service.js';
import { TlsTermination, type ListenerMaterial } from '../tls/listener.js';
import { ActiveConfig } from './active.js';

export interface ProxyRuntimeOptions {
  readonly snapshot: Snapshot;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly pairSink?: PairSink;
  /** Certificates: with them (and `tls` in the config) the listener speaks HTTPS. */
  readonly tls?: ListenerMaterial;
}

export class ProxyRuntime {
  readonly server: http.Server;
  readonly shadow: ShadowService;
  private readonly handler: ProxyHandler;
  private readonly pools = new UpstreamPools();
  private readonly statsCache = new Map<string, RequestStats>();
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private active: ActiveConfig;
  private draining = false;
  private readonly sockets = new Set<Duplex>();
  private readonly tls: TlsTermination | undefined;

  constructor(options: ProxyRuntimeOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.active = new ActiveConfig(options.snapshot, this.metrics, this.statsCache);
    this.pools.retain(options.snapshot.upstreams.values());
    this.shadow = new ShadowService({
      metrics: this.metrics,
      logger: this.logger,
      ...(options.pairSink ? { sink: options.pairSink } : {}),
      settings: () => ({ limits: this.active.snapshot.config.limits, timeouts: this.active.snapshot.config.timeouts }),
    });
    this.handler = new ProxyHandler({
      metrics: this.metrics,
      logger: this.logger,
      pools: this.pools,
      shadow: this.shadow,
      current: () => this.active,
    });
    const { limits, timeouts } = options.snapshot.config;
    this.tls = options.tls && options.snapshot.config.tls ? new TlsTermination(options.tls, this.metrics, timeouts.headerMs) : undefined;
    this.server = (this.tls ?? http).createServer(
      {
        maxHeaderSize: limits.maxHeaderBytes,
        headersTimeout: timeouts.headerMs,
        // Whole-request deadlines would cut slow, legitimate uploads; bodies
        // are bounded by size and by the idle timeouts instead.
        requestTimeout: 0,
        keepAliveTimeout: timeouts.idleMs,
        connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(timeouts.headerMs / 4))),
        requireHostHeader: true,
        joinDuplicateHeaders: false,
        insecureHTTPParser: false,
      },
      (req, res) => this.onRequest(req, res, false),
    );
    // Node's own header cap silently drops extra headers but still frames
    // the body with them; count them ourselves instead (limits.maxHeaderCount).
    this.server.maxHeadersCount = 0;
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, true));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
    this.server.on('connection', (socket: Duplex) => {
      this.sockets.add(socket);
      this.metrics.activeConnections.inc();
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.metrics.activeConnections.dec();
      });
    });
  }

  get snapshot(): Snapshot {
    return this.active.snapshot;
  }

  get inflight(): number {
    return this.active.inflight;
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const listening = new Promise<{ host: string; port: number }>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, exclusive: false }, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve({ host, port: typeof address === 'object' && address ? address.port : port });
      });
    });
    return this.tls ? listening.then((bound) => this.tls!.listenRedirect(this.snapshot.config.tls?.redirectHttp, bound)) : listening;
  }

  /** The TLS side, when the listener speaks HTTPS. */
  get tlsTermination(): TlsTermination | undefined {
    return this.tls;
  }

  /** New certificates for new handshakes; connections already open keep theirs. */
  applyTls(material: ListenerMaterial): void {
    this.tls?.apply(material);
  }

  /** Swaps in a new snapshot. Returns at once; the old one retires when idle. */
  apply(snapshot: Snapshot): void {
    const previous = this.active;
    const next = new ActiveConfig(snapshot, this.metrics, this.statsCache);
    this.pools.retain(snapshot.upstreams.values());
    this.active = next;
    const { timeouts } = snapshot.config;
    this.server.keepAliveTimeout = timeouts.idleMs;
    this.server.headersTimeout = timeouts.headerMs;
    const shadowed = snapshot.routes.flatMap((r) => [...r.shadows.map((s) => s.upstream), ...(r.baseline ? [r.baseline] : [])]);
    this.shadow.retainOnly(shadowed);
    previous.retire(() => this.pools.release(previous.snapshot.upstreams.values()));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    if (this.draining) res.shouldKeepAlive = false;
    try {
      this.handler.handle(req, res, expectContinue);
    } catch (err) {
      // A bug must cost one request, not the process.
      this.logger.error('request.crash', `request handling failed: ${(err as Error).stack ?? err}`);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json', connection: 'close' });
        res.end(JSON.stringify({ error: 'internal error' }));
      } else res.destroy();
    }
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const code = err.code ?? '';
    const reason = code === 'HPE_HEADER_OVERFLOW' ? 'header_size' : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'header_timeout' : 'malformed';
    this.metrics.rejectedRequests.inc({ reason });
    const busy = (socket as Duplex & { _httpMessage?: unknown })._httpMessage;
    if (code === 'ECONNRESET' || !socket.writable || busy) {
      socket.destroy();
      return;
    }
    const [status, text] =
      reason === 'header_size'
        ? [431, 'Request Header Fields Too Large']
        : reason === 'header_timeout'
          ? [408, 'Request Timeout']
          : [400, 'Bad Request'];
    const body = JSON.stringify({ error: `${text.toLowerCase()}` });
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
    (socket as Duplex & { destroySoon?: () => void }).destroySoon?.();
  }

  /**
   * Graceful stop: refuse new connections, close idle ones, let in-flight
   * requests (and their shadow copies) finish, up to the deadline.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    void this.tls?.closeRedirect();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const started = Date.now();
    const idle = setInterval(() => this.server.closeIdleConnections(), 100);
    const timer = new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref());
    await Promise.race([closed, timer]);
    clearInterval(idle);
    const left = Math.max(0, deadlineMs - (Date.now() - started));
    await this.shadow.drain(left);
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await this.close();
  }

  async close(): Promise<void> {
    await this.tls?.closeRedirect();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
    this.handler.close();
    this.pools.destroy();
    await this.shadow.close();
  }
}
