/**
 * The admin API, on its own listener (loopback unless configured otherwise):
 * health, readiness, metrics, the running config, reload, and the diff and
 * release views. Calls that change state need the bearer token when one is
 * configured; requests whose Host is not this listener's are refused, so a
 * web page cannot reach the API through DNS rebinding, and cross-site
 * requests cannot change state (csrf.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import { ConnectionGuard, type ConnectionSettings } from '../proxy/connections.js';
import { normalizeTarget } from '../proxy/path.js';
import { hostLines } from '../proxy/screen.js';
import { crossSiteRefusal } from './csrf.js';

export interface AdminReply {
  readonly status: number;
  readonly body: unknown;
}

export interface AdminBackend {
  readonly ready: () => boolean;
  readonly metrics: () => Promise<{ contentType: string; text: string }>;
  readonly config: () => unknown;
  /** `force`: apply even what a guard would refuse (POST /reload?force=true). */
  readonly reload: (force: boolean) => Promise<AdminReply>;
  /** Extra routes (diffs, releases): return false when not handled. */
  readonly extraRoutes?: readonly AdminRoute[];
}

export interface AdminRoute {
  readonly method: string;
  /** Exact path, or a prefix ending in "/" matched by startsWith. */
  readonly path: string;
  readonly changesState: boolean;
  handle(req: IncomingMessage, res: ServerResponse, url: URL): void | Promise<void>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/**
 * The admin API's own connection rules, apart from the gateway listener's:
 * a flood of the gateway cannot take its slots, and its descriptors are
 * among those the gateway's default cap leaves over (serving/descriptors.ts).
 */
export const ADMIN_CONNECTIONS: ConnectionSettings = { headerMs: 10_000, idleMs: 5_000, maxConnections: 128, maxPerClient: 0 };

export class AdminServer {
  readonly server: http.Server;
  private token: string | undefined;
  private allowedHosts = new Set<string>();
  private readonly connections: ConnectionGuard | undefined;

  constructor(
    private readonly backend: AdminBackend,
    private readonly logger: Logger,
    token: string | undefined,
    metrics?: GatewayMetrics,
  ) {
    this.token = token;
    this.server = http.createServer({ maxHeaderSize: 16 * 1024, headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
      this.handle(req, res).catch((err) => {
        this.logger.error('admin.error', `admin request failed: ${(err as Error).message}`);
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    });
    this.server.on('clientError', (_err, socket) => socket.destroy());
    if (metrics) {
      this.connections = new ConnectionGuard({ listener: 'admin', metrics, settings: () => ADMIN_CONNECTIONS });
      this.connections.attach(this.server);
    }
  }

  setToken(token: string | undefined): void {
    this.token = token;
  }

  /** Names (a pod's, a Service's) Prometheus or the CLI may use in Host. */
  setAllowedHosts(names: readonly string[]): void {
    this.allowedHosts = new Set(names.map((n) => n.toLowerCase()));
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve({ host, port: typeof address === 'object' && address ? address.port : port });
      });
    });
  }

  close(): Promise<void> {
    this.connections?.close();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private hostAllowed(req: IncomingMessage): boolean {
    // Two Host lines would let the first pass the check for the second.
    if (hostLines(req.rawHeaders) > 1) return false;
    // An absolute-form target names the host itself (RFC 9112 section 3.2.2).
    const url = req.url ?? '';
    const target = url.charCodeAt(0) === 47 /* / */ ? undefined : normalizeTarget(url);
    const host = target?.ok && target.authority !== undefined ? target.authority : req.headers.host;
    if (!host) return true; // HTTP/1.0 tools
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0]!;
    if (isIP(name) !== 0 || name === 'localhost') return true;
    // Only names the operator listed: a rebinding attacker's domain is not one of them.
    if (this.allowedHosts.has(name.toLowerCase().replace(/\.$/, ''))) return true;
    const bound = (this.server.address() as { address?: string } | null)?.address;
    return name.toLowerCase() === bound?.toLowerCase();
  }

  private authorized(req: IncomingMessage): boolean {
    if (!this.token) return true;
    const header = req.headers.authorization ?? '';
    const expected = Buffer.from(`Bearer ${this.token}`);
    const given = Buffer.from(header);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.on('error', () => undefined);
    if (!this.hostAllowed(req)) {
      sendJson(res, 403, { error: 'admin API refuses requests for a foreign Host' });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://admin.local');
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (method !== 'GET' && method !== 'HEAD') {
      const refusal = crossSiteRefusal(req);
      if (refusal) return sendJson(res, 403, { error: refusal });
    }

    const route = this.backend.extraRoutes?.find((r) =>
      r.path.endsWith('/') ? path.startsWith(r.path) : path === r.path,
    );
    if (route) {
      if (route.method !== method && !(route.method === 'GET' && method === 'HEAD')) return methodNotAllowed(res, route.method);
      if (route.changesState && !this.authorized(req)) return unauthorized(res);
      await route.handle(req, res, url);
      return;
    }

    switch (path) {
      case '/healthz':
        if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, 'GET');
        return sendJson(res, 200, { status: 'ok' });
      case '/readyz': {
        if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, 'GET');
        const ready = this.backend.ready();
        return sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'draining' });
      }
      case '/metrics': {
        if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, 'GET');
        const { contentType, text } = await this.backend.metrics();
        res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
        res.end(method === 'HEAD' ? undefined : text);
        return;
      }
      case '/config':
        if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, 'GET');
        return sendJson(res, 200, this.backend.config());
      case '/reload': {
        if (method !== 'POST') return methodNotAllowed(res, 'POST');
        if (!this.authorized(req)) return unauthorized(res);
        req.resume();
        const reply = await this.backend.reload(url.searchParams.get('force') === 'true');
        return sendJson(res, reply.status, reply.body);
      }
      default:
        return sendJson(res, 404, { error: `no admin endpoint ${path}` });
    }
  }
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('allow', allow);
  sendJson(res, 405, { error: `method not allowed; use ${allow}` });
}

function unauthorized(res: ServerResponse): void {
  res.setHeader('www-authenticate', 'Bearer');
  sendJson(res, 401, { error: 'this admin call needs "Authorization: Bearer <admin.token>"' });
}
