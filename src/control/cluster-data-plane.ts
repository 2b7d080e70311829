/**
 * The data plane in N worker processes sharing the listening port
 * (`serve --workers N`). The primary validates each config once and sends
 * the normalized result, releases applied, to every worker, which compiles
 * it once and applies it.
 * /metrics aggregates all workers with the primary's own metrics; a worker
 * that dies is replaced (with back-off) and counted.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import type { Snapshot } from '../config/compile.js';
import type { Logger } from '../log/logger.js';
import type { ListenerMaterial } from '../tls/listener.js';
import type { GatewayMetrics, MetricJson } from '../metrics/registry.js';
import type { Address, DataPlane } from '../serving/data-plane.js';
import { missingDefaults } from './process-defaults.js';
import { isMessage, type FromWorker, type SnapshotMessage, type ToWorker } from './ipc.js';

export interface ClusterOptions {
  readonly workers: number;
  readonly logSettings: { format: string; level: string };
}

interface WorkerSlot {
  readonly id: number;
  worker: Worker;
  startedAt: number;
  failures: number;
}

const METRICS_TIMEOUT_MS = 2000;

export class ClusterDataPlane implements DataPlane {
  private readonly slots: WorkerSlot[] = [];
  private snapshot: Snapshot | undefined;
  /** Certificates, PEM: read once by the primary, sent to every worker (replacements too). */
  private tls: ListenerMaterial | undefined;
  private listenAddress: Address | undefined;
  private stopping = false;
  private nextRequestId = 1;
  private readonly eventHandlers = new Map<string, (payload: unknown, workerId: number) => void>();

  constructor(
    private readonly metricsRef: GatewayMetrics,
    private readonly logger: Logger,
    private readonly options: ClusterOptions,
  ) {
    cluster.setupPrimary({
      exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)),
      args: [],
      silent: false,
    });
  }

  /** Receives `event` messages a worker sends on `channel` (diffs, evidence). */
  onWorkerEvent(channel: string, handler: (payload: unknown, workerId: number) => void): void {
    this.eventHandlers.set(channel, handler);
  }

  /** Sends an `event` message on `channel` to one worker (answers to its events). */
  sendToWorker(workerId: number, channel: string, payload: unknown): void {
    const slot = this.slots.find((s) => s.id === workerId);
    if (slot) this.send(slot.worker, { type: 'event', channel, payload });
  }

  async start(snapshot: Snapshot, listen: Address, tls?: ListenerMaterial): Promise<Address> {
    this.snapshot = snapshot;
    this.tls = tls;
    this.listenAddress = listen;
    const first = await Promise.all(Array.from({ length: this.options.workers }, (_, i) => this.spawn(i + 1)));
    // Replacement workers ask for the address as configured (even port 0):
    // the primary keys its shared listening handle by it.
    return { host: listen.host, port: first[0]! };
  }

  private spawn(id: number): Promise<number> {
    const worker = cluster.fork({
      ...missingDefaults(),
      GATEWAYCTL_WORKER_ID: String(id),
      GATEWAYCTL_WORKERS: String(this.options.workers),
      GATEWAYCTL_LOG_LEVEL: this.options.logSettings.level,
      GATEWAYCTL_LOG_FORMAT: this.options.logSettings.format,
    });
    let slot = this.slots.find((s) => s.id === id);
    if (slot) {
      slot.worker = worker;
      slot.startedAt = Date.now();
    } else {
      slot = { id, worker, startedAt: Date.now(), failures: 0 };
      this.slots.push(slot);
    }
    const current = slot;
    worker.on('message', (raw: unknown) => {
      if (isMessage<FromWorker>(raw) && raw.type === 'event') this.eventHandlers.get(raw.channel)?.(raw.payload, id);
    });
    worker.on('exit', (code, signal) => this.onExit(current, worker, code, signal));
    return new Promise((resolve, reject) => {
      const onMessage = (raw: unknown) => {
        if (!isMessage<FromWorker>(raw)) return;
        if (raw.type === 'ready') {
          const { host, port } = this.listenAddress!;
          this.send(worker, { type: 'start', snapshot: toMessage(this.snapshot!), host, port, ...(this.tls ? { tls: this.tls } : {}) });
        } else if (raw.type === 'listening') {
          worker.off('message', onMessage);
          resolve(raw.port);
        } else if (raw.type === 'listen-failed') {
          worker.off('message', onMessage);
          reject(Object.assign(new Error(raw.message), { code: raw.code }));
        }
      };
      worker.on('message', onMessage);
      worker.once('exit', () => reject(new Error(`worker ${id} exited before listening`)));
    });
  }

  private onExit(slot: WorkerSlot, worker: Worker, code: number | null, signal: string | null): void {
    if (this.stopping || slot.worker !== worker) return;
    const quick = Date.now() - slot.startedAt < 5000;
    slot.failures = quick ? slot.failures + 1 : 0;
    const delay = Math.min(5000, 100 * 2 ** Math.min(slot.failures, 6));
    this.metricsRef.workerRestarts.inc();
    this.logger.error('worker.exited', `worker ${slot.id} exited (${signal ?? `code ${code}`}); restarting in ${delay}ms`, {
      worker: slot.id,
      code,
      signal,
    });
    setTimeout(() => {
      if (this.stopping) return;
      this.spawn(slot.id).catch((err: Error) =>
        this.logger.error('worker.restart_failed', `worker ${slot.id} failed to restart: ${err.message}`, { worker: slot.id }),
      );
    }, delay).unref();
  }

  private send(worker: Worker, message: ToWorker): void {
    if (worker.isConnected()) worker.send(message);
  }

  reopenLogs(): void {
    for (const worker of this.live()) worker.send({ type: 'reopen-logs' } satisfies ToWorker);
  }

  private live(): Worker[] {
    return this.slots.map((s) => s.worker).filter((w) => w.isConnected() && !w.isDead());
  }

  async apply(snapshot: Snapshot): Promise<void> {
    this.snapshot = snapshot;
    await this.broadcast(
      { type: 'apply', snapshot: toMessage(snapshot) },
      (reply) => reply.type === 'applied' && reply.servedGeneration === snapshot.servedGeneration,
    );
  }

  async applyTls(material: ListenerMaterial): Promise<void> {
    this.tls = material;
    await this.broadcast({ type: 'tls', material }, (reply) => reply.type === 'tls-applied' && reply.generation === material.generation);
  }

  /** Sends `message` to every live worker; resolves when each acknowledged it (or exited, or 5 s passed). */
  private async broadcast(message: ToWorker, acknowledges: (reply: FromWorker) => boolean): Promise<void> {
    await Promise.all(
      this.live().map(
        (worker) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(done, 5000);
            function done() {
              clearTimeout(timer);
              worker.off('message', onMessage);
              worker.off('exit', done);
              resolve();
            }
            const onMessage = (raw: unknown) => {
              if (isMessage<FromWorker>(raw) && acknowledges(raw)) done();
            };
            worker.on('message', onMessage);
            worker.once('exit', done);
            this.send(worker, message);
          }),
      ),
    );
  }

  async metrics(own: GatewayMetrics): Promise<{ contentType: string; text: string }> {
    return { contentType: own.registry.contentType, text: await (await this.aggregate(own)).metrics() };
  }

  async metricsJson(own: GatewayMetrics): Promise<MetricJson[]> {
    return (await (await this.aggregate(own)).getMetricsAsJSON()) as MetricJson[];
  }

  private async aggregate(own: GatewayMetrics) {
    const id = this.nextRequestId++;
    const fromWorkers = await Promise.all(
      this.live().map(
        (worker) =>
          new Promise<MetricJson[] | undefined>((resolve) => {
            const timer = setTimeout(() => finish(undefined), METRICS_TIMEOUT_MS);
            const onMessage = (raw: unknown) => {
              if (isMessage<FromWorker>(raw) && raw.type === 'metrics' && raw.id === id) finish(raw.metrics as MetricJson[]);
            };
            function finish(value: MetricJson[] | undefined) {
              clearTimeout(timer);
              worker.off('message', onMessage);
              resolve(value);
            }
            worker.on('message', onMessage);
            this.send(worker, { type: 'metrics', id });
          }),
      ),
    );
    const all = [...fromWorkers.filter((m): m is MetricJson[] => m !== undefined), (await own.registry.getMetricsAsJSON()) as MetricJson[]];
    return AggregatorRegistry.aggregate(all);
  }

  async drain(deadlineMs: number): Promise<void> {
    this.stopping = true;
    const workers = this.live();
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              worker.process.kill('SIGKILL');
              resolve();
            }, deadlineMs + 2000);
            worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            this.send(worker, { type: 'drain', deadlineMs });
          }),
      ),
    );
  }

  async close(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.slots.map(
        (slot) =>
          new Promise<void>((resolve) => {
            if (slot.worker.isDead()) return resolve();
            slot.worker.once('exit', () => resolve());
            slot.worker.process.kill('SIGKILL');
          }),
      ),
    );
  }

  /** Counted inside the workers; not known here. */
  inflight(): number | undefined {
    return undefined;
  }
}

function toMessage(snapshot: Snapshot): SnapshotMessage {
  return {
    config: snapshot.config,
    generation: snapshot.generation,
    servedGeneration: snapshot.servedGeneration,
    source: snapshot.source,
    loadedAt: snapshot.loadedAt.toISOString(),
  };
}
