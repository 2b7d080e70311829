/**
 * A checkout world for the egress tests: a payment provider that counts the
 * charges it receives, and checkout services v1 (live) and v2 (dark) that
 * propagate x-request-id. v2 charges 12 where v1 charges 10 for a book,
 * skips the charge of a "free" order, and also mails the buyer of a gift;
 * a tip's amount differs on every run (noise).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { request } from './http.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function readJson(req: IncomingMessage): Promise<any> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve(text ? JSON.parse(text) : undefined);
    });
  });
}

export function serve(handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => void handler(req, res));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** POST JSON through an egress, carrying the request id. */
export async function call(base: string, path: string, requestId: string, body: unknown): Promise<{ status: number; json: any; egress: string | undefined }> {
  const answer = await request(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': requestId },
    body: JSON.stringify(body),
  });
  return { status: answer.status, json: answer.text ? answer.json() : undefined, egress: answer.headers['x-gatewayctl-egress'] as string | undefined };
}

const PRICES_V1: Record<string, number> = { pen: 2, book: 10, free: 5, gift: 3, slow: 4 };
const PRICES_V2: Record<string, number> = { ...PRICES_V1, book: 12 };

export const ORDERS = [
  ...Array.from({ length: 6 }, (_, i) => ({ product: 'pen', user: `pen-${i}` })),
  ...Array.from({ length: 3 }, (_, i) => ({ product: 'book', user: `book-${i}` })),
  { product: 'free', user: 'free-user' },
  { product: 'gift', user: 'gift-user' },
  { product: 'slow', user: 'slow-user' },
];

export function paymentProvider(charges: unknown[]): Promise<{ server: http.Server; url: string }> {
  return serve(async (req, res) => {
    const body = await readJson(req);
    if (req.method === 'POST' && req.url === '/v1/charges') {
      charges.push(body);
      return sendJson(res, 201, { id: `ch_${charges.length}`, amount: body.amount });
    }
    sendJson(res, 404, { error: 'no such endpoint' });
  });
}

  /** A checkout version: charges the basket's amount through its egress. */
/** A checkout version; v1 calls the live egress unless told `dark` (a diff baseline runs v1 in the dark). */
export const checkout = (version: 'v1' | 'v2', egress: { live: string; dark: string }, side: 'live' | 'dark' = version === 'v1' ? 'live' : 'dark') => async (req: IncomingMessage, res: ServerResponse) => {
  const order = await readJson(req);
  const requestId = String(req.headers['x-request-id']);
  const prices = version === 'v1' ? PRICES_V1 : PRICES_V2;
  const base = egress[side];
  if (version === 'v1' && order.product === 'slow') await sleep(300);
  let charge: any = null;
  if (!(version === 'v2' && order.product === 'free')) {
    const answer = await call(base, '/payments/charges', requestId, {
      // A tip is whatever the user typed last: it differs between any two runs.
      amount: order.product === 'tip' ? Math.round(Math.random() * 1e6) : prices[order.product],
      currency: 'EUR',
      user: order.user,
      idempotencyKey: randomUUID(),
    });
    charge = answer.json?.id ?? null;
  }
  let mailed: string | null = null;
  if (version === 'v2' && order.product === 'gift') {
    const answer = await call(base, '/mailer/send', requestId, { to: order.user });
    mailed = answer.json?.queued ?? null;
  }
  sendJson(res, 200, { charge, ...(mailed ? { mailed } : {}) });
};


export interface CheckoutWorld {
  readonly charges: any[];
  /** Base URLs of the egress listeners, once the gateway runs. */
  readonly egress: { live: string; dark: string };
  readonly provider: { server: http.Server; url: string };
  readonly v1: { server: http.Server; url: string };
  readonly v2: { server: http.Server; url: string };
  /** v1 again, calling the dark egress: a diff baseline. */
  readonly v1b: { server: http.Server; url: string };
  /** Points the checkouts at a gateway's egress ports. */
  useEgress(ports: { live: number; dark: number }): void;
  close(): void;
}

export async function checkoutWorld(): Promise<CheckoutWorld> {
  const charges: any[] = [];
  const egress = { live: '', dark: '' };
  const provider = await paymentProvider(charges);
  const v1 = await serve(checkout('v1', egress));
  const v2 = await serve(checkout('v2', egress));
  const v1b = await serve(checkout('v1', egress, 'dark'));
  return {
    charges,
    egress,
    provider,
    v1,
    v2,
    v1b,
    useEgress(ports) {
      egress.live = `http://127.0.0.1:${ports.live}`;
      egress.dark = `http://127.0.0.1:${ports.dark}`;
    },
    close() {
      for (const s of [provider, v1, v2, v1b]) s.server.close();
    },
  };
}
