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
import type { GatewayConfig } from '../config/types.js';
import { AccessLog } from '../log/access-log.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, RequestStats } from '../metrics/registry.js';
import { ConnectionGuard, type ConnectionSettings } from '../proxy/connections.js';
import { ProxyHandler } from '../proxy/handler.js';
import { UpstreamPools } from '../upstream/pools.js';
import { sendRawError } from '../proxy/responses.js';
import { ALLOW } from '../proxy/screen.js';
import { UpgradeHandler, upgradeWanted } from '../proxy/upgrade.js';
import type { PairSink } from '../diff/pair.js';
import { ShadowService } from '../shadow/service.js';
import type { ShadowThreads } from '../shadow/threads.js';
import { TlsTermination, type ListenerMaterial } from '../tls/listener.js';
import { ActiveConfig } from '../proxy/active.js';
import { derivedMaxConnections } from './descriptors.js';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { H2RequestHandler } from '../proxy/h2-handler.js';
import { H2Sessions } from '../upstream/h2.js';
import { H2Front, divertAlpn, divertPreface, h2Limits } from './h2.js';
import { SpentReads } from './spent-reads.js';

export interface ProxyRuntimeOptions {
  readonly snapshot: Snapshot;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly pairSink?: PairSink;
  /** The process's shadow threads (shared with comparison); without them the runtime's shadows start their own. */
  readonly shadowThreads?: ShadowThreads;
  /** Certificates: with them (and `tls` in the config) the listener speaks HTTPS. */
  readonly tls?: ListenerMaterial;
  /** Serving processes sharing the listener (serve --workers N): configured connection caps are shared out. */
  readonly processes?: number;
}

/**
 * The connection rules of one serving process. Each process has its own
 * descriptors, so the derived cap is per process; a configured cap is the
 * listener's, shared out among the processes (the kernel spreads
 * connections evenly, so a client's share is too, approximately).
 */
export function connectionSettings(config: GatewayConfig, processes = 1): ConnectionSettings {
  const share = (n: number) => Math.max(1, Math.ceil(n / processes));
  const { limits, timeouts } = config;
  return {
    headerMs: timeouts.headerMs,
    idleMs: timeouts.idleMs,
    maxConnections: limits.maxConnections !== undefined ? share(limits.maxConnections) : derivedMaxConnections(),
    maxPerClient: limits.maxConnectionsPerClient !== undefined ? share(limits.maxConnectionsPerClient) : 0,
  };
}

/**
 * Node's own per-connection timers (keep-alive, request head, TLS
 * handshake) stay as backstops behind the sweep's deadlines
 * (connections.ts), which close first and count why. Node also advertises
 * the keep-alive one to clients (Keep-Alive: timeout=N, in whole seconds).
 */
const backstopMs = (ms: number) => ms + 500;

/** The responses begun on one client connection: the latest, and the one before it. */
interface SocketResponses {
  previous: ServerResponse | undefined;
  latest: ServerResponse | undefined;
}

/**
 * Where a client socket keeps the last two responses begun on it, for
 * onClientError: a field of its own (a WeakMap entry set and deleted per
 * request cost more).
 */
const kResponses = Symbol('gatewayctl.responses');
type WithResponses = Duplex & { [kResponses]?: SocketResponses };

/**
 * The 'close' listener of every response: one function for them all, not a
 * closure per request. A response that is over is let go (responses on a
 * connection end in order, so once the latest one is over nothing is in
 * progress). Held on, an idle keep-alive connection kept its last two
 * requests and answers alive: 2 KB of heap per connection.
 */
function responseOver(this: ServerResponse): void {
  const seen = (this.req.socket as WithResponses | null)?.[kResponses];
  if (seen?.latest === this) seen.latest = seen.previous = undefined;
  else if (seen?.previous === this) seen.previous = undefined;
}

/** The upstreams a snapshot sends shadow copies to. */
const shadowedUpstreams = (snapshot: Snapshot) => snapshot.routes.flatMap((r) => [...r.shadows.map((s) => s.upstream), ...(r.baseline ? [r.baseline] : [])]);

