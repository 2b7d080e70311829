/**
 * The composition root: a control plane (config, admin API, lifecycle) over
 * a data plane in this process or in worker processes, plus the pieces that
 * hang off them (comparison of mirrored pairs, diff streams, status).
 *
 *   shadow path ─MirroredPair─▶ ComparePool (DiffEngines in shadow threads) ─outcome─▶ DiffStore ──▶ GET /diffs, /diffs/summary
 *   (with --workers N, each worker runs its own pool and forwards outcomes over IPC)
 *   metrics of every process ─────────────▶ StatusView ──────────▶ GET /status
 *   services' dependency calls ─▶ EgressService (this process) ─calls─▶ each pair, before comparison
 *   web/console/ ─────────────────────────────────────────────────▶ GET /ui (reads the endpoints above)
 */
import { consoleRoutes } from '../admin/routes/console.js';
import { diffRoutes } from '../admin/routes/diffs.js';
import { egressAdminRoutes } from '../admin/routes/egress.js';
import { statusRoutes } from '../admin/routes/status.js';
import { StatusView } from '../admin/status.js';
import { defaultsAt } from '../config/defaults.js';
import type { Snapshot } from '../config/compile.js';
import { ComparePool, comparesAny } from '../shadow/compare-pool.js';
import { ShadowThreads } from '../shadow/threads.js';
import { DIFF_CHANNEL, ingestBatch } from '../diff/forward.js';
import { DiffStore } from '../diff/store.js';
import { withEgressCalls } from '../egress/pair-calls.js';
import { answerCallQuestions, CALLS_CHANNEL } from '../egress/remote.js';
import { EgressService } from '../egress/service.js';
import { SimulationWatchers } from '../egress/watch.js';
import type { Logger } from '../log/logger.js';
import { GatewayMetrics } from '../metrics/registry.js';
import { ClusterDataPlane } from './cluster-data-plane.js';
import { Gateway, type Address, type GatewayOptions } from './gateway.js';
import { LocalDataPlane } from '../serving/local-data-plane.js';

export interface ServerOptions {
  readonly configFile: string;
  readonly logger: Logger;
  /** Worker processes; 1 serves from this process. */
  readonly workers?: number;
  readonly listen?: Address;
  readonly admin?: Address;
  readonly watch?: boolean;
  readonly watchOptions?: { debounceMs?: number; pollMs?: number };
  /** Log settings handed to worker processes. */
  readonly logSettings?: { format: string; level: string };
  readonly reloadPhases?: GatewayOptions['reloadPhases'];
}

export interface Server {
  readonly gateway: Gateway;
  /** The diff store behind /diffs, and the pool that hands this process's pairs to its shadow threads (idle with workers). */
  readonly diffs: { readonly store: DiffStore; readonly engine: ComparePool };
  readonly status: StatusView;
  readonly egress: EgressService;
}

/** Grace for egress calls still in flight once the data plane has stopped. */
const EGRESS_DRAIN_MS = 2000;

export async function composeServer(options: ServerOptions): Promise<Server> {
  const workers = options.workers ?? 1;
  const metrics = new GatewayMetrics();
  let gateway: Gateway | undefined;
  let egress: EgressService | undefined;
  const served = () => gateway?.served();
  const store = new DiffStore();
  const limits = () => gateway?.config.current.config.limits;
  // One set of shadow threads: they send this process's copies and compare its pairs.
  const shadowThreads = new ShadowThreads({ count: () => limits()?.compareThreads ?? defaultsAt('limits')['compareThreads'], metrics, logger: options.logger });
  const engine = new ComparePool({
    threads: shadowThreads,
    sink: store,
    metrics,
    logger: options.logger,
    queueLimit: () => limits()?.compareQueue ?? defaultsAt('limits')['compareQueue'],
    byteLimit: () => limits()?.shadowInflightBytes ?? defaultsAt('limits')['shadowInflightBytes'],
  });
  const status = new StatusView({
    metrics: async () => (gateway ? gateway.dataPlane.metricsJson(metrics) : []),
    snapshot: () => gateway?.served(),
    dependencies: () => egress?.status(),
  });
  const simulations = new SimulationWatchers(
    () => void gateway?.reload('simulation-file'),
    (message) => options.logger.warn('simulation.watch', message),
    options.watchOptions ?? {},
  );
  try {
    gateway = await Gateway.start({
      configFile: options.configFile,
      logger: options.logger,
      metrics,
      ...(options.listen ? { listen: options.listen } : {}),
      ...(options.admin ? { admin: options.admin } : {}),
      ...(options.watch !== undefined ? { watch: options.watch } : {}),
      ...(options.watchOptions ? { watchOptions: options.watchOptions } : {}),
      ...(options.reloadPhases ? { reloadPhases: options.reloadPhases } : {}),
      adminRoutes: [...diffRoutes(store), ...statusRoutes(status), ...egressAdminRoutes(() => egress, served), ...consoleRoutes()],
      dataPlane: (m, logger) => {
        if (workers <= 1) return new LocalDataPlane(m, logger, withEgressCalls(engine, () => egress, served), shadowThreads);
        const plane = new ClusterDataPlane(m, logger, { workers, logSettings: options.logSettings ?? { format: 'json', level: 'info' } });
        plane.onWorkerEvent(DIFF_CHANNEL, (payload) => ingestBatch(store, payload));
        plane.onWorkerEvent(CALLS_CHANNEL, answerCallQuestions(() => egress, served, (id, answer) => plane.sendToWorker(id, CALLS_CHANNEL, answer)));
        return plane;
      },
    });
    const started = gateway;
    egress = new EgressService({ metrics, logger: options.logger, snapshot: () => started.served() });
    await egress.start();
    await status.start();
  } catch (err) {
    status.close();
    await engine.close();
    await egress?.close();
    await gateway?.close();
    await shadowThreads.close();
    throw err;
  }
  const running = egress;
  // With workers, each compares its own pairs; this process's threads stay idle.
  const warm = (snapshot: Snapshot) => (workers <= 1 && comparesAny(snapshot) ? engine.warm() : Promise.resolve());
  // The first pairs must not wait for the threads to load their code.
  await warm(gateway.served());
  if (options.watch !== false) simulations.sync(gateway.served());
  gateway.onReload((snapshot) => {
    void warm(snapshot);
    running.apply(snapshot);
    if (options.watch !== false) simulations.sync(snapshot);
  });
  gateway.onClose(async () => {
    status.close();
    simulations.close();
    // The data plane has drained, so the live calls are over; calls still in
    // flight (dark copies finishing) get a short grace, and so do the pairs
    // handed over for comparison.
    await Promise.all([engine.drain(EGRESS_DRAIN_MS).then(() => engine.close()), running.drain(EGRESS_DRAIN_MS)]);
    await shadowThreads.close();
  });
  return { gateway, diffs: { store, engine }, status, egress: running };
}

export async function startServer(options: ServerOptions): Promise<Gateway> {
  return (await composeServer(options)).gateway;
}
