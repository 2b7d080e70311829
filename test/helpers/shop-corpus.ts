/**
 * A realistic shop API for judging diffs: 14 endpoints, JSON (some gzip)
 * and HTML, pagination, ids and timestamps, float jitter, reordered sets,
 * a CSRF token, a sometimes-noisy field, and in v2 one planted regression
 * of each kind (values, types, missing fields, a 5% 500, a header, an HTML
 * node, numbers beyond their jitter, a field that was sometimes noisy and
 * now always differs, and a 2× latency regression on one endpoint).
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import zlib from 'node:zlib';
import type { UpstreamHandler } from './upstream.js';

export type Version = 'v1' | 'v2';

/** A planted regression: where it must be reported. */
export interface Planted {
  readonly endpoint: string;
  readonly kind: 'status' | 'header' | 'body' | 'latency';
  /** Difference template (body pointer or node path, header name, "status", "latency"). */
  readonly path: string;
}

export const PLANTED: readonly Planted[] = [
  { endpoint: '/api/products/{id}', kind: 'body', path: '/price' },
  { endpoint: '/api/products', kind: 'body', path: '/total' },
  { endpoint: '/api/search', kind: 'body', path: '/results/*/score' },
  { endpoint: '/api/cart/{id}', kind: 'status', path: 'status' },
  { endpoint: '/api/users/{id}', kind: 'body', path: '/age' },
  { endpoint: '/api/orders/{id}', kind: 'body', path: '/warehouse' },
  { endpoint: '/shop/products/{id}', kind: 'body', path: 'html > body > main > p.stock' },
  { endpoint: '/api/reviews/{id}', kind: 'body', path: '/average' },
  { endpoint: '/api/stats', kind: 'header', path: 'cache-control' },
  { endpoint: '/api/recommendations/{id}', kind: 'latency', path: 'latency' },
];

export const LATENCY_ENDPOINT = '/api/recommendations/{id}';

const shuffle = <T>(list: readonly T[]): T[] => {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
};
const jitter = (value: number, relative: number) => value * (1 + (Math.random() - 0.5) * 2 * relative);
const stamp = () => new Date(Date.now() - Math.floor(Math.random() * 1000)).toISOString();
/** Differs between two answers on about 35% of requests: 2p(1-p) = 0.35. */
const sometimes = (a: string, b: string) => (Math.random() < 0.23 ? b : a);

function sendJson(res: ServerResponse, body: unknown, options: { gzip?: boolean; status?: number; headers?: Record<string, string> } = {}) {
  const text = JSON.stringify(body);
  res.writeHead(options.status ?? 200, {
    'content-type': 'application/json',
    ...(options.gzip ? { 'content-encoding': 'gzip' } : {}),
    ...options.headers,
  });
  res.end(options.gzip ? zlib.gzipSync(text) : text);
}

function page(title: string, stock: string | undefined): string {
  const token = randomUUID();
  return `<!doctype html>
<html><head><title>${title}</title><meta name="csrf-token" content="${token}"></head>
<body>
  <nav><a href="/shop">Shop</a> <a href="/shop/cart">Cart</a></nav>
  <main>
    <h1>${title}</h1>
    ${stock === undefined ? '' : `<p class="stock">${stock}</p>`}
    <ul class="specs"><li>Weight: 1kg</li><li>Colour: red</li></ul>
    <form method="post" action="/shop/cart"><input type="hidden" name="csrf" value="${token}"><button>Buy</button></form>
  </main>
  <footer><span class="ts">rendered ${stamp()}</span></footer>
</body></html>`;
}

const segment = (url: URL, i: number) => url.pathname.split('/')[i] ?? '';