export class ProxyRuntime {
  readonly server: http.Server;
  readonly shadow: ShadowService;
  private readonly handler: ProxyHandler;
  private readonly h2Handler: H2RequestHandler;
  private readonly h2: H2Front;
  private readonly h2Sessions = new H2Sessions();
  /** Gives back this thread's spent socket reads a few megabytes at a time (spent-reads.ts). */
  private readonly spentReads = new SpentReads();
  private readonly upgrades: UpgradeHandler;
  private readonly pools: UpstreamPools;
  private readonly statsCache = new Map<string, RequestStats>();
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private active: ActiveConfig;
  private draining = false;
  private readonly sockets = new Set<Duplex>();
  private readonly tls: TlsTermination | undefined;
  private readonly connections: ConnectionGuard;
  private readonly processes: number;
  private connectionRules: ConnectionSettings;
  private accessLog: AccessLog | undefined;
  private lastLogFailure = 0;

  constructor(options: ProxyRuntimeOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.active = new ActiveConfig(options.snapshot, this.metrics, this.statsCache);
    this.processes = options.processes ?? 1;
    this.connectionRules = connectionSettings(options.snapshot.config, this.processes);
    this.pools = new UpstreamPools(this.metrics);
    this.pools.retain(options.snapshot.upstreams.values());
    this.shadow = new ShadowService({
      metrics: this.metrics,
      logger: this.logger,
      ...(options.pairSink ? { sink: options.pairSink } : {}),
      settings: () => {
        const config = this.active.snapshot.config;
        return { limits: config.limits, timeouts: config.timeouts, darkEgress: config.egress?.dark !== undefined };
      },
      pools: this.pools,
      h2Sessions: this.h2Sessions,
      ...(options.shadowThreads ? { threads: options.shadowThreads } : {}),
    });
    this.shadow.retainOnly(shadowedUpstreams(options.snapshot));
    this.handler = new ProxyHandler({
      metrics: this.metrics,
      logger: this.logger,
      pools: this.pools,
      shadow: this.shadow,
      current: () => this.active,
      draining: () => this.draining,
      accessLog: () => this.accessLog,
      sessions: this.h2Sessions,
    });
    this.upgrades = new UpgradeHandler({
      metrics: this.metrics,
      logger: this.logger,
      pools: this.pools,
      current: () => this.active,
      draining: () => this.draining,
    });
    this.configureAccessLog(options.snapshot);
    const { limits, timeouts } = options.snapshot.config;
    this.tls = options.tls && options.snapshot.config.tls ? new TlsTermination(options.tls, this.metrics, backstopMs(timeouts.headerMs)) : undefined;
    this.server = (this.tls ?? http).createServer(
      {
        maxHeaderSize: limits.maxHeaderBytes,
        headersTimeout: backstopMs(timeouts.headerMs),
        // Whole-request deadlines would cut slow, legitimate uploads; bodies
        // are bounded by size and by the idle timeouts instead.
        requestTimeout: 0,
        keepAliveTimeout: backstopMs(timeouts.idleMs),
        connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(timeouts.headerMs / 4))),
        requireHostHeader: true,
        joinDuplicateHeaders: false,
        insecureHTTPParser: false,
        // Node >= 24.9 asks per request; older versions ignore the option
        // and hand every Upgrade request to 'upgrade' (see upgrade.ts).
        shouldUpgradeCallback: upgradeWanted,
      } as http.ServerOptions,
      (req, res) => this.onRequest(req, res, false),
    );
    // HTTP/2 beside HTTP/1.1 on the same port: by ALPN with TLS, by the preface with h2c.
    this.h2Handler = new H2RequestHandler({
      metrics: this.metrics,
      logger: this.logger,
      pools: this.pools,
      sessions: this.h2Sessions,
      shadow: this.shadow,
      current: () => this.active,
      accessLog: () => this.accessLog,
    });
    this.h2 = new H2Front(
      () => h2Limits(this.active.snapshot.config),
      (req, res) => this.onH2Request(req, res),
      (reason) => this.metrics.rejectedRequests.inc({ reason }),
    );
    const handedOver = (socket: Duplex) => this.connections.handOver(socket);
    if (this.tls) divertAlpn(this.server, this.h2, handedOver);
    else divertPreface(this.server, this.h2, () => this.active.snapshot.config.listen.h2c === true, handedOver);
    // Node's own header cap silently drops extra headers but still frames
    // the body with them; count them ourselves instead (limits.maxHeaderCount).
    this.server.maxHeadersCount = 0;
    // Expect: 100-continue comes here instead of 'request': the same path,
    // which sends 100 Continue only once the request is accepted and routed.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, true));
    // Any other Expect: 417, through the same refusal path.
    this.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      this.track(req, res);
      this.handler.refuseExpectation(req, res);
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    // Without a listener Node would just drop CONNECT connections.
    this.server.on('connect', (req: IncomingMessage, socket: Duplex) => {
      socket.on('error', () => undefined);
      this.metrics.rejectedRequests.inc({ reason: 'method' });
      sendRawError(socket, 405, `method ${req.method} is not allowed`, undefined, { allow: ALLOW });
    });
    this.server.on('connection', (socket: Duplex) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.connections = new ConnectionGuard({ ...this.connectionRuleSource, listener: 'gateway', metrics: this.metrics, tls: this.tls !== undefined });
    this.connections.attach(this.server);
    this.logConnectionRules();
  }

  /** What every listener of this runtime applies to its connections. */
  private readonly connectionRuleSource = {
    settings: () => this.connectionRules,
    exempt: (address: string | undefined) => this.active.isTrusted(address),
  };

  private logConnectionRules(): void {
    const { maxConnections, maxPerClient } = this.connectionRules;
    this.logger.info('connections.limits', `at most ${maxConnections} client connections${maxPerClient ? `, ${maxPerClient} per client` : ''}${this.processes > 1 ? ' in this worker' : ''}`, {
      maxConnections,
      maxConnectionsPerClient: maxPerClient || undefined,
    });
  }

  get snapshot(): Snapshot {
    return this.active.snapshot;
  }

  get inflight(): number {
    return this.active.inflight;
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    // The first mirrored requests must not wait for the shadow threads to load their code.
    await this.shadow.ready();
    this.spentReads.start();
    const listening = new Promise<{ host: string; port: number }>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, exclusive: false }, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve({ host, port: typeof address === 'object' && address ? address.port : port });
      });
    });
    return this.tls ? listening.then((bound) => this.tls!.listenRedirect(this.snapshot.config.tls?.redirectHttp, bound, this.connectionRuleSource)) : listening;
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
    this.configureAccessLog(snapshot);
    this.h2.apply();
    const { timeouts } = snapshot.config;
    // limits.maxHeaderBytes is a server option only (Node has no public
    // setter), so a change to it is reported as needing a restart
    // (config/describe-change.ts) rather than written into the server.
    this.server.keepAliveTimeout = backstopMs(timeouts.idleMs);
    this.server.headersTimeout = backstopMs(timeouts.headerMs);
    const before = this.connectionRules;
    this.connectionRules = connectionSettings(snapshot.config, this.processes);
    if (before.maxConnections !== this.connectionRules.maxConnections || before.maxPerClient !== this.connectionRules.maxPerClient) this.logConnectionRules();
    this.shadow.retainOnly(shadowedUpstreams(snapshot));
    previous.retire(() => {
      this.pools.release(previous.snapshot.upstreams.values());
      // Once the old config's requests are done, its removed names' series go.
      void this.forgetRemoved();
    });
  }

  private async forgetRemoved(): Promise<void> {
    const current = this.active.snapshot;
    const routes = new Set(current.routes.map((r) => r.name));
    const upstreams = new Set(current.upstreams.keys());
    for (const [key, stats] of this.statsCache) {
      if (stats.route !== 'unmatched' && (!routes.has(stats.route) || !upstreams.has(stats.upstream))) this.statsCache.delete(key);
    }
    await this.metrics.forgetRemoved(routes, upstreams);
  }

  /** Opens, reconfigures or closes the access log to match the snapshot. */
  private configureAccessLog(snapshot: Snapshot): void {
    const config = snapshot.config.accessLog;
    if (!config) {
      void this.accessLog?.close();
      this.accessLog = undefined;
      return;
    }
    if (this.accessLog) return this.accessLog.configure(config);
    this.accessLog = new AccessLog(config, {
      dropped: (lines) => this.metrics.accessLogDropped.inc(lines),
      failed: (error) => {
        // Once in a while, not once per batch: a full disk fails every write.
        if (Date.now() - this.lastLogFailure < 10_000) return;
        this.lastLogFailure = Date.now();
        this.logger.error('access-log.error', `access log ${config.path}: ${error.message}`);
      },
    });
  }

  /** After rotation (SIGUSR1). */
  reopenLogs(): void {
    this.accessLog?.reopen();
  }

  /** Notes the response begun on the request's connection (see onClientError), until it is over. */
  private track(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    const seen = (socket as WithResponses)[kResponses];
    if (seen) {
      seen.previous = seen.latest;
      seen.latest = res;
    } else (socket as WithResponses)[kResponses] = { previous: undefined, latest: res };
    res.on('close', responseOver);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    this.track(req, res);
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

  private onH2Request(req: Http2ServerRequest, res: Http2ServerResponse): void {
    try {
      this.h2Handler.handle(req, res);
    } catch (err) {
      this.logger.error('request.crash', `HTTP/2 request handling failed: ${(err as Error).stack ?? err}`);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'internal error' }));
      } else res.destroy();
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    try {
      this.upgrades.handle(req, socket, head);
    } catch (err) {
      this.logger.error('request.crash', `upgrade handling failed: ${(err as Error).stack ?? err}`);
      sendRawError(socket, 500, 'internal error');
    }
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const code = err.code ?? '';
    const reason =
      code === 'HPE_HEADER_OVERFLOW'
        ? 'header_size'
        : code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'header_timeout'
          : code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
            ? 'body_size'
            : 'malformed';
    this.metrics.rejectedRequests.inc({ reason });
    // A parse error in a body (bad chunk, huge extension) comes while its
    // request is being served: it can still be answered if nothing of the
    // response was sent yet. But when the response in progress belongs to
    // an earlier pipelined request, an error answer would be taken for that
    // request's: the connection is closed instead (Node's default would
    // answer it).
    // Responses on a connection finish in order, so the latest one unfinished
    // means a response is in progress, and the one before it finished means
    // that response is the latest request's, whose body is still being read.
    const seen = (socket as WithResponses)[kResponses];
    const latest = seen?.latest;
    const busy = latest !== undefined && !latest.writableFinished;
    const ownRequest =
      busy && (seen!.previous === undefined || seen!.previous.writableFinished) && !latest.headersSent && latest.req.complete === false;
    if (code === 'ECONNRESET' || !socket.writable || (busy && !ownRequest)) {
      socket.destroy();
      return;
    }
    const [status, text] =
      reason === 'header_size'
        ? [431, 'request header fields too large']
        : reason === 'header_timeout'
          ? [408, 'request timeout']
          : reason === 'body_size'
            ? [413, 'chunk extensions too large']
            : [400, 'bad request'];
    sendRawError(socket, status, text);
  }

  /**
   * Graceful stop: refuse new connections, close idle ones, let in-flight
   * requests (and their shadow copies) finish, up to the deadline.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    this.h2.drain();
    void this.tls?.closeRedirect();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const started = Date.now();
    const idle = setInterval(() => {
      this.server.closeIdleConnections();
      // Tunnels cannot be drained like requests: they end once no request is in flight.
      if (this.active.inflight === 0) this.upgrades.closeAll();
    }, 100);
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
    this.upgrades.close();
    await new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
    this.handler.close();
    this.h2.close();
    this.h2Handler.close();
    this.h2Sessions.closeAll();
    this.connections.close();
    this.pools.destroy();
    this.spentReads.close();
    await this.shadow.close();
    await this.accessLog?.close();
  }
}
