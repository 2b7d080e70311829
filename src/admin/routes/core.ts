/**
 * The admin API's own endpoints: GET /healthz, /readyz, /metrics, /config
 * and POST /reload (the one that changes state, so it needs the token).
 */
import type { ServerResponse } from 'node:http';
import { sendJson, type AdminRoute } from './reply.js';

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
  /** The endpoints besides the API's own (diffs, status, releases...). */
  readonly extraRoutes?: readonly AdminRoute[];
}

export function coreRoutes(backend: AdminBackend): AdminRoute[] {
  return [
    { method: 'GET', path: '/healthz', requiresToken: false, handle: (_req, res) => sendJson(res, 200, { status: 'ok' }) },
    {
      method: 'GET',
      path: '/readyz',
      requiresToken: false,
      handle: (_req, res) => {
        const ready = backend.ready();
        sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'draining' });
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      requiresToken: false,
      handle: async (req, res: ServerResponse) => {
        const { contentType, text } = await backend.metrics();
        res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
    },
    { method: 'GET', path: '/config', requiresToken: false, handle: (_req, res) => sendJson(res, 200, backend.config()) },
    {
      method: 'POST',
      path: '/reload',
      requiresToken: true,
      handle: async (req, res, url) => {
        req.resume();
        const reply = await backend.reload(url.searchParams.get('force') === 'true');
        sendJson(res, reply.status, reply.body);
      },
    },
  ];
}
