/**
 * The contract between the control plane and whatever serves requests: this
 * process (LocalDataPlane) or worker processes (control/cluster-data-plane).
 * It lives on the serving floor so that serving never imports control.
 */
import type { Snapshot } from '../config/compile.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, MetricJson } from '../metrics/registry.js';
import type { ListenerMaterial } from '../tls/listener.js';

export interface Address {
  readonly host: string;
  readonly port: number;
}

/** Where requests are actually served. */
export interface DataPlane {
  /** Starts serving `snapshot` on `listen` (HTTPS with `tls`); resolves with the bound address. */
  start(snapshot: Snapshot, listen: Address, tls?: ListenerMaterial): Promise<Address>;
  /** Swaps new certificates in everywhere; resolves once every server uses them. */
  applyTls(material: ListenerMaterial): Promise<void>;
  /** Swaps a new snapshot in everywhere; resolves once every server uses it. */
  apply(snapshot: Snapshot): Promise<void>;
  /** Stops accepting, lets in-flight work finish (bounded), then closes. */
  drain(deadlineMs: number): Promise<void>;
  close(): Promise<void>;
  /** Prometheus text for everything this data plane serves, control plane included. */
  metrics(own: GatewayMetrics): Promise<{ contentType: string; text: string }>;
  /** The same, as prom-client JSON (what release gates read). */
  metricsJson(own: GatewayMetrics): Promise<MetricJson[]>;
  /** Requests in flight, when this process knows. */
  inflight(): number | undefined;
  /** Reopens the access log file everywhere (after rotation). */
  reopenLogs(): void;
}

export type DataPlaneFactory = (metrics: GatewayMetrics, logger: Logger) => DataPlane;
