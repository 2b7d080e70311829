/**
 * `gatewayctl demo`: everything the idea needs, in one process. Three shop
 * services (v1, v2, and a second v1 as the diff baseline), a gateway in
 * front of them running config/demo.yaml (a sticky canary on product pages,
 * a dark launch of v2 on the rest of the API), a checkout in two versions
 * charging a small payment provider through the egress (dark launched with
 * its side effects), and a light, steady stream of traffic. The CLI shows what happens; this module knows no terminal.
 */
import { fileURLToPath } from 'node:url';
import { validateConfigFile } from '../config/validate.js';
import { ConfigInvalidError, ErrorCodes, GatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { composeServer, type Server } from '../runtime/server-factory.js';
import { startCheckout, startPaymentProvider, type CheckoutVersion, type DemoService } from './checkout.js';
import { startShop, type ShopService, type ShopVersion } from './shop-service.js';
import { TrafficGenerator } from './traffic.js';

export const DEMO_CONFIG = fileURLToPath(new URL('../../../config/demo.yaml', import.meta.url));

/** Which version each demo upstream runs. */
const VERSIONS: Record<string, ShopVersion> = { 'shop-v1': 'v1', 'shop-v2': 'v2', 'shop-v1-b': 'v1' };
/** Which checkout version each checkout upstream runs, and which egress side it calls. */
const CHECKOUTS: Record<string, { version: CheckoutVersion; side: 'live' | 'dark' }> = {
  'checkout-v1': { version: 'v1', side: 'live' },
  'checkout-v2': { version: 'v2', side: 'dark' },
};

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
  readonly shops: readonly ShopService[];
  /** Charges the demo's payment provider has received. */
  charges(): number;
  close(): Promise<void>;
}

export async function startDemo(options: DemoOptions): Promise<Demo> {
  const checked = validateConfigFile(DEMO_CONFIG);
  if (!checked.config) throw new ConfigInvalidError(checked.diagnostics);
  const shops: ShopService[] = [];
  const others: DemoService[] = [];
  let charges = () => 0;
  const closeAll = async (server?: Server) => {
    await server?.gateway.close();
    await Promise.all([...shops, ...others].map((s) => s.close()));
  };
  const config = checked.config;
  const egressUrl = (side: 'live' | 'dark') => `http://${config.egress?.[side]?.host}:${config.egress?.[side]?.port}`;
  try {
    const payments = config.dependencies?.['payments'];
    if (payments) {
      const provider = await startPaymentProvider(Number(new URL(payments.url).port));
      others.push(provider);
      charges = provider.charges;
    }
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      const port = Number(new URL(upstream.url).port);
      try {
        const checkout = CHECKOUTS[name];
        if (checkout) others.push(await startCheckout(checkout.version, port, egressUrl(checkout.side)));
        else shops.push(await startShop(VERSIONS[name] ?? 'v1', port));
      } catch (err) {
        throw new GatewayError(
          ErrorCodes.LISTEN_FAILED,
          `cannot start the demo's ${name} on port ${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} ` +
            '(another demo running?)',
        );
      }
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  let server: Server;
  try {
    server = await composeServer({
      configFile: DEMO_CONFIG,
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
  const url = `http://127.0.0.1:${addresses.listen.port}`;
  const traffic = options.rate === 0 ? undefined : new TrafficGenerator(url, options.rate ?? 8);
  traffic?.start();
  return {
    server,
    traffic,
    url,
    adminUrl: `http://127.0.0.1:${addresses.admin.port}`,
    shops,
    charges: () => charges(),
    async close() {
      traffic?.stop();
      await closeAll(server);
    },
  };
}
