/**
 * `gatewayctl demo`: everything the idea needs, in one process. Three shop
 * services (v1, v2, and a second v1 as the diff baseline), a gateway in
 * front of them running config/demo.yaml (a step-by-step release of v2 on
 * product pages, a dark launch of v2 on the rest of the API), a checkout in
 * two versions charging a small payment provider through the egress (dark
 * launched with its side effects), and a light, steady stream of traffic.
 * The CLI shows what happens; this module knows no terminal.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EMBEDDED } from '../embedded.js';
import { validateConfigSource } from '../config/validate.js';
import { ConfigInvalidError, ErrorCodes, GatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { composeServer, type Server } from '../control/server-factory.js';
import { startCheckout, startPaymentProvider, type CheckoutVersion, type DemoService } from './checkout.js';
import { startShop, type ShopService, type ShopVersion } from './shop-service.js';
import { TrafficGenerator } from './traffic.js';

export const DEMO_CONFIG = fileURLToPath(new URL('../../../config/demo.yaml', import.meta.url));

/**
 * The demo's config, written to a temporary directory: config/demo.yaml (in
 * the single-file binary, its embedded text) with the shop services' ports
 * as actually bound, and its release progress kept beside it, so every demo
 * starts its release at the first step and leaves nothing behind.
 */
function writeDemoConfig(text: string): { file: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'gatewayctl-demo-'));
  const file = join(dir, 'demo.yaml');
  writeFileSync(file, `${text}\nstateDir: ${JSON.stringify(join(dir, 'state'))}\n`);
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Which version each demo upstream runs. */
const VERSIONS: Record<string, ShopVersion> = { 'shop-v1': 'v1', 'shop-v2': 'v2', 'shop-v1-b': 'v1' };
/** Which checkout version each checkout upstream runs, and which egress side it calls. */
const CHECKOUTS: Record<string, { version: CheckoutVersion; side: 'live' | 'dark' }> = {
  'checkout-v1': { version: 'v1', side: 'live' },
  'checkout-v2': { version: 'v2', side: 'dark' },
};

/** On its configured port; on another free one when that is taken. */
async function startNear<T>(name: string, port: number, start: (port: number) => Promise<T>): Promise<T> {
  try {
    return await start(port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
      throw new GatewayError(ErrorCodes.LISTEN_FAILED, `cannot start the demo's ${name} on port ${port}: ${(err as Error).message}`);
    }
    return start(0);
  }
}

/** A shop on its configured port, or on a free one (say, another demo holds it). */
const startShopNear = (name: string, port: number) => startNear(name, port, (p) => startShop(VERSIONS[name] ?? 'v1', p));

export interface DemoOptions {
  readonly port: number;
  readonly adminPort: number;
  readonly logger: Logger;
  /** Requests per second of the built-in traffic (0: none). */
  readonly rate?: number;
}

export interface Demo {
  readonly server: Server;
  readonly traffic: TrafficGenerator | undefined;
  readonly url: string;
  readonly adminUrl: string;
  /** The web console on the admin port. */
  readonly consoleUrl: string;
  readonly shops: readonly ShopService[];
  /** Charges the demo's payment provider has received. */
  charges(): number;
  close(): Promise<void>;
}

export async function startDemo(options: DemoOptions): Promise<Demo> {
  let text = EMBEDDED.demoConfig ?? readFileSync(DEMO_CONFIG, 'utf8');
  const checked = validateConfigSource({ file: DEMO_CONFIG, text });
  if (!checked.config) throw new ConfigInvalidError(checked.diagnostics);
  const shops: ShopService[] = [];
  const others: DemoService[] = [];
  let charges = () => 0;
  let config: { file: string; remove(): void } | undefined;
  const closeAll = async (server?: Server) => {
    await server?.gateway.close();
    await Promise.all([...shops, ...others].map((s) => s.close()));
    config?.remove();
  };
  // The checkouts learn the egress ports once the gateway has bound them.
  const egress = { live: '', dark: '' };
  try {
    const payments = checked.config.dependencies?.['payments'];
    if (payments) {
      const port = Number(new URL(payments.url).port);
      const provider = await startNear('payment provider', port, startPaymentProvider);
      others.push(provider);
      charges = provider.charges;
      text = text.replace(`127.0.0.1:${port}`, `127.0.0.1:${provider.port}`);
    }
    for (const side of ['live', 'dark'] as const) {
      const port = checked.config.egress?.[side]?.port;
      // Taken (another demo): let the system pick one.
      if (port && !(await portFree(port))) text = text.replace(`127.0.0.1:${port}`, '127.0.0.1:0');
    }
    for (const [name, upstream] of Object.entries(checked.config.upstreams)) {
      const port = Number(new URL(upstream.url).port);
      const checkout = CHECKOUTS[name];
      const service = checkout
        ? await startNear(name, port, (p) => startCheckout(checkout.version, p, () => egress[checkout.side]))
        : await startShopNear(name, port);
      if (checkout) others.push(service);
      else shops.push(service as ShopService);
      text = text.replace(`127.0.0.1:${port}`, `127.0.0.1:${service.port}`);
    }
    config = writeDemoConfig(text);
  } catch (err) {
    await closeAll();
    throw err;
  }
  let server: Server;
  try {
    server = await composeServer({
      configFile: config.file,
      logger: options.logger,
      listen: { host: '127.0.0.1', port: options.port },
      admin: { host: '127.0.0.1', port: options.adminPort },
      watch: false,
    });
  } catch (err) {
    await closeAll();
    throw err;
  }
  const addresses = server.gateway.addresses!;
  for (const side of ['live', 'dark'] as const) {
    const bound = server.egress.addresses[side];
    if (bound) egress[side] = `http://127.0.0.1:${bound.port}`;
  }
  const url = `http://127.0.0.1:${addresses.listen.port}`;
  const traffic = options.rate === 0 ? undefined : new TrafficGenerator(url, options.rate ?? 8);
  traffic?.start();
  return {
    server,
    traffic,
    url,
    adminUrl: `http://127.0.0.1:${addresses.admin.port}`,
    consoleUrl: `http://127.0.0.1:${addresses.admin.port}/ui`,
    shops,
    charges: () => charges(),
    async close() {
      traffic?.stop();
      await closeAll(server);
    },
  };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
