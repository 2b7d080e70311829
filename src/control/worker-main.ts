/**
 * Entry point of a worker process (`serve --workers N`): serves requests
 * with a ProxyRuntime, taking its config from the primary process, which
 * keeps the admin API, the config file and the lifecycle. It compares its
 * own mirrored pairs and forwards the outcomes to the primary, which serves
 * /diffs.
 */
import { compileSnapshot } from '../config/compile.js';
import { jsonSink, prettySink } from '../log/sinks.js';
import { defaultsAt } from '../config/defaults.js';
import { DIFF_CHANNEL, Forwarder } from '../diff/forward.js';
import { CALLS_CHANNEL, RemoteCallsSink } from '../egress/remote.js';
import { Logger, type LogLevel } from '../log/logger.js';
import { GatewayMetrics } from '../metrics/registry.js';
import { isMessage, type FromWorker, type SnapshotMessage, type ToWorker } from './ipc.js';
import { ProxyRuntime } from '../serving/proxy-runtime.js';
import { ComparePool, comparesAny } from '../shadow/compare-pool.js';
import { ShadowThreads } from '../shadow/threads.js';

const workerId = Number(process.env['GATEWAYCTL_WORKER_ID'] ?? '0');
const level = (process.env['GATEWAYCTL_LOG_LEVEL'] ?? 'info') as LogLevel;
const sink = process.env['GATEWAYCTL_LOG_FORMAT'] === 'pretty' ? prettySink() : jsonSink();
const logger = new Logger(sink, level, { worker: workerId });
const metrics = new GatewayMetrics();
let runtime: ProxyRuntime | undefined;

function send(message: FromWorker, sent?: () => void): void {
  if (process.connected && process.send) process.send(message, undefined, {}, () => sent?.());
  else sent?.();
}

const outcomes = new Forwarder((batch, sent) => send({ type: 'event', channel: DIFF_CHANNEL, payload: batch }, sent));
const processes = Number(process.env['GATEWAYCTL_WORKERS'] ?? '1') || 1;
/** The limits in effect, or undefined before the first config arrives (then the schema's defaults hold). */
const limits = () => runtime?.snapshot.config.limits;
const limitDefaults = defaultsAt('limits');
const compareQueue = (): number => limits()?.compareQueue ?? limitDefaults['compareQueue'];
// Each serving process has its own shadow threads, the cores shared out among them.
const shadowThreads = new ShadowThreads({ count: () => limits()?.compareThreads ?? limitDefaults['compareThreads'], processes, metrics, logger });
const engine = new ComparePool({
  threads: shadowThreads,
  sink: outcomes,
  metrics,
  logger,
  queueLimit: compareQueue,
  byteLimit: () => limits()?.shadowInflightBytes ?? limitDefaults['shadowInflightBytes'],
});

// Each pair's dependency calls are held by the primary's egress: fetched before comparing.
const pairs = new RemoteCallsSink(
  engine,
  (question) => send({ type: 'event', channel: CALLS_CHANNEL, payload: question }),
  compareQueue,
);

/** Compares what is handed over (briefly), hands the outcomes to the primary, and exits. */
async function finish(): Promise<void> {
  pairs.flush();
  await engine.drain(1000);
  await engine.close();
  await shadowThreads.close();
  setTimeout(() => process.exit(0), 1000).unref();
  outcomes.flush(() => process.exit(0));
}

/**
 * A worker compiles what it is sent, once per message: matchers, pickers and
 * samplers are functions and state, which cannot cross processes, so the
 * primary sends the validated config (releases applied) instead.
 */
function compile(message: SnapshotMessage) {
  return compileSnapshot(message.config, {
    generation: message.generation,
    servedGeneration: message.servedGeneration,
    source: message.source,
    loadedAt: new Date(message.loadedAt),
  });
}

process.on('message', (raw: unknown) => {
  if (!isMessage<ToWorker>(raw)) return;
  switch (raw.type) {
    case 'start': {
      const snapshot = compile(raw.snapshot);
      // Listening waits for the shadow threads to load, as the primary's own do.
      const warmed = comparesAny(snapshot) ? engine.warm() : Promise.resolve();
      const serving = new ProxyRuntime({
        snapshot,
        metrics,
        logger,
        pairSink: pairs,
        shadowThreads,
        processes,
        ...(raw.tls ? { tls: raw.tls } : {}),
      });
      runtime = serving;
      warmed.then(() => serving.listen(raw.host, raw.port)).then(
        (address) => send({ type: 'listening', port: address.port }),
        (err: NodeJS.ErrnoException) => {
          send({ type: 'listen-failed', code: err.code ?? '', message: err.message });
          process.exit(1);
        },
      );
      return;
    }
    case 'apply': {
      const snapshot = compile(raw.snapshot);
      if (comparesAny(snapshot)) void engine.warm();
      runtime?.apply(snapshot);
      send({ type: 'applied', servedGeneration: raw.snapshot.servedGeneration });
      return;
    }
    case 'tls':
      runtime?.applyTls(raw.material);
      send({ type: 'tls-applied', generation: raw.material.generation });
      return;
    case 'metrics':
      void metrics.registry.getMetricsAsJSON().then((json) => send({ type: 'metrics', id: raw.id, metrics: json }));
      return;
    case 'event':
      if (raw.channel === CALLS_CHANNEL) pairs.answer(raw.payload);
      return;
    case 'drain':
      void (runtime?.drain(raw.deadlineMs) ?? Promise.resolve()).then(finish);
      return;
    case 'reopen-logs':
      runtime?.reopenLogs();
      return;
  }
});

// Messages sent before this module finished loading would be lost: say when
// it is safe to send the config.
send({ type: 'ready' });

// The primary went away: nobody can drain us any more.
process.on('disconnect', () => {
  void (runtime?.drain(1000) ?? Promise.resolve())
    .then(() => engine.close())
    .then(() => shadowThreads.close())
    .then(() => process.exit(0));
});
// Signals go to the primary, which drains the workers itself.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
process.on('SIGHUP', () => undefined);
// The primary asks workers to reopen the access log; a stray SIGUSR1 must not start an inspector.
process.on('SIGUSR1', () => undefined);
