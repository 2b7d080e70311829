/**
 * The normalized config: every default applied, every value in its final
 * unit (milliseconds, bytes), names resolved. Produced by validate.ts,
 * frozen, and compiled into a Snapshot by compile.ts.
 */
import type { ListenAddress } from './units.js';

/** One instance of an upstream. */
export interface EndpointConfig {
  /** Label in metrics and status: the configured name, or the position in the list. */
  readonly name: string;
  readonly url: string;
  readonly weight: number;
}

export interface HealthCheckConfig {
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
}

export interface OutlierDetectionConfig {
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionPercent: number;
}

/** What a retry is for: a failure kind or an upstream status. */
export type RetryOn = 'connect' | 'reset' | number;

export interface RetryConfig {
  /** Tries in all, the first included. */
  readonly attempts: number;
  readonly on: readonly RetryOn[];
  readonly budgetPercent: number;
}

export interface UpstreamConfig {
  readonly name: string;
  /** The first endpoint's URL (scheme and base path are shared by all endpoints). */
  readonly url: string;
  readonly endpoints: readonly EndpointConfig[];
  readonly healthCheck: HealthCheckConfig | undefined;
  readonly outlierDetection: OutlierDetectionConfig;
  readonly retry: RetryConfig;
  /** Longest wait for a pooled connection. */
  readonly poolTimeoutMs: number;
  /** Response timeout for this upstream; falls back to timeouts.upstream. */
  readonly timeoutMs: number | undefined;
  readonly connectTimeoutMs: number;
  readonly maxSockets: number;
  /** How an https:// upstream is verified; absent: system CAs, the URL's host. */
  readonly tls?: UpstreamTlsConfig;
  /** How requests reach it; absent means http1. */
  readonly protocol?: UpstreamProtocol;
}

export type UpstreamProtocol = 'http1' | 'h2' | 'h2c';

/** Settings for verifying an https:// upstream (see src/tls/upstream.ts). */
export interface UpstreamTlsConfig {
  /** Absolute path of the CA bundle, when given. */
  readonly ca: string | undefined;
  /** The bundle's certificates, read at validation, so every process verifies alike. */
  readonly caPem: string | undefined;
  /** Name to send (SNI) and verify; default: the URL's host name. */
  readonly serverName: string | undefined;
  readonly insecureSkipVerify: boolean;
}

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

export interface TlsCertificateConfig {
  /** Absolute paths (relative ones are resolved against the config file's directory). */
  readonly cert: string;
  readonly key: string;
}

/** The HTTPS listener (src/tls/). */
export interface TlsConfig {
  /** The default certificate first (tls.cert/key when given), then tls.certificates in order. */
  readonly certificates: readonly TlsCertificateConfig[];
  readonly minVersion: TlsVersion;
  /** A plain-HTTP listener that redirects to HTTPS. */
  readonly redirectHttp: ListenAddress | undefined;
}

export interface RouteMatchConfig {
  /** Normalized: no trailing slash except for "/" itself. */
  readonly prefix: string | undefined;
  /** Upper-cased. */
  readonly methods: readonly string[] | undefined;
  /** Lower-cased names. */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** Lower-cased; may start with "*.". */
  readonly host: string | undefined;
  /** true: gRPC calls only; false: anything else; absent: both. */
  readonly grpc?: boolean | undefined;
}

export interface BackendConfig {
  readonly upstream: string;
  readonly weight: number;
}

export type StickyConfig = { readonly header: string } | { readonly cookie: string };

export interface ShadowConfig {
  readonly upstream: string;
  readonly percent: number;
  /** Upper-cased. */
  readonly methods: readonly string[];
  /** Lower-cased names. */
  readonly setHeaders: Readonly<Record<string, string>>;
  /** Lower-cased names. */
  readonly removeHeaders: readonly string[];
  readonly host: string | undefined;
  /** strip: credentials are removed from the copy (see shadow/credentials.ts). */
  readonly credentials: 'forward' | 'strip';
  /** Streaming gRPC calls are mirrored too (shadow/streams.ts); otherwise unary calls only. */
  readonly streaming: boolean;
}

export interface DiffConfig {
  readonly enabled: boolean;
  /** Lower-cased; on top of the built-in noisy headers. */
  readonly ignoreHeaders: readonly string[];
  readonly ignorePaths: readonly string[];
  readonly baseline: string | undefined;
  readonly maxBodyBytes: number;
  /** Endpoint templates such as "/api/products/{id}". */
  readonly endpoints: readonly string[];
  /** Per JSON Pointer pattern: numbers this close are equal. */
  readonly tolerance: readonly NumberTolerance[];
  /** JSON Pointer patterns of arrays compared as multisets. */
  readonly unordered: readonly string[];
  readonly latency: { readonly maxRatio: number };
  /** Absolute path of a FileDescriptorSet: gRPC answers are compared with field names. */
  readonly protoDescriptors?: string;
}

export interface NumberTolerance {
  readonly path: string;
  readonly mode: 'relative' | 'absolute';
  readonly value: number;
}

export type ReleaseStep = 'shadow' | number;

export interface ReleaseGates {
  readonly maxErrorRate: number;
  readonly maxErrorRateIncrease: number;
  readonly maxLatencyRatio: number;
  readonly maxDiffRate: number;
}

