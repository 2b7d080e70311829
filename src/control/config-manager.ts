/**
 * Owns the config file: loads it, validates it with exactly the code
 * `gatewayctl validate` runs, and on reload decides, in this one place,
 * whether the result replaces the config in effect. A bad config never
 * replaces a good one; an unchanged config is a no-op. Compiling what is
 * served is the gateway's (control/gateway.ts), once per accepted config.
 * Reload metrics are set here.
 */
import { absoluteConfigPath } from '../config/load.js';
import { configHash, type Snapshot, type SnapshotMeta } from '../config/compile.js';
import { describeChange, type ConfigChange } from '../config/describe-change.js';
import { formatDiagnostic, type Diagnostic } from '../config/diagnostics.js';
import { validateOffThread } from '../config/offthread.js';
import type { GatewayConfig } from '../config/types.js';
import { validateConfigFile } from '../config/validate.js';
import { ConfigInvalidError, isGatewayError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/registry.js';

/**
 * The mass route removal guard: a reload that would take away more than half
 * of the routes in service (and at least two) is refused unless forced
 * (POST /reload?force=true) or the file says so with this line. A file
 * caught half-written, or truncated, is often still valid YAML.
 */
export const MASS_REMOVAL_MARKER = '# gatewayctl: allow-mass-removal';

export function removesMostRoutes(before: number, after: number): boolean {
  return before - after >= 2 && after * 2 < before;
}

/** A validated config in effect, not compiled. */
export interface AcceptedConfig extends SnapshotMeta {
  readonly config: GatewayConfig;
  /** sha256 of the normalized config: equal hashes mean equal behaviour. */
  readonly hash: string;
}

type Rejected = { readonly status: 'rejected'; readonly diagnostics: readonly Diagnostic[]; readonly message: string };

/** What a reload did, with the snapshot served afterwards. */
export type ReloadResult =
  | { readonly status: 'applied'; readonly snapshot: Snapshot; readonly change: ConfigChange; readonly warnings: readonly Diagnostic[] }
  | { readonly status: 'unchanged'; readonly snapshot: Snapshot }
  | Rejected;

/** The config manager's decision; `text` is the file content it was made on (for the file watcher). */
export type ConfigDecision =
  | { readonly status: 'applied'; readonly accepted: AcceptedConfig; readonly change: ConfigChange; readonly warnings: readonly Diagnostic[]; readonly text: string }
  | { readonly status: 'unchanged'; readonly accepted: AcceptedConfig; readonly text: string }
  | Rejected;

export class ConfigManager {
  readonly file: string;
  private accepted: AcceptedConfig | undefined;
  private generation = 0;

  constructor(
    file: string,
    private readonly logger: Logger,
    private readonly metrics: GatewayMetrics,
  ) {
    this.file = file;
  }

  /** The config in effect. */
  get current(): AcceptedConfig {
    if (!this.accepted) throw new Error('config not loaded');
    return this.accepted;
  }

  private accept(config: GatewayConfig): AcceptedConfig {
    this.accepted = { config, hash: configHash(config), generation: ++this.generation, source: absoluteConfigPath(this.file), loadedAt: new Date() };
    this.metrics.configLastReloadSuccessful.set(1);
    this.metrics.configLastReloadTimestamp.set(Date.now() / 1000);
    this.metrics.configGeneration.set(this.generation);
    return this.accepted;
  }

  /** The first load: throws ConfigInvalidError or ConfigUnreadableError. */
  loadInitial(): { accepted: AcceptedConfig; warnings: readonly Diagnostic[]; text: string } {
    const result = validateConfigFile(this.file);
    if (!result.config) throw new ConfigInvalidError(result.diagnostics);
    return { accepted: this.accept(result.config), warnings: result.diagnostics, text: result.source.text };
  }

  /**
   * Reads the file again and, when valid and different, makes it the config
   * in effect. The caller compiles and serves it.
   * Validation runs in a worker thread (config/offthread.ts): requests keep
   * being served meanwhile.
   */
  async reload(trigger: string, text?: string, force = false): Promise<ConfigDecision> {
    const previous = this.current;
    let diagnostics: readonly Diagnostic[];
    let config;
    let sourceText: string;
    try {
      const result = await validateOffThread(text === undefined ? { file: this.file } : { file: this.file, text });
      diagnostics = result.diagnostics;
      config = result.config;
      sourceText = result.source.text;
    } catch (err) {
      const message = isGatewayError(err) ? err.message : String(err);
      return this.rejected(trigger, [], message);
    }
    if (!config) return this.rejected(trigger, diagnostics, `config has errors; keeping generation ${previous.generation}`);
    const before = previous.config.routes.length;
    const after = config.routes.length;
    if (!force && removesMostRoutes(before, after) && !sourceText.split('\n').some((line) => line.trim() === MASS_REMOVAL_MARKER)) {
      const message = `the new config removes ${before - after} of ${before} routes; keeping generation ${previous.generation}. If that is meant, add the line "${MASS_REMOVAL_MARKER}" to the file, or reload with POST /reload?force=true`;
      const diagnostic: Diagnostic = { severity: 'error', code: 'mass-removal', message, path: 'routes', file: this.file, line: 1, column: 1 };
      return this.rejected(trigger, [diagnostic], message);
    }

    if (configHash(config) === previous.hash) {
      // A valid file is a successful reload even when it changes nothing: a
      // bad edit reverted byte for byte must clear the failure.
      this.metrics.configLastReloadSuccessful.set(1);
      this.logger.debug('config.unchanged', `config unchanged (${trigger}); nothing to do`, { trigger });
      return { status: 'unchanged', accepted: previous, text: sourceText };
    }
    const change = describeChange(previous.config, config);
    const accepted = this.accept(config);
    this.metrics.configReloads.inc({ result: 'success' });
    this.logger.info(
      'config.reloaded',
      `config generation ${accepted.generation} applied (${trigger}): ${change.summary.join('; ') || 'no routing changes'}`,
      { trigger, generation: accepted.generation, changes: change.summary },
    );
    for (const item of change.restartRequired) {
      this.logger.warn('config.restart_required', `${item}: takes effect after a restart; the running value is kept`, { trigger });
    }
    for (const d of diagnostics) this.logger.warn('config.warning', formatDiagnostic(d));
    return { status: 'applied', accepted, change, warnings: diagnostics, text: sourceText };
  }

  private rejected(trigger: string, diagnostics: readonly Diagnostic[], message: string): Rejected {
    this.metrics.configReloads.inc({ result: 'failure' });
    this.metrics.configLastReloadSuccessful.set(0);
    this.logger.error('config.reload_failed', `config reload (${trigger}) rejected: ${message}`, {
      trigger,
      errors: diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic),
    });
    for (const d of diagnostics) {
      if (d.severity === 'error') this.logger.error('config.error', formatDiagnostic(d), { trigger });
    }
    return { status: 'rejected', diagnostics, message };
  }
}