/** One instance of one version of the shop. `delayMs` is the base service time. */
export function shop(version: Version, delayMs = 4): UpstreamHandler {
  const v2 = version === 'v2';
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://shop');
    const path = url.pathname;
    const answer = () => {
      if (/^\/api\/products\/\d+$/.test(path)) {
        const id = Number(segment(url, 3));
        return sendJson(
          res,
          {
            id,
            name: `Product ${id}`,
            price: v2 ? Math.round((10 + id) * 110) / 100 : 10 + id,
            rating: jitter(4 + (id % 10) / 10, 1e-4),
            tags: shuffle(['red', 'sale', 'new', 'eco']),
            updatedAt: stamp(),
            requestId: randomUUID(),
          },
          { gzip: true },
        );
      }
      if (path === '/api/products') {
        const n = Number(url.searchParams.get('page') ?? 1);
        return sendJson(res, {
          page: n,
          items: Array.from({ length: 10 }, (_, i) => ({ id: n * 10 + i, sku: `sku-${String(n * 10 + i).padStart(6, '0')}` })),
          next: `/api/products?page=${n + 1}`,
          total: v2 ? 1001 : 1000,
          generatedAt: stamp(),
        });
      }
      if (path === '/api/search') {
        const q = url.searchParams.get('q') ?? '';
        const results = [1, 2, 3].map((i) => (v2 ? { id: i, title: `${q} ${i}` } : { id: i, title: `${q} ${i}`, score: 1 / i }));
        return sendJson(res, { q, results, tookMs: Math.floor(Math.random() * 40) });
      }
      if (/^\/api\/cart\/\d+$/.test(path)) {
        const id = Number(segment(url, 3));
        if (v2 && id % 20 === 0) return sendJson(res, { error: 'cart service unavailable' }, { status: 500, headers: { etag: '"err"' } });
        return sendJson(res, { id, lines: [{ sku: 'sku-000001', qty: 1 }], total: 11 }, { headers: { etag: `"c${id}"` } });
      }
      if (path.startsWith('/api/users/')) {
        const id = segment(url, 3);
        const age = 20 + (id.charCodeAt(0) % 40);
        return sendJson(res, { id, name: `User ${id.slice(0, 4)}`, age: v2 ? String(age) : age, lastSeen: stamp() });
      }
      if (/^\/api\/orders\/\d+$/.test(path)) {
        const id = Number(segment(url, 3));
        return sendJson(res, { id, warehouse: v2 ? 'lhr' : sometimes('ams', 'fra'), lines: 2, placedAt: '2026-01-0' + ((id % 9) + 1) });
      }
      if (path.startsWith('/api/inventory/')) {
        const sku = segment(url, 3);
        return sendJson(res, { sku, stock: sku.length % 7, restockEta: sometimes('next week', 'tomorrow') });
      }
      if (/^\/shop\/products\/\d+$/.test(path)) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(page(`Product ${segment(url, 3)}`, v2 ? 'Only 2 left' : 'In stock'));
      }
      if (path === '/shop/cart') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-encoding': 'gzip' });
        return res.end(zlib.gzipSync(page('Your cart', undefined)));
      }
      if (path.startsWith('/api/recommendations/')) {
        return sendJson(res, { id: Number(segment(url, 3)), items: shuffle(['a1', 'b2', 'c3', 'd4', 'e5']) });
      }
      if (path.startsWith('/api/reviews/')) {
        const id = Number(segment(url, 3));
        return sendJson(res, { id, average: jitter(3.5 + (id % 5) / 10 + (v2 ? 0.5 : 0), 1e-4), count: 10 + id });
      }
      if (path === '/api/stats') {
        return sendJson(res, { load: jitter(0.5, 0.01), regions: 3 }, { headers: { 'cache-control': v2 ? 'no-store' : 'max-age=60' } });
      }
      if (path === '/api/categories') {
        return sendJson(res, { categories: shuffle(['tools', 'garden', 'kitchen', 'toys']), updated: stamp() });
      }
      if (path === '/api/health') return sendJson(res, { ok: true }, { gzip: true });
      return sendJson(res, { error: 'not found' }, { status: 404 });
    };
    const slow = path.startsWith("/api/recommendations/") ? 50 * delayMs * (v2 ? 2 : 1) : delayMs;
    setTimeout(answer, slow);
  };
}

/** The request targets of one round: one request per endpoint, ids from a pool of `ids`. */
export function round(i: number, ids: number): string[] {
  const id = (i % ids) + 1;
  const uuid = `6f1c2b9e-0000-4000-8000-${String(id).padStart(12, '0')}`;
  return [
    `/api/products/${id}`,
    `/api/products?page=${id}`,
    `/api/search?q=item${id}`,
    `/api/cart/${i + 1}`,
    `/api/users/${uuid}`,
    `/api/orders/${id}`,
    `/api/inventory/sku-${String(4200 + id).padStart(6, '0')}`,
    `/shop/products/${id}`,
    `/shop/cart`,
    `/api/recommendations/${id}`,
    `/api/reviews/${id}`,
    `/api/stats`,
    `/api/categories`,
    `/api/health`,
  ];
}
