/**
 * `gatewayctl demo`: everything the idea needs, in one process. Three shop
 * services (v1, v2, and a second v1 as the diff baseline), a gateway in
 * front of them running config/demo.yaml (a sticky canary on product pages,
 * a dark launch of v2 on the rest of the API), and a light, steady stream
 * of traffic. The CLI shows what happens; this module knows no terminal.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EMBEDDED } from '../embedded.js';
import { validateConfigSource } from '../config/validate.js';
import { ConfigInvalidError, ErrorCodes, GatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { composeServer, type Server } from '../runtime/server-factory.js';
import { startShop, type ShopService, type ShopVersion } from './shop-service.js';
import { TrafficGenerator } from './traffic.js';

export const DEMO_CONFIG = fileURLToPath(new URL('../../../config/demo.yaml', import.meta.url));

/**
 * The demo's config, written to a temporary directory: config/demo.yaml (in
 * the single-file binary, its embedded text) with the shop services' ports
 * as actually bound.
 */
function writeDemoConfig(text: string): { file: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'gatewayctl-demo-'));
  const file = join(dir, 'demo.yaml');
  writeFileSync(file, text);
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Which version each demo upstream runs. */
const VERSIONS: Record<string, ShopVersion> = { 'shop-v1': 'v1', 'shop-v2': 'v2', 'shop-v1-b': 'v1' };

/** On its configured port; on another free one when that is taken (say, by another demo). */
async function startShopNear(name: string, port: number): Promise<ShopService> {
  try {
    return await startShop(VERSIONS[name] ?? 'v1', port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
      throw new GatewayError(ErrorCodes.LISTEN_FAILED, `cannot start the demo's ${name} on port ${port}: ${(err as Error).message}`);
    }
    return startShop(VERSIONS[name] ?? 'v1', 0);
  }
}

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
  close(): Promise<void>;
}

export async function startDemo(options: DemoOptions): Promise<Demo> {
  let text = EMBEDDED.demoConfig ?? readFileSync(DEMO_CONFIG, 'utf8');
  const checked = validateConfigSource({ file: DEMO_CONFIG, text });
  if (!checked.config) throw new ConfigInvalidError(checked.diagnostics);
  const shops: ShopService[] = [];
  let config: { file: string; remove(): void } | undefined;
  const closeAll = async (server?: Server) => {
    await server?.gateway.close();
    await Promise.all(shops.map((s) => s.close()));
    config?.remove();
  };
  try {
    for (const [name, upstream] of Object.entries(checked.config.upstreams)) {
      const port = Number(new URL(upstream.url).port);
      const shop = await startShopNear(name, port);
      shops.push(shop);
      text = text.replace(`127.0.0.1:${port}`, `127.0.0.1:${shop.port}`);
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
  const url = `http://127.0.0.1:${addresses.listen.port}`;
  const traffic = options.rate === 0 ? undefined : new TrafficGenerator(url, options.rate ?? 8);
  traffic?.start();
  return {
    server,
    traffic,
    url,
    adminUrl: `http://127.0.0.1:${addresses.admin.port}`,
    shops,
    async close() {
      traffic?.stop();
      await closeAll(server);
    },
  };
}
