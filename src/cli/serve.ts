/**
 * `gatewayctl serve`: load, validate and compile the config, then proxy.
 * Signals: SIGHUP reloads; SIGUSR1 reopens the access log; SIGTERM/SIGINT drain and exit 0; a second one
 * exits at once.
 */
import type { Command } from 'commander';
import { availableParallelism } from 'node:os';
import { resolveConfigPath } from '../config/load.js';
import { parseDuration } from '../config/units.js';
import { ConfigInvalidError, UsageError } from '../errors.js';
import { LOG_LEVELS, type Logger } from '../log/logger.js';
import type { Gateway } from '../control/gateway.js';
import { EXIT_FAILED, EXIT_OK } from './exit-codes.js';
import { defaultLogFormat, makeLogger, renderDiagnostic, summaryLine, terminalOutput } from './output.js';

export interface ServeFlags {
  config?: string;
  workers?: string;
  drainDelay?: string;
  logFormat?: string;
  logLevel?: string;
}

export function registerServe(program: Command, run: (action: () => Promise<number>) => void): void {
  program
    .command('serve')
    .description('run the gateway: proxy, shadow, compare; reload the config when it changes')
    .option('-c, --config <file>', 'config file (default: $GATEWAYCTL_CONFIG, else ./gateway.yaml)')
    .option('--workers <n>', 'worker processes sharing the port: a number, or "auto" for one per core within the cgroup memory limit', '1')
    .option('--drain-delay <duration>', 'on SIGTERM, fail readiness but keep serving this long before draining (behind a load balancer)')
    .option('--log-format <format>', 'json (for journald and log shippers) or pretty', defaultLogFormat())
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'info')
    .addHelpText(
      'after',
      `
Signals: SIGHUP reloads the config; SIGUSR1 reopens the access log file
(after rotation); SIGTERM or SIGINT drains in-flight requests (up to
timeouts.drain) and exits 0; a second signal exits at once.
With --drain-delay, /readyz answers 503 at once but new connections are
still served for that long first, while load balancers (a Kubernetes
Service) stop routing to this instance.
Under systemd (Type=notify) it reports READY=1 once listening, RELOADING=1
and READY=1 around each reload, and STOPPING=1 when draining.

Examples:
  gatewayctl serve -c gateway.yaml
  gatewayctl serve -c /etc/gatewayctl/gateway.yaml --workers auto --log-format json`,
    )
    .action((flags: ServeFlags) => run(() => serveCommand(flags)));
}

async function parseWorkers(value: string | undefined, configFile: string, logger?: Logger): Promise<number> {
  if (value === undefined) return 1;
  if (value === 'auto') {
    const { autoWorkers, cgroupMemoryLimit, workerMemoryOfFile, WORKER_MEMORY_BYTES } = await import('../control/worker-count.js');
    const limit = cgroupMemoryLimit();
    // Under a memory limit, what a worker holds depends on whether the config shadows.
    const perWorker = limit === undefined ? WORKER_MEMORY_BYTES : workerMemoryOfFile(configFile);
    const budget = autoWorkers(availableParallelism(), limit, perWorker);
    if (budget.limitedByMemory) {
      const mib = (bytes: number) => Math.round(bytes / 1048576);
      logger?.info(
        'serve.workers',
        `--workers auto: ${budget.workers} workers, not ${budget.cpus}: the memory limit is ${mib(budget.memoryLimitBytes!)}MiB and a worker of this config may hold ${mib(perWorker)}MiB`,
        { ...budget, workerMemoryBytes: perWorker },
      );
    }
    return budget.workers;
  }
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 256) {
    throw new UsageError(`--workers must be a number from 1 to 256, or "auto", not "${value}"`);
  }
  return Number(value);
}

export async function serveCommand(flags: ServeFlags): Promise<number> {
  // First of all: starting over keeps nothing this process opened.
  const { reportRestart, restartWithDefaults } = await import('../control/process-defaults.js');
  const restart = restartWithDefaults();
  const logger = makeLogger(flags);
  reportRestart(restart, logger);
  const file = resolveConfigPath(flags.config);
  const workers = await parseWorkers(flags.workers, file, logger);
  const drainDelay = flags.drainDelay === undefined ? { ok: true as const, value: 0 } : parseDuration(flags.drainDelay);
  if (!drainDelay.ok) throw new UsageError(`--drain-delay: ${drainDelay.error}`);
  // Loaded here, not at the top: the other commands (validate above all) never load the gateway.
  const [{ startServer }, { serviceNotifier }] = await Promise.all([import('../control/server-factory.js'), import('../control/service-notify.js')]);
  const notifier = serviceNotifier(logger);
  let gateway: Gateway;
  try {
    gateway = await startServer({
      configFile: file,
      logger,
      workers,
      logSettings: { format: flags.logFormat ?? defaultLogFormat(), level: flags.logLevel ?? 'info' },
      reloadPhases: { begin: () => void notifier.reloading(), end: () => void notifier.ready() },
    });
  } catch (err) {
    if (err instanceof ConfigInvalidError) {
      const io = terminalOutput();
      for (const d of err.diagnostics) for (const line of renderDiagnostic(d, io.color)) io.err(line);
      io.err(`${file}: invalid: ${summaryLine(err.diagnostics)}; not starting`);
      return EXIT_FAILED;
    }
    throw err;
  }
  await notifier.ready(`serving config generation ${gateway.config.current.generation} with ${workers} worker${workers === 1 ? '' : 's'}`);
  return new Promise<number>((resolve) => {
    let signals = 0;
    const stop = (signal: string) => {
      signals++;
      if (signals > 1) {
        logger.warn('gateway.forced', `${signal} again: exiting at once`);
        resolve(EXIT_FAILED);
        return;
      }
      void notifier.stopping();
      gateway.withdraw();
      const delay = drainDelay.value;
      logger.info('gateway.signal', delay ? `${signal}: failing readiness, draining in ${delay}ms` : `${signal}: draining`, { drainDelayMs: delay });
      setTimeout(() => void gateway.drain().then(() => resolve(EXIT_OK)), delay);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void gateway.reload('SIGHUP'));
    process.on('SIGUSR1', () => gateway.reopenLogs());
  });
}