export interface ReleaseConfig {
  readonly candidate: string;
  readonly steps: readonly ReleaseStep[];
  readonly shadowPercent: number;
  readonly intervalMs: number;
  readonly minRequests: number;
  readonly gates: ReleaseGates;
  readonly onFailure: 'rollback' | 'pause';
  readonly controller: 'gateway' | 'external';
  /** Longest a step waits for conclusive evidence; undefined: no deadline. */
  readonly maxStepDurationMs: number | undefined;
  readonly onTimeout: 'pass' | 'pause';
}

export interface RouteConfig {
  readonly name: string;
  readonly match: RouteMatchConfig;
  readonly backends: readonly BackendConfig[];
  readonly sticky: StickyConfig | undefined;
  readonly shadow: readonly ShadowConfig[];
  readonly diff: DiffConfig;
  readonly release: ReleaseConfig | undefined;
  /** %2F in a path: refused, or kept as part of its segment (route's own setting, else the top level). */
  readonly escapedSlashes: EscapedSlashes;
}

export type EscapedSlashes = 'reject' | 'keep';

export interface AccessLogConfig {
  /** 'stdout', or an absolute file path. */
  readonly path: string;
  readonly format: 'json' | 'combined';
  readonly fields: readonly string[];
  /** Lower-case request header names. */
  readonly headers: readonly string[];
}

export interface LimitsConfig {
  readonly maxHeaderCount: number;
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
  readonly shadowInflight: number;
  readonly shadowBodyBytes: number;
  /** Event-loop utilization at which shadow copies are shed (load-shedding.ts); 1 never; absent in hand-built configs: 0.9. */
  readonly shadowShedAbove?: number;
  readonly shadowInflightBytes: number;
  readonly compareQueue: number;
  /** Comparing threads per serving process; 0: sized to the cores. */
  readonly compareThreads: number;
  /** Undefined: derived from the descriptor limit (serving/descriptors.ts). */
  readonly maxConnections?: number | undefined;
  readonly maxConnectionsPerClient?: number | undefined;
  /** Live egress calls kept for pairing, in bytes. */
  readonly recordBytes: number;
  /** HTTP/2 clients (serving/h2.ts); absent in hand-built configs: the defaults. */
  readonly h2MaxConcurrentStreams?: number;
  readonly h2MaxResetsPerSecond?: number;
  readonly h2MaxSessionMemory?: number;
}

export interface TimeoutsConfig {
  readonly headerMs: number;
  readonly idleMs: number;
  readonly bodyMs: number;
  /** An upgraded (WebSocket) connection with no traffic either way. */
  readonly websocketIdleMs: number;
  readonly upstreamMs: number;
  readonly configSettleMs: number;
  readonly shadowMs: number;
  readonly drainMs: number;
  /** How long a live egress call is kept for pairing. */
  readonly recordMs: number;
}

export interface AdminConfig extends ListenAddress {
  readonly token: string | undefined;
  /** Host names accepted besides IPs and localhost, lower case. */
  readonly allowedHosts: readonly string[];
}

/** The egress listeners (src/egress/); absent ones are not opened. */
export interface EgressConfig {
  readonly live: ListenAddress | undefined;
  readonly dark: ListenAddress | undefined;
}

/** A parsed Hoverfly simulation (src/egress/simulation.ts), plain JSON. */
export interface SimulationConfig {
  /** Absolute path. */
  readonly file: string;
  readonly pairs: readonly SimulationPair[];
}

export interface FieldMatcher {
  /** Lower-cased: exact, glob, regex, json, jsonpartial. */
  readonly matcher: string;
  readonly value: string;
}

export interface SimulationPair {
  readonly request: {
    readonly method?: readonly FieldMatcher[];
    readonly path?: readonly FieldMatcher[];
    readonly destination?: readonly FieldMatcher[];
    readonly scheme?: readonly FieldMatcher[];
    readonly body?: readonly FieldMatcher[];
    /** Keys as written; compared case-insensitively. */
    readonly query?: Readonly<Record<string, readonly FieldMatcher[]>>;
    readonly headers?: Readonly<Record<string, readonly FieldMatcher[]>>;
  };
  readonly response: {
    readonly status: number;
    /** Base64 when `encodedBody`. */
    readonly body: string;
    readonly encodedBody: boolean;
    readonly headers: Readonly<Record<string, readonly string[]>>;
  };
}

export interface DependencyConfig {
  readonly name: string;
  /** Normalized like an upstream URL: no trailing slash. */
  readonly url: string;
  readonly tls?: UpstreamTlsConfig;
  readonly simulation: SimulationConfig | undefined;
  /** Upper-cased. */
  readonly passthrough: readonly string[];
  readonly ignoreBody: readonly string[];
  readonly waitMs: number;
}

export interface GatewayConfig {
  readonly version: 1;
  /** `h2c`: cleartext HTTP/2 beside HTTP/1.1 on the listener (absent: off). */
  readonly listen: ListenAddress & { readonly h2c?: boolean };
  readonly admin: AdminConfig;
  readonly upstreams: Readonly<Record<string, UpstreamConfig>>;
  readonly routes: readonly RouteConfig[];
  readonly paths: { readonly escapedSlashes: EscapedSlashes };
  readonly accessLog: AccessLogConfig | undefined;
  readonly trustedProxies: readonly string[];
  /** Where release progress is persisted. */
  readonly stateDir: string;
  readonly limits: LimitsConfig;
  readonly timeouts: TimeoutsConfig;
  /** When set, the listener speaks HTTPS. */
  readonly tls?: TlsConfig;
  /** Absent: no egress listeners. */
  readonly egress?: EgressConfig;
  readonly dependencies?: Readonly<Record<string, DependencyConfig>>;
}
