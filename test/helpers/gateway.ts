/**
 * The real gateway, in this process, on port 0, from a YAML config written
 * to a temporary file.
 *
 * Its event loop is the test's: the test's clients and upstreams count in
 * the utilization that sheds shadow copies (src/shadow/load-shedding.ts).
 * A test that needs every copy of a sustained burst sets
 * `limits.shadowShedAbove: 1`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger, type LogRecord } from '../../src/log/logger.js';
import type { Gateway } from '../../src/control/gateway.js';
import { composeServer, type Server } from '../../src/control/server-factory.js';
import { METRIC } from '../../src/metrics/names.js';
import { metricValue } from './metrics.js';

export interface TestGateway {
  readonly gateway: Gateway;
  /** The diff store and comparison engine behind /diffs. */
  readonly diffs: Server['diffs'];
  /** The egress listeners and their recordings. */
  readonly egress: Server['egress'];
  readonly url: string;
  /** The listener's port, for raw-socket clients. */
  readonly port: number;
  readonly adminUrl: string;
  readonly configFile: string;
  readonly logs: LogRecord[];
  writeConfig(yaml: string): void;
  /**
   * Resolves once no shadow copy is in flight (at most `timeoutMs`) and every
   * pair handed over is compared: a busy machine may keep the copying
   * thread waiting, and a pair is handed over only when its copy ends.
   */
  settled(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export function tempDir(prefix = 'gatewayctl-test-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startGateway(
  yaml: string,
  options: {
    configFile?: string;
    watch?: boolean;
    watchOptions?: { debounceMs?: number; pollMs?: number; settleMs?: number };
    admin?: { host: string; port: number };
  } = {},
): Promise<TestGateway> {
  const tmp = tempDir();
  const configFile = options.configFile ?? join(tmp.dir, 'gateway.yaml');
  if (!options.configFile) writeFileSync(configFile, yaml);
  const logs: LogRecord[] = [];
  const logger = new Logger((r) => logs.push(r), 'debug');
  const { gateway, diffs, egress } = await composeServer({
    configFile,
    logger,
    listen: { host: '127.0.0.1', port: 0 },
    admin: options.admin ?? { host: '127.0.0.1', port: 0 },
    watch: options.watch ?? true,
    // A short settle window keeps reload tests quick; the default is tested on its own.
    watchOptions: options.watchOptions ?? { debounceMs: 100, pollMs: 1000, settleMs: 50 },
  });
  const addresses = gateway.addresses!;
  return {
    gateway,
    diffs,
    egress,
    url: `${gateway.config.current.config.tls ? 'https' : 'http'}://127.0.0.1:${addresses.listen.port}`,
    port: addresses.listen.port,
    adminUrl: `http://${options.admin?.host.includes(':') ? `[${options.admin.host}]` : (options.admin?.host ?? '127.0.0.1')}:${addresses.admin.port}`,
    configFile,
    logs,
    writeConfig: (text) => writeFileSync(configFile, text),
    async settled(timeoutMs = 10_000) {
      const metrics = new URL('/metrics', `http://127.0.0.1:${addresses.admin.port}`);
      for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(20)) {
        const text = await (await fetch(metrics)).text();
        if (metricValue(text, METRIC.shadowInflight) === 0) break;
      }
      await diffs.engine.idle();
    },
    async close() {
      await gateway.close();
      tmp.remove();
    },
  };
}
