/**
 * The control plane's side of TLS. It reads the listener's certificate files
 * (in the primary process only), hands the PEM material to the data plane
 * (in this process, or over IPC to every worker, so all serve the same
 * certificates), and reloads them when their files change: the same
 * directory watching as the config file. A pair that fails to load (missing,
 * not parsing, key not matching, expired) never replaces a working one; it
 * is counted and logged, and the old certificates keep serving.
 *
 * It also watches upstream CA bundles (`upstreams.*.tls.ca`): a change
 * there triggers a config reload, which reads them again.
 */
import { ErrorCodes, GatewayError } from '../errors.js';
import type { GatewayConfig, TlsConfig } from '../config/types.js';
import type { ConfigWatcherOptions } from '../config/watch.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';
import type { ListenerMaterial } from './listener.js';
import { digest, formatDate, loadPair, type LoadedPair } from './pem.js';
import { FileSetWatcher } from './watch.js';

/**
 * A pair that fails to load is read once more after this long before the
 * reload counts as failed: tools that write the certificate and the key one
 * after the other leave a moment where they do not match.
 */
const RETRY_MS = 1000;

export interface TlsManagerOptions {
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  /** Puts new certificates into service everywhere. */
  readonly apply: (material: ListenerMaterial) => Promise<void>;
  /** Called when an upstream CA bundle changed: the config must be re-read. */
  readonly caChanged: () => void;
  readonly watchOptions?: ConfigWatcherOptions;
}

type Loaded = { ok: true; pairs: LoadedPair[]; warnings: string[] } | { ok: false; problems: string[] };

/** Reads every certificate of a listener config; messages name absolute paths. */
export function loadListener(config: TlsConfig, now = Date.now()): Loaded {
  const pairs: LoadedPair[] = [];
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const c of config.certificates) {
    const result = loadPair({ path: c.cert, shown: c.cert }, { path: c.key, shown: c.key }, now);
    if (result.ok) {
      pairs.push(result.pair);
      warnings.push(...result.warnings.map((w) => w.message));
    } else problems.push(...result.problems.filter((p) => p.severity === 'error').map((p) => p.message));
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, pairs, warnings };
}

export class TlsManager {
  private config: TlsConfig | undefined;
  private material: ListenerMaterial | undefined;
  private identity = '';
  private generation = 0;
  private retried = false;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private watching = false;
  private closed = false;
  private readonly certificates: FileSetWatcher;
  private readonly caBundles: FileSetWatcher;
  private readonly logger: Logger;
  private readonly metrics: GatewayMetrics;

  constructor(private readonly options: TlsManagerOptions) {
    this.logger = options.logger;
    this.metrics = options.metrics;
    const onError = (message: string) => this.logger.warn('tls.watch', message);
    const debounceMs = options.watchOptions?.debounceMs ?? 150;
    this.certificates = new FileSetWatcher(() => this.changed(debounceMs), onError, options.watchOptions);
    this.caBundles = new FileSetWatcher(() => options.caChanged(), onError, options.watchOptions);
  }

  /** The certificates in service. */
  get current(): ListenerMaterial | undefined {
    return this.material;
  }

  /**
   * First load, before the listener starts: the config was just validated,
   * so a failure here means the files changed in between.
   */
  load(config: GatewayConfig): ListenerMaterial | undefined {
    this.config = config.tls;
    if (!config.tls) return undefined;
    const loaded = loadListener(config.tls);
    if (!loaded.ok) throw new GatewayError(ErrorCodes.CONFIG_INVALID, `cannot load TLS certificates: ${loaded.problems.join('; ')}`);
    this.adopt(config.tls, loaded.pairs);
    return this.material;
  }

  /** Starts watching certificate and CA files. */
  watch(config: GatewayConfig): void {
    this.watching = true;
    this.watchFiles(config);
    // Anything that changed between the first load and the watch starting.
    if (this.config) this.changed(0);
  }

  /**
   * After every config reload, whatever triggered it (file, SIGHUP, POST
   * /reload): new certificate settings take effect, and certificate files
   * are read again, so a manual reload also rotates them.
   */
  update(config: GatewayConfig): Promise<void> {
    if (this.watching) this.watchFiles(config);
    // HTTP <-> HTTPS needs a restart (the config manager says so); keep serving as started.
    if (!this.config || !config.tls) return Promise.resolve();
    this.config = config.tls;
    this.retried = true; // validation just read these files: no grace period
    return this.enqueue();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.certificates.close();
    this.caBundles.close();
  }

  private watchFiles(config: GatewayConfig): void {
    const listener = this.config ? this.config.certificates.flatMap((c) => [c.cert, c.key]) : [];
    this.certificates.watch(listener);
    const cas = Object.values(config.upstreams).flatMap((u) => (u.tls?.ca ? [u.tls.ca] : []));
    this.caBundles.watch(cas);
  }

  private changed(delayMs: number): void {
    if (this.closed) return;
    this.retried = false;
    this.schedule(delayMs);
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.enqueue(), delayMs);
    this.timer.unref();
  }

  private enqueue(): Promise<void> {
    const next = this.chain.then(() => this.reload());
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async reload(): Promise<void> {
    const config = this.config;
    if (!config || this.closed) return;
    this.certificates.handled();
    const loaded = loadListener(config);
    if (!loaded.ok) {
      if (!this.retried) {
        this.retried = true;
        this.logger.debug('tls.reload_retry', `certificates do not load yet (${loaded.problems.join('; ')}); reading again in ${RETRY_MS}ms`);
        this.schedule(RETRY_MS);
        return;
      }
      this.metrics.tlsReloads.inc({ result: 'failure' });
      this.logger.error(
        'tls.reload_failed',
        `certificate reload failed; still serving generation ${this.material?.generation}: ${loaded.problems.join('; ')}`,
        { problems: loaded.problems },
      );
      return;
    }
    if (identityOf(config, loaded.pairs) === this.identity) return;
    this.adopt(config, loaded.pairs);
    await this.options.apply(this.material!);
    this.metrics.tlsReloads.inc({ result: 'success' });
    const described = loaded.pairs.map((p) => `${p.primaryName} (until ${formatDate(p.notAfter)}, sha256 ${p.fingerprint.slice(0, 23)}...)`);
    this.logger.info('tls.reloaded', `certificates generation ${this.material!.generation} in service: ${described.join(', ')}`, {
      generation: this.material!.generation,
      certificates: loaded.pairs.map((p) => ({ name: p.primaryName, notAfter: p.notAfter.toISOString(), fingerprint: p.fingerprint })),
    });
    for (const warning of loaded.warnings) this.logger.warn('tls.warning', warning);
  }

  private adopt(config: TlsConfig, pairs: readonly LoadedPair[]): void {
    this.identity = identityOf(config, pairs);
    this.material = {
      generation: ++this.generation,
      minVersion: config.minVersion,
      certificates: pairs.map((p) => ({ cert: p.cert, key: p.key, names: p.names })),
    };
    this.metrics.tlsCertificateExpiry.reset();
    const earliest = new Map<string, number>();
    for (const p of pairs) {
      const at = p.notAfter.getTime() / 1000;
      earliest.set(p.primaryName, Math.min(at, earliest.get(p.primaryName) ?? Infinity));
    }
    for (const [name, at] of earliest) this.metrics.tlsCertificateExpiry.set({ name }, at);
  }
}

function identityOf(config: TlsConfig, pairs: readonly LoadedPair[]): string {
  return digest(JSON.stringify([config.minVersion, pairs.map((p) => [p.cert, p.key])]));
}
