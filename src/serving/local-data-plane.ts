/**
 * The data plane in the gateway's own process: one ProxyRuntime.
 */
import type { Snapshot } from '../config/compile.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, MetricJson } from '../metrics/registry.js';
import type { PairSink } from '../diff/pair.js';
import type { ShadowThreads } from '../shadow/threads.js';
import type { ListenerMaterial } from '../tls/listener.js';
import type { Address, DataPlane } from './data-plane.js';
import { ProxyRuntime } from './proxy-runtime.js';

export class LocalDataPlane implements DataPlane {
  private runtime: ProxyRuntime | undefined;

  constructor(
    private readonly gatewayMetrics: GatewayMetrics,
    private readonly logger: Logger,
    private readonly pairSink?: PairSink,
    /** The process's shadow threads, shared with comparison. */
    private readonly shadowThreads?: ShadowThreads,
  ) {}

  get proxy(): ProxyRuntime | undefined {
    return this.runtime;
  }

  async start(snapshot: Snapshot, listen: Address, tls?: ListenerMaterial): Promise<Address> {
    this.runtime = new ProxyRuntime({
      snapshot,
      metrics: this.gatewayMetrics,
      logger: this.logger,
      ...(this.pairSink ? { pairSink: this.pairSink } : {}),
      ...(this.shadowThreads ? { shadowThreads: this.shadowThreads } : {}),
      ...(tls ? { tls } : {}),
    });
    return this.runtime.listen(listen.host, listen.port);
  }

  async apply(snapshot: Snapshot): Promise<void> {
    this.runtime?.apply(snapshot);
  }

  async applyTls(material: ListenerMaterial): Promise<void> {
    this.runtime?.applyTls(material);
  }

  async drain(deadlineMs: number): Promise<void> {
    await this.runtime?.drain(deadlineMs);
  }

  async close(): Promise<void> {
    await this.runtime?.close();
  }

  async metrics(own: GatewayMetrics): Promise<{ contentType: string; text: string }> {
    return { contentType: own.registry.contentType, text: await own.registry.metrics() };
  }

  async metricsJson(own: GatewayMetrics): Promise<MetricJson[]> {
    return (await own.registry.getMetricsAsJSON()) as MetricJson[];
  }

  reopenLogs(): void {
    this.runtime?.reopenLogs();
  }

  inflight(): number {
    return this.runtime?.inflight ?? 0;
  }
}
