/**
 * The optional plain-HTTP listener (`tls.redirectHttp`): every request gets
 * a 308 to the same host, path and query over HTTPS, so methods and bodies
 * survive the redirect. It proxies nothing.
 */
import http from 'node:http';
import { sendError } from '../proxy/responses.js';
import { hostOf } from '../routing/matcher.js';

const HOST_SHAPE = /^([a-z0-9]([a-z0-9-]*[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$|^\[[0-9a-f:.]+\]$/;

/**
 * Where a plain-HTTP request is sent: `https://HOST[:PORT]/path?query`, the
 * port omitted when it is 443. Undefined when the request has no usable
 * Host or target (never redirect to a name we cannot vouch is one).
 */
export function httpsLocation(hostHeader: string | undefined, target: string | undefined, httpsPort: number): string | undefined {
  const host = hostOf(hostHeader);
  if (!host || !HOST_SHAPE.test(host)) return undefined;
  let path = target ?? '';
  if (/^https?:\/\//i.test(path)) {
    try {
      const url = new URL(path);
      path = url.pathname + url.search;
    } catch {
      return undefined;
    }
  }
  if (!path.startsWith('/') || path.startsWith('//') || /[\s\\]/.test(path)) return undefined;
  return `https://${host}${httpsPort === 443 ? '' : `:${httpsPort}`}${path}`;
}

export function createRedirectServer(httpsPort: number, options: http.ServerOptions): http.Server {
  return http.createServer({ ...options, requireHostHeader: false }, (req, res) => {
    res.on('error', () => undefined);
    const location = httpsLocation(req.headers.host, req.url, httpsPort);
    if (!location) return sendError(res, 400, 'bad request: this port only redirects to HTTPS and needs a Host header', undefined, { close: true });
    res.writeHead(308, { location, 'content-length': 0 });
    res.end();
    req.resume();
  });
}
