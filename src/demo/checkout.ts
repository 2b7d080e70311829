/**
 * The demo's checkout: a small payment provider that counts the charges it
 * receives, and a checkout service in two versions that charge through the
 * egress, propagating x-request-id. v2 charges 12.00 for the grinder where
 * v1 charges 10.00: the side effect the dark launch must catch without
 * charging anyone twice.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

export type CheckoutVersion = 'v1' | 'v2';

const PRICES: Record<CheckoutVersion, Record<string, string>> = {
  v1: { coffee: '7.50', grinder: '10.00', jug: '14.99' },
  v2: { coffee: '7.50', grinder: '12.00', jug: '14.99' },
};

export interface DemoService {
  readonly port: number;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(''));
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function parse(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

async function listen(server: http.Server, port: number): Promise<DemoService> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The payment provider: POST /v1/charges; `charges` counts what it received. */
export async function startPaymentProvider(port: number): Promise<DemoService & { readonly charges: () => number }> {
  let charges = 0;
  const server = http.createServer(async (req, res) => {
    const body = parse(await readBody(req));
    if (req.method !== 'POST' || req.url !== '/v1/charges') return json(res, 404, { error: 'not found' });
    charges++;
    json(res, 201, { id: `ch_${randomUUID().slice(0, 8)}`, amount: body['amount'], status: 'succeeded' });
  });
  const service = await listen(server, port);
  return { ...service, charges: () => charges };
}

/** A checkout version: POST /api/checkout {product} charges through `egress()` (…/payments). */
export async function startCheckout(version: CheckoutVersion, port: number, egress: () => string): Promise<DemoService> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const server = http.createServer(async (req, res) => {
    const order = parse(await readBody(req));
    const product = String(order['product'] ?? 'coffee');
    const amount = PRICES[version][product];
    if (!amount) return json(res, 404, { error: `no product ${product}` });
    const payload = JSON.stringify({ amount, currency: 'EUR', product, idempotencyKey: randomUUID() });
    const charge = await new Promise<{ status: number; body: Record<string, unknown> }>((resolve) => {
      const call = http.request(
        `${egress()}/payments/charges`,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
            // The one line a service needs: pass the request id on.
            'x-request-id': String(req.headers['x-request-id'] ?? ''),
          },
        },
        (answer) => void readBody(answer).then((text) => resolve({ status: answer.statusCode ?? 502, body: parse(text) })),
      );
      call.on('error', () => resolve({ status: 502, body: {} }));
      call.end(payload);
    });
    if (charge.status >= 300) return json(res, 502, { error: 'payment failed' });
    json(res, 200, { order: 'accepted', charge: charge.body['id'], amount });
  });
  const service = await listen(server, port);
  return {
    ...service,
    close: async () => {
      agent.destroy();
      await service.close();
    },
  };
}
