/**
 * The demo's small shop API, in two versions. v2 has realistic changes
 * (a renamed field, a new price rule, a slower search, a failing endpoint)
 * and both have realistic noise (generated ids, timestamps), so the demo
 * shows real differences standing out from noise.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type ShopVersion = 'v1' | 'v2';

interface Product {
  id: number;
  name: string;
  price: number;
  stock: number;
  tags: string[];
}

const PRODUCTS: Product[] = [
  { id: 1, name: 'Espresso machine', price: 249.0, stock: 12, tags: ['kitchen', 'coffee'] },
  { id: 2, name: 'Burr grinder', price: 89.5, stock: 40, tags: ['kitchen', 'coffee'] },
  { id: 3, name: 'Milk jug', price: 14.99, stock: 120, tags: ['kitchen'] },
  { id: 4, name: 'Tamper', price: 24.0, stock: 0, tags: ['coffee'] },
  { id: 5, name: 'Scale', price: 39.9, stock: 33, tags: ['kitchen', 'coffee'] },
];

export interface ShopService {
  readonly version: ShopVersion;
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

function view(product: Product, version: ShopVersion): Record<string, unknown> {
  // v2 renamed "name" to "title" and rounds prices to whole cents up.
  const price = version === 'v1' ? product.price : Math.ceil(product.price * 1.02 * 100) / 100;
  const base = { id: product.id, price, stock: product.stock, tags: product.tags, updatedAt: new Date().toISOString() };
  return version === 'v1' ? { ...base, name: product.name } : { ...base, title: product.name };
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-served-by': `shop-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
  });
  res.end(text);
}

export function shopHandler(version: ShopVersion): http.RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://shop');
    const meta = { requestId: randomUUID(), generatedAt: new Date().toISOString(), version };
    const path = url.pathname;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET' && path === '/api/products') {
        return send(res, 200, { meta, items: PRODUCTS.map((p) => view(p, version)), total: PRODUCTS.length });
      }
      const product = /^\/api\/products\/(\d+)$/.exec(path);
      if (req.method === 'GET' && product) {
        const found = PRODUCTS.find((p) => p.id === Number(product[1]));
        return found ? send(res, 200, { meta, product: view(found, version) }) : send(res, 404, { meta, error: 'not found' });
      }
      if (req.method === 'GET' && path === '/api/search') {
        const q = (url.searchParams.get('q') ?? '').toLowerCase();
        const hits = PRODUCTS.filter((p) => p.name.toLowerCase().includes(q) || p.tags.includes(q)).map((p) => view(p, version));
        // v2's new search is slower.
        const delay = version === 'v2' ? 60 + Math.random() * 40 : 5 + Math.random() * 5;
        setTimeout(() => send(res, 200, { meta, query: q, hits }), delay);
        return;
      }
      if (req.method === 'GET' && path === '/api/recommendations') {
        // v2 breaks here.
        if (version === 'v2') return send(res, 500, { meta, error: 'recommendation model not loaded' });
        return send(res, 200, { meta, items: PRODUCTS.slice(0, 3).map((p) => p.id) });
      }
      if (req.method === 'POST' && path === '/api/orders') {
        return send(res, 201, { meta, orderId: randomUUID(), status: 'accepted', bytes: Buffer.concat(chunks).length });
      }
      if (req.method === 'GET' && path === '/healthz') return send(res, 200, { status: 'ok', version });
      send(res, 404, { meta, error: 'no such endpoint' });
    });
  };
}

export async function startShop(version: ShopVersion, port: number, host = '127.0.0.1'): Promise<ShopService> {
  const server = http.createServer(shopHandler(version));
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    version,
    port: bound,
    url: `http://${host}:${bound}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
