/**
 * A gateway's control plane: it owns the config (load, watch, reload), the
 * admin API and the process's lifecycle, and drives a data plane that does
 * the proxying: in this process (LocalDataPlane) or in worker processes
 * (ClusterDataPlane). `serve` starts one; tests start them in-process on
 * port 0.
 */
import { compileSnapshot, type Snapshot } from '../config/compile.js';
import { ConfigWatcher, type ConfigWatcherOptions } from '../config/watch.js';
import { describeSnapshot, reloadReply } from '../admin/routes/config.js';
import { releaseAdminRoutes } from '../admin/routes/releases.js';
import type { AdminRoute } from '../admin/routes/reply.js';
import { AdminServer } from '../admin/server.js';
import { ErrorCodes, GatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { GatewayMetrics } from '../metrics/registry.js';
import { ReleaseController } from '../release/controller.js';
import { samplesFromJson } from '../metrics/read.js';
import { evidenceFrom } from '../release/evidence.js';
import { applyReleases } from '../release/overlay.js';
import { TlsManager } from '../tls/manager.js';
import type { Address, DataPlane, DataPlaneFactory } from '../serving/data-plane.js';
import { ConfigManager, type AcceptedConfig, type ReloadResult } from './config-manager.js';

export type { Address, DataPlane, DataPlaneFactory };

export interface GatewayOptions {
  readonly configFile: string;
  readonly logger: Logger;
  readonly dataPlane: DataPlaneFactory;
  /** Override the config's addresses (tests use port 0). */
  readonly listen?: Address;
  readonly admin?: Address;
  /** Watch the config file for changes (serve does; default true). */
  readonly watch?: boolean;
  readonly watchOptions?: { debounceMs?: number; pollMs?: number; settleMs?: number };
  readonly metrics?: GatewayMetrics;
  /** Extra admin endpoints (diffs, status, releases). */
  readonly adminRoutes?: readonly AdminRoute[];
  /** Told when a reload starts and ends, whatever triggered it (service manager notification). */
  readonly reloadPhases?: { begin(): void; end(): void };
}

export interface GatewayAddresses {
  readonly listen: Address;
  readonly admin: Address;
}

export class Gateway {
  readonly metrics: GatewayMetrics;
  readonly config: ConfigManager;
  readonly dataPlane: DataPlane;
  readonly admin: AdminServer;
  readonly releases: ReleaseController;
  readonly tls: TlsManager;
  private readonly logger: Logger;
  private watcher: ConfigWatcher | undefined;
  private stopping = false;
  private withdrawn = false;
  private reloadChain: Promise<unknown> = Promise.resolve();
  /** What the data plane serves: the config in effect with running releases applied, compiled once. */
  private servedSnapshot: Snapshot | undefined;
  private servedGeneration = 0;
  private readonly reloadHooks: ((snapshot: Snapshot) => void)[] = [];
  private readonly closeHooks: (() => void | Promise<void>)[] = [];
  addresses: GatewayAddresses | undefined;

  private constructor(private readonly options: GatewayOptions) {
    this.logger = options.logger;
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.config = new ConfigManager(options.configFile, options.logger, this.metrics);
    this.dataPlane = options.dataPlane(this.metrics, options.logger);
    this.releases = new ReleaseController({
      logger: options.logger,
      metrics: this.metrics,
      evidence: async () => evidenceFrom(samplesFromJson(await this.dataPlane.metricsJson(this.metrics))),
      onTrafficChange: () => this.refresh(),
    });
    this.tls = new TlsManager({
      logger: options.logger,
      metrics: this.metrics,
      apply: (material) => this.dataPlane.applyTls(material),
      caChanged: () => void this.reload('ca-file'),
      watchOptions: this.watchOptions(),
    });
    this.admin = new AdminServer(
      {
        ready: () => !this.stopping && !this.withdrawn,
        metrics: () => this.dataPlane.metrics(this.metrics),
        config: () => describeSnapshot(this.config.current),
        reload: async (force) => reloadReply(await this.reload(force ? 'admin (forced)' : 'admin', undefined, force)),
        extraRoutes: [...releaseAdminRoutes(() => this.releases), ...(options.adminRoutes ?? [])],
      },
      options.logger,
      undefined,
      this.metrics,
    );
  }

  /** How the config and certificate files are watched: the settle window is the config's, read at each change. */
  private watchOptions(): ConfigWatcherOptions {
    return { settleMs: () => this.config.current.config.timeouts.configSettleMs, ...this.options.watchOptions };
  }

  /** Loads the config (throwing ConfigInvalidError on errors) and starts serving. */
  static async start(options: GatewayOptions): Promise<Gateway> {
    const gateway = new Gateway(options);
    await gateway.startServing();
    return gateway;
  }

  private async startServing(): Promise<void> {
    const { accepted, warnings, text } = this.config.loadInitial();
    for (const w of warnings) this.logger.warn('config.warning', `${w.file}:${w.line}:${w.column}: warning: ${w.message}`);
    this.admin.setToken(accepted.config.admin.token);
    this.admin.setAllowedHosts(accepted.config.admin.allowedHosts);
    this.releases.sync(accepted.config);
    const snapshot = this.serve(accepted);
    const listen = this.options.listen ?? snapshot.config.listen;
    const adminAddress = this.options.admin ?? snapshot.config.admin;
    const certificates = this.tls.load(snapshot.config);
    try {
      const boundAdmin = await this.admin.listen(adminAddress.host, adminAddress.port);
      const boundListen = await this.dataPlane.start(snapshot, listen, certificates);
      this.addresses = { listen: boundListen, admin: boundAdmin };
    } catch (err) {
      await this.close();
      const e = err as NodeJS.ErrnoException;
      throw new GatewayError(ErrorCodes.LISTEN_FAILED, `cannot listen: ${e.code ?? ''} ${e.message}`.trim(), { cause: err });
    }
    if (this.options.watch !== false) {
      this.watcher = new ConfigWatcher(
        this.config.file,
        (changed) => void this.reload('file', changed),
        (message) => this.logger.warn('config.watch', message),
        this.watchOptions(),
      );
      this.watcher.start(text);
      this.tls.watch(snapshot.config);
    }
    this.releases.start();
    const { listen: l, admin: a } = this.addresses;
    const https = snapshot.config.tls ? ' (HTTPS)' : '';
    this.logger.info('gateway.listening', `gateway listening on ${l.host}:${l.port}${https}, admin on ${a.host}:${a.port}`, {
      listen: l,
      admin: a,
      tls: snapshot.config.tls !== undefined,
      generation: snapshot.generation,
    });
  }

  /** What is being served now: the current config with running releases applied. */
  served(): Snapshot {
    if (!this.servedSnapshot) throw new Error('config not loaded');
    return this.servedSnapshot;
  }

  /**
   * Compiles what the data plane is to serve: the accepted config with
   * running releases applied. Once per accepted config or release move; a
   * validated config always compiles (compile.ts only builds from it).
   */
  private serve(accepted: AcceptedConfig): Snapshot {
    this.servedSnapshot = compileSnapshot(applyReleases(accepted.config, this.releases.current), {
      generation: accepted.generation,
      servedGeneration: ++this.servedGeneration,
      source: accepted.source,
      loadedAt: accepted.loadedAt,
    });
    return this.servedSnapshot;
  }

  /** Re-applies the current config (a release moved), in reload order. */
  refresh(): Promise<void> {
    const next = this.reloadChain.then(async () => {
      if (!this.stopping) await this.dataPlane.apply(this.serve(this.config.current));
    });
    this.reloadChain = next.catch(() => undefined);
    return next;
  }

  onReload(hook: (snapshot: Snapshot) => void): void {
    this.reloadHooks.push(hook);
  }

  /** Runs once the gateway has stopped serving (after drain or close); drain and close wait for it. */
  onClose(hook: () => void | Promise<void>): void {
    this.closeHooks.push(hook);
  }

  private async runCloseHooks(): Promise<void> {
    const failed = (err: unknown) => this.logger.error('gateway.close', `cleanup failed: ${(err as Error).message}`);
    const running: Promise<void>[] = [];
    for (const hook of this.closeHooks.splice(0)) {
      try {
        const result = hook();
        if (result) running.push(result.catch(failed));
      } catch (err) {
        failed(err);
      }
    }
    await Promise.all(running);
  }

  /**
   * Re-reads and validates the config and applies it everywhere. Reloads run
   * one at a time, in the order they were asked for.
   */
  reload(trigger: string, text?: string, force = false): Promise<ReloadResult> {
    const next = this.reloadChain.then(() => this.reloadNow(trigger, text, force));
    this.reloadChain = next.catch(() => undefined);
    return next;
  }

  private async reloadNow(trigger: string, text: string | undefined, force: boolean): Promise<ReloadResult> {
    if (this.stopping) return { status: 'unchanged', snapshot: this.served() };
    this.options.reloadPhases?.begin();
    try {
      return await this.applyReload(trigger, text, force);
    } finally {
      this.options.reloadPhases?.end();
    }
  }

  private async applyReload(trigger: string, text: string | undefined, force: boolean): Promise<ReloadResult> {
    const decision = await this.config.reload(trigger, text, force);
    if (decision.status === 'rejected') return decision;
    // The watcher hands over only content other than what it last saw: a
    // reload through the admin API or a signal tells it what is in effect.
    this.watcher?.acknowledge(decision.text);
    if (decision.status === 'unchanged') {
      await this.tls.update(decision.accepted.config);
      return { status: 'unchanged', snapshot: this.served() };
    }
    const { config } = decision.accepted;
    this.releases.sync(config);
    const snapshot = this.serve(decision.accepted);
    await this.dataPlane.apply(snapshot);
    this.admin.setToken(config.admin.token);
    this.admin.setAllowedHosts(config.admin.allowedHosts);
    for (const hook of this.reloadHooks) hook(snapshot);
    await this.tls.update(config);
    return { status: 'applied', snapshot, change: decision.change, warnings: decision.warnings };
  }

  /**
   * Fails readiness while still serving, so load balancers stop sending new
   * connections before drain() closes the listener.
   */
  withdraw(): void {
    this.withdrawn = true;
  }

  /** SIGUSR1: the access log file was rotated; reopen it. */
  reopenLogs(): void {
    this.logger.info('gateway.reopen-logs', 'reopening the access log');
    this.dataPlane.reopenLogs();
  }

  /** Graceful stop: readiness fails, in-flight work finishes, then close. */
  async drain(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.watcher?.close();
    this.tls.close();
    this.releases.stop();
    const deadline = this.config.current.config.timeouts.drainMs;
    const inflight = this.dataPlane.inflight();
    this.logger.info(
      'gateway.draining',
      `draining: finishing ${inflight ?? 'all'} in-flight requests (at most ${deadline}ms)`,
      { inflight, deadlineMs: deadline },
    );
    await this.dataPlane.drain(deadline);
    await this.admin.close();
    await this.runCloseHooks();
    this.logger.info('gateway.stopped', 'gateway stopped');
  }

  async close(): Promise<void> {
    this.stopping = true;
    this.watcher?.close();
    this.tls.close();
    this.releases.stop();
    await this.dataPlane.close();
    await this.admin.close();
    await this.runCloseHooks();
  }
}
