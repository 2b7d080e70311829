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
import { ErrorCodes, isGatewayError } from '../errors.js';
import { crossSiteRefusal } from './csrf.js';
import { coreRoutes, type AdminBackend } from './routes/core.js';
import { sendAdminError, type AdminRoute } from './routes/reply.js';

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
  private readonly routes: readonly AdminRoute[];

  constructor(
    backend: AdminBackend,
    private readonly logger: Logger,
    token: string | undefined,
    metrics?: GatewayMetrics,
  ) {
    this.token = token;
    this.routes = [...coreRoutes(backend), ...(backend.extraRoutes ?? [])];
    this.server = http.createServer({ maxHeaderSize: 16 * 1024, headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
      this.handle(req, res).catch((err) => this.fail(res, err));
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

  private hostAllowed(req: IncomingMessage, authority: string | undefined): boolean {
    // Two Host lines would let the first pass the check for the second.
    if (hostLines(req.rawHeaders) > 1) return false;
    const host = authority ?? req.headers.host;
    if (!host) return true; // HTTP/1.0 tools
    // An unclosed bracket is no IPv6 literal: "[::1" must not read as "::".
    const close = host.indexOf(']');
    const name = host.startsWith('[') ? (close > 0 ? host.slice(1, close) : host) : host.split(':')[0]!;
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

  /** The one error handler: a catalogue error answers with its code's status; anything else is ours, logged. */
  private fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (isGatewayError(err)) return sendAdminError(res, err.code, err.message);
    this.logger.error('admin.error', `admin request failed: ${(err as Error).message}`);
    sendAdminError(res, ErrorCodes.INTERNAL, 'internal error');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.on('error', () => undefined);
    const target = parseTarget(req.url ?? '/');
    if (!target) return sendAdminError(res, ErrorCodes.BAD_REQUEST, 'malformed request target');
    if (!this.hostAllowed(req, target.authority)) return sendAdminError(res, ErrorCodes.FORBIDDEN, 'admin API refuses requests for a foreign Host');
    const url = target.url;
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (method !== 'GET' && method !== 'HEAD') {
      const refusal = crossSiteRefusal(req);
      if (refusal) return sendAdminError(res, ErrorCodes.FORBIDDEN, refusal);
    }
    const route = this.routes.find((r) => (r.path.endsWith('/') ? path.startsWith(r.path) : path === r.path));
    if (!route) return sendAdminError(res, ErrorCodes.NOT_FOUND, `no admin endpoint ${path}`);
    if (route.method !== method && !(route.method === 'GET' && method === 'HEAD')) {
      res.setHeader('allow', route.method);
      return sendAdminError(res, ErrorCodes.METHOD_NOT_ALLOWED, `method not allowed; use ${route.method}`);
    }
    if (route.requiresToken && !this.authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer');
      return sendAdminError(res, ErrorCodes.UNAUTHORIZED, 'this admin call needs "Authorization: Bearer <admin.token>"');
    }
    await route.handle(req, res, url);
  }
}

/**
 * The request target as a URL, and the authority an absolute-form target
 * names (RFC 9112 section 3.2.2); undefined when it is malformed, which is
 * the client's error, not ours.
 */
function parseTarget(raw: string): { url: URL; authority: string | undefined } | undefined {
  const absolute = raw.charCodeAt(0) !== 47; /* / */
  const normalized = absolute ? normalizeTarget(raw) : undefined;
  if (normalized && !normalized.ok) return undefined;
  try {
    // An origin-form target is a path: "//host/x" must not read as a network-path reference.
    return { url: absolute ? new URL(raw) : new URL(`http://admin.local${raw}`), authority: normalized?.ok ? normalized.authority : undefined };
  } catch {
    return undefined;
  }
}
