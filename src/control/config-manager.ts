/**
 * Owns the config file: loads it, validates it with exactly the code
 * `gatewayctl validate` runs, compiles it, and on reload decides whether the
 * new snapshot replaces the running one. A bad config never replaces a good
 * one; an unchanged config is a no-op. Reload metrics are set here.
 */
import { absoluteConfigPath } from '../config/load.js';
import { compileSnapshot, configHash, type Snapshot } from '../config/compile.js';
import { describeChange, type ConfigChange } from '../config/describe-change.js';
import { formatDiagnostic, type Diagnostic } from '../config/diagnostics.js';
import { validateOffThread } from '../config/offthread.js';
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

export type ReloadResult =
  | { readonly status: 'applied'; readonly snapshot: Snapshot; readonly change: ConfigChange; readonly warnings: readonly Diagnostic[] }
  | { readonly status: 'unchanged'; readonly snapshot: Snapshot }
  | { readonly status: 'rejected'; readonly diagnostics: readonly Diagnostic[]; readonly message: string };

export class ConfigManager {
  readonly file: string;
  private snapshot: Snapshot | undefined;
  private generation = 0;
  /** Text of the config in effect (what the file watcher compares against). */
  currentText = '';

  constructor(
    file: string,
    private readonly logger: Logger,
    private readonly metrics: GatewayMetrics,
  ) {
    this.file = file;
  }

  get current(): Snapshot {
    if (!this.snapshot) throw new Error('config not loaded');
    return this.snapshot;
  }

  /** The first load: throws ConfigInvalidError or ConfigUnreadableError. */
  loadInitial(): { snapshot: Snapshot; warnings: readonly Diagnostic[]; text: string } {
    const result = validateConfigFile(this.file);
    if (!result.config) throw new ConfigInvalidError(result.diagnostics);
    this.currentText = result.source.text;
    this.snapshot = compileSnapshot(result.config, {
      generation: ++this.generation,
      source: absoluteConfigPath(this.file),
      loadedAt: new Date(),
    });
    this.metrics.configGeneration.set(this.generation);
    this.metrics.configLastReloadSuccessful.set(1);
    this.metrics.configLastReloadTimestamp.set(Date.now() / 1000);
    return { snapshot: this.snapshot, warnings: result.diagnostics, text: this.currentText };
  }

  /**
   * Reads the file again and, when valid and different, compiles the new
   * snapshot and makes it current. The caller applies it to the proxies.
   * Validation runs in a worker thread (config/offthread.ts): requests keep
   * being served meanwhile.
   */
  async reload(trigger: string, text?: string, force = false): Promise<ReloadResult> {
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

    this.currentText = sourceText;
    if (configHash(config) === previous.hash) {
      // A valid file is a successful reload even when it changes nothing: a
      // bad edit reverted byte for byte must clear the failure.
      this.metrics.configLastReloadSuccessful.set(1);
      this.logger.debug('config.unchanged', `config unchanged (${trigger}); nothing to do`, { trigger });
      return { status: 'unchanged', snapshot: previous };
    }
    const snapshot = compileSnapshot(config, {
      generation: ++this.generation,
      source: absoluteConfigPath(this.file),
      loadedAt: new Date(),
    });
    const change = describeChange(previous.config, config);
    this.snapshot = snapshot;
    this.metrics.configReloads.inc({ result: 'success' });
    this.metrics.configLastReloadSuccessful.set(1);
    this.metrics.configLastReloadTimestamp.set(Date.now() / 1000);
    this.metrics.configGeneration.set(snapshot.generation);
    this.logger.info(
      'config.reloaded',
      `config generation ${snapshot.generation} applied (${trigger}): ${change.summary.join('; ') || 'no routing changes'}`,
      { trigger, generation: snapshot.generation, changes: change.summary },
    );
    for (const item of change.restartRequired) {
      this.logger.warn('config.restart_required', `${item}: takes effect after a restart; the running value is kept`, { trigger });
    }
    for (const d of diagnostics) this.logger.warn('config.warning', formatDiagnostic(d));
    return { status: 'applied', snapshot, change, warnings: diagnostics };
  }

  private rejected(trigger: string, diagnostics: readonly Diagnostic[], message: string): ReloadResult {
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
