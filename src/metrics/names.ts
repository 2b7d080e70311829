/**
 * The name of every metric the gateway exports (the public contract, see
 * CONTRACT.md), written once: the registry declares them under these names
 * and every reader (status, release evidence, PromQL, tests) asks for them
 * by the same constants.
 */
export const METRIC = {
  requests: 'gatewayctl_requests_total',
  grpcRequests: 'gatewayctl_grpc_requests_total',
  requestDuration: 'gatewayctl_request_duration_seconds',
  upstreamErrors: 'gatewayctl_upstream_errors_total',
  upstreamRetries: 'gatewayctl_upstream_retries_total',
  endpointHealthy: 'gatewayctl_upstream_endpoint_healthy',
  endpointEjections: 'gatewayctl_upstream_ejections_total',
  accessLogDropped: 'gatewayctl_access_log_dropped_total',
  shadowRequests: 'gatewayctl_shadow_requests_total',
  shadowDuration: 'gatewayctl_shadow_duration_seconds',
  shadowComparisons: 'gatewayctl_shadow_comparisons_total',
  shadowDifferences: 'gatewayctl_shadow_differences_total',
  shadowInflight: 'gatewayctl_shadow_inflight',
  shadowAdmittedRatio: 'gatewayctl_shadow_admitted_ratio',
  shadowLatencyRatio: 'gatewayctl_shadow_latency_ratio',
  compareDropped: 'gatewayctl_shadow_compare_dropped_total',
  shadowThreadRestarts: 'gatewayctl_shadow_thread_restarts_total',
  configReloads: 'gatewayctl_config_reloads_total',
  configLastReloadSuccessful: 'gatewayctl_config_last_reload_successful',
  configLastReloadTimestamp: 'gatewayctl_config_last_reload_success_timestamp_seconds',
  configGeneration: 'gatewayctl_config_generation',
  rejectedRequests: 'gatewayctl_rejected_requests_total',
  connections: 'gatewayctl_connections',
  connectionsClosed: 'gatewayctl_connections_closed_total',
  connectionsLimit: 'gatewayctl_connections_limit',
  workerRestarts: 'gatewayctl_worker_restarts_total',
  releaseStep: 'gatewayctl_release_step',
  releaseWeight: 'gatewayctl_release_weight',
  releaseTransitions: 'gatewayctl_release_transitions_total',
  releaseGateValue: 'gatewayctl_release_gate_value',
  releaseGateLimit: 'gatewayctl_release_gate_limit',
  tlsCertificateExpiry: 'gatewayctl_tls_certificate_expiry_seconds',
  tlsReloads: 'gatewayctl_tls_reloads_total',
  tlsHandshakeErrors: 'gatewayctl_tls_handshake_errors_total',
  egressRequests: 'gatewayctl_egress_requests_total',
  egressDuration: 'gatewayctl_egress_duration_seconds',
  egressRecordedBytes: 'gatewayctl_egress_recorded_bytes',
  egressRecordingsDropped: 'gatewayctl_egress_recordings_dropped_total',
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** The prefix of every metric of the gateway's own (not the process's or Node's). */
export const METRIC_PREFIX = 'gatewayctl_';

/** A histogram's series: its buckets, the sum and the count of its observations. */
export const bucketsOf = (histogram: MetricName): string => `${histogram}_bucket`;
export const sumOf = (histogram: MetricName): string => `${histogram}_sum`;
