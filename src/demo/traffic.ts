/**
 * A light, steady stream of shop traffic for the demo: product pages,
 * searches, recommendations and the odd order, from a few hundred users.
 */
import http from 'node:http';

export interface TrafficStats {
  sent: number;
  failed: number;
  /** Checkouts answered 200. */
  checkouts: number;
  byUpstreamVersion: Record<string, number>;
}

const PATHS: [weight: number, method: string, path: () => string][] = [
  [4, 'GET', () => `/api/products/${1 + Math.floor(Math.random() * 5)}`],
  [2, 'GET', () => '/api/products'],
  [2, 'GET', () => `/api/search?q=${['coffee', 'kitchen', 'grinder', 'jug'][Math.floor(Math.random() * 4)]}`],
  [1, 'GET', () => '/api/recommendations'],
  [1, 'POST', () => '/api/orders'],
  [2, 'POST', () => '/api/checkout'],
];
const CHECKOUT_PRODUCTS = ['coffee', 'grinder', 'jug'];
const TOTAL = PATHS.reduce((s, [w]) => s + w, 0);

function pick(): [string, string] {
  let r = Math.random() * TOTAL;
  for (const [w, method, path] of PATHS) {
    r -= w;
    if (r < 0) return [method, path()];
  }
  return ['GET', '/api/products'];
}

export class TrafficGenerator {
  readonly stats: TrafficStats = { sent: 0, failed: 0, checkouts: 0, byUpstreamVersion: {} };
  private timer: NodeJS.Timeout | undefined;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

  constructor(
    private readonly baseUrl: string,
    private readonly perSecond = 8,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.fire(), Math.max(10, Math.round(1000 / this.perSecond)));
  }

  private fire(): void {
    const [method, path] = pick();
    const user = `user-${Math.floor(Math.random() * 300)}`;
    const checkout = path === '/api/checkout';
    const product = CHECKOUT_PRODUCTS[Math.floor(Math.random() * CHECKOUT_PRODUCTS.length)];
    const body =
      method !== 'POST' ? undefined : checkout ? JSON.stringify({ user, product }) : JSON.stringify({ user, items: [{ id: 2, qty: 1 }] });
    const req = http.request(
      this.baseUrl + path,
      {
        method,
        agent: this.agent,
        headers: {
          'x-user-id': user,
          ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          this.stats.sent++;
          if ((res.statusCode ?? 500) >= 500) this.stats.failed++;
          if (checkout && res.statusCode === 200) this.stats.checkouts++;
          const version = /"version":"(v\d)"/.exec(Buffer.concat(chunks).toString('utf8'))?.[1];
          if (version && path.startsWith('/api/products/')) {
            this.stats.byUpstreamVersion[version] = (this.stats.byUpstreamVersion[version] ?? 0) + 1;
          }
        });
        res.on('error', () => undefined);
      },
    );
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => {
      this.stats.sent++;
      this.stats.failed++;
    });
    req.end(body);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.agent.destroy();
  }
}
