/**
 * A whole gateway in one process: config manager, proxy runtime, admin API.
 * `serve` starts one of these (or a supervisor with workers); tests start
 * them in-process on port 0.
 */
import type { Snapshot } from '../config/compile.js';
import type { Diagnostic } from '../config/diagnostics.js';
import { AdminServer, type AdminReply, type AdminRoute } from '../admin/server.js';
import { ErrorCodes, GatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { GatewayMetrics } from '../metrics/registry.js';
import { ConfigManager, type ReloadResult } from './config-manager.js';
import { ProxyRuntime } from './proxy-runtime.js';
import type { PairSink } from '../shadow/pair.js';

export interface GatewayOptions {
  readonly configFile: string;
  readonly logger: Logger;
  /** Override the config's addresses (tests use port 0). */
  readonly listen?: { host: string; port: number };
  readonly admin?: { host: string; port: number };
  readonly metrics?: GatewayMetrics;
}

export interface GatewayAddresses {
  readonly listen: { host: string; port: number };
  readonly admin: { host: string; port: number };
}

/** JSON view of a snapshot for GET /config; secrets redacted. */
export function describeSnapshot(snapshot: Snapshot): unknown {
  const config = snapshot.config;
  return {
    generation: snapshot.generation,
    hash: snapshot.hash,
    loadedAt: snapshot.loadedAt.toISOString(),
    source: snapshot.source,
    config: { ...config, admin: { ...config.admin, token: config.admin.token ? '(set)' : undefined } },
  };
}

export function reloadReply(result: ReloadResult): AdminReply {
  switch (result.status) {
    case 'applied':
      return {
        status: 200,
        body: {
          generation: result.snapshot.generation,
          changed: result.change.summary,
          restartRequired: result.change.restartRequired,
          warnings: result.warnings.map(diagnosticJson),
        },
      };
    case 'unchanged':
      return { status: 200, body: { generation: result.snapshot.generation, changed: [], unchanged: true } };
    case 'rejected':
      return { status: 422, body: { error: result.message, errors: result.diagnostics.map(diagnosticJson) } };
  }
}

export function diagnosticJson(d: Diagnostic): Record<string, unknown> {
  return { severity: d.severity, message: d.message, path: d.path, line: d.line, column: d.column, code: d.code };
}

export class Gateway {
  readonly metrics: GatewayMetrics;
  readonly config: ConfigManager;
  readonly proxy: ProxyRuntime;
  readonly admin: AdminServer;
  private readonly logger: Logger;
  private stopping = false;
  addresses: GatewayAddresses | undefined;
  private readonly reloadHooks: ((snapshot: Snapshot) => void)[] = [];

  private constructor(
    options: GatewayOptions,
    metrics: GatewayMetrics,
    config: ConfigManager,
    snapshot: Snapshot,
    extras: { pairSink?: PairSink; routes?: AdminRoute[] },
  ) {
    this.logger = options.logger;
    this.metrics = metrics;
    this.config = config;
    this.proxy = new ProxyRuntime({
      snapshot,
      metrics,
      logger: options.logger,
      ...(extras.pairSink ? { pairSink: extras.pairSink } : {}),
    });
    this.admin = new AdminServer(
      {
        ready: () => !this.stopping,
        metrics: async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }),
        config: () => describeSnapshot(this.config.current),
        reload: async () => reloadReply(this.reload('admin')),
        extraRoutes: extras.routes ?? [],
      },
      options.logger,
      snapshot.config.admin.token,
    );
  }

  /** Loads the config (throwing on errors) and starts listening. */
  static async start(options: GatewayOptions, extras: { pairSink?: PairSink; routes?: AdminRoute[] } = {}): Promise<Gateway> {
    const metrics = options.metrics ?? new GatewayMetrics();
    const config = new ConfigManager(options.configFile, options.logger, metrics);
    const { snapshot, warnings } = config.loadInitial();
    for (const w of warnings) options.logger.warn('config.warning', `${w.file}:${w.line}:${w.column}: warning: ${w.message}`);
    const gateway = new Gateway(options, metrics, config, snapshot, extras);
    const listen = options.listen ?? snapshot.config.listen;
    const adminAddress = options.admin ?? snapshot.config.admin;
    try {
      const boundAdmin = await gateway.admin.listen(adminAddress.host, adminAddress.port);
      const boundListen = await gateway.proxy.listen(listen.host, listen.port);
      gateway.addresses = { listen: boundListen, admin: boundAdmin };
    } catch (err) {
      await gateway.close();
      const e = err as NodeJS.ErrnoException;
      throw new GatewayError(ErrorCodes.LISTEN_FAILED, `cannot listen: ${e.code ?? ''} ${e.message}`.trim(), { cause: err });
    }
    options.logger.info(
      'gateway.listening',
      `gateway listening on ${gateway.addresses.listen.host}:${gateway.addresses.listen.port}, admin on ${gateway.addresses.admin.host}:${gateway.addresses.admin.port}`,
      { listen: gateway.addresses.listen, admin: gateway.addresses.admin, generation: snapshot.generation },
    );
    return gateway;
  }

  onReload(hook: (snapshot: Snapshot) => void): void {
    this.reloadHooks.push(hook);
  }

  reload(trigger: string, text?: string): ReloadResult {
    const result = this.config.reload(trigger, text);
    if (result.status === 'applied') {
      this.proxy.apply(result.snapshot);
      this.admin.setToken(result.snapshot.config.admin.token);
      for (const hook of this.reloadHooks) hook(result.snapshot);
    }
    return result;
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  /** Graceful stop: readiness fails, in-flight work finishes, then close. */
  async drain(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const deadline = this.config.current.config.timeouts.drainMs;
    this.logger.info('gateway.draining', `draining: finishing ${this.proxy.inflight} in-flight requests (at most ${deadline}ms)`);
    await this.proxy.drain(deadline);
    await this.admin.close();
    this.logger.info('gateway.stopped', 'gateway stopped');
  }

  async close(): Promise<void> {
    this.stopping = true;
    await this.proxy.close();
    await this.admin.close();
  }
}
