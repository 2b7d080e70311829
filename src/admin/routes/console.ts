/**
 * GET /ui: the web console, a single page served from the admin listener.
 * Its files (web/console/, shipped in the package, embedded in the
 * single-file binary) are read once at start.
 * Scripts and styles live under a path named after a hash of their content,
 * /ui/<version>/..., so they are cached for good and a new version is a new
 * path; the page itself is revalidated on every load.
 *
 * The page holds no data: it reads the admin API with the token the user
 * enters (kept in sessionStorage, never in a URL), so the token rules of the
 * API apply unchanged. Every answer carries a strict Content-Security-Policy
 * (own origin only, no inline script or style, no framing).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EMBEDDED } from '../../embedded.js';
import { ErrorCodes, GatewayError } from '../../errors.js';
import type { AdminRoute } from './reply.js';

export const CONSOLE_DIR = fileURLToPath(new URL('../../../../web/console/', import.meta.url));

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

const etagOf = (body: Buffer) => `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;

/** The console's files by name: from the directory, or those the single-file binary carries. */
function consoleFiles(dir: string): Map<string, Buffer> {
  if (dir === CONSOLE_DIR && EMBEDDED.consoleFiles) {
    return new Map(Object.entries(EMBEDDED.consoleFiles).map(([name, text]) => [name, Buffer.from(text)]));
  }
  return new Map(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name))]));
}

/** The page and its assets, with the version their paths carry. */
export function loadConsole(dir = CONSOLE_DIR): { version: string; page: Asset; assets: Map<string, Asset> } {
  const files = consoleFiles(dir);
  const assets = new Map<string, Asset>();
  const hash = createHash('sha256');
  for (const name of [...files.keys()].sort()) {
    const type = TYPES[extname(name)];
    if (!type || name === 'index.html') continue;
    const body = files.get(name)!;
    hash.update(name).update(body);
    assets.set(name, { body, type, etag: etagOf(body) });
  }
  const version = hash.digest('hex').slice(0, 12);
  const html = files.get('index.html');
  if (!html) throw new Error(`no index.html in ${dir}`);
  const body = Buffer.from(html.toString('utf8').replaceAll('{{version}}', version));
  return { version, page: { body, type: TYPES['.html']!, etag: etagOf(body) }, assets };
}

function send(req: IncomingMessage, res: ServerResponse, asset: Asset, cacheControl: string): void {
  const headers = { ...SECURITY_HEADERS, 'content-type': asset.type, 'cache-control': cacheControl, etag: asset.etag };
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': asset.body.length });
  res.end(req.method === 'HEAD' ? undefined : asset.body);
}

export function consoleRoutes(dir = CONSOLE_DIR): AdminRoute[] {
  let loaded: ReturnType<typeof loadConsole>;
  try {
    loaded = loadConsole(dir);
  } catch (err) {
    // A broken install loses the page, never the gateway.
    const missing = () => {
      throw new GatewayError(ErrorCodes.UNAVAILABLE, `the web console's files cannot be read (${(err as Error).message})`);
    };
    return [
      { method: 'GET', path: '/ui', requiresToken: false, handle: missing },
      { method: 'GET', path: '/ui/', requiresToken: false, handle: missing },
    ];
  }
  const { version, page, assets } = loaded;
  const prefix = `/ui/${version}/`;
  return [
    { method: 'GET', path: '/ui', requiresToken: false, handle: (req, res) => send(req, res, page, 'no-cache') },
    {
      method: 'GET',
      path: '/ui/',
      requiresToken: false,
      handle: (req, res, url) => {
        if (url.pathname === '/ui/') return send(req, res, page, 'no-cache');
        const asset = url.pathname.startsWith(prefix) ? assets.get(url.pathname.slice(prefix.length)) : undefined;
        if (!asset) {
          res.setHeader('content-security-policy', CONSOLE_CSP);
          throw new GatewayError(ErrorCodes.NOT_FOUND, `no console file ${url.pathname}`);
        }
        send(req, res, asset, 'public, max-age=31536000, immutable');
      },
    },
  ];
}
