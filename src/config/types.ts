/**
 * The normalized config: every default applied, every value in its final
 * unit (milliseconds, bytes), names resolved. Produced by validate.ts,
 * frozen, and compiled into a Snapshot by compile.ts.
 */
import type { ListenAddress } from './units.js';

export interface UpstreamConfig {
  readonly name: string;
  readonly url: string;
  /** Response timeout for this upstream; falls back to timeouts.upstream. */
  readonly timeoutMs: number | undefined;
  readonly connectTimeoutMs: number;
  readonly maxSockets: number;
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
}

export interface DiffConfig {
  readonly enabled: boolean;
  /** Lower-cased; on top of the built-in noisy headers. */
  readonly ignoreHeaders: readonly string[];
  readonly ignorePaths: readonly string[];
  readonly baseline: string | undefined;
  readonly maxBodyBytes: number;
}

export interface RouteConfig {
  readonly name: string;
  readonly match: RouteMatchConfig;
  readonly backends: readonly BackendConfig[];
  readonly sticky: StickyConfig | undefined;
  readonly shadow: readonly ShadowConfig[];
  readonly diff: DiffConfig;
}

export interface LimitsConfig {
  readonly maxHeaderCount: number;
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
  readonly shadowInflight: number;
  readonly shadowBodyBytes: number;
  readonly compareQueue: number;
}

export interface TimeoutsConfig {
  readonly headerMs: number;
  readonly idleMs: number;
  readonly bodyMs: number;
  /** An upgraded (WebSocket) connection with no traffic either way. */
  readonly websocketIdleMs: number;
  readonly upstreamMs: number;
  readonly shadowMs: number;
  readonly drainMs: number;
}

export interface AdminConfig extends ListenAddress {
  readonly token: string | undefined;
}

export interface GatewayConfig {
  readonly version: 1;
  readonly listen: ListenAddress;
  readonly admin: AdminConfig;
  readonly upstreams: Readonly<Record<string, UpstreamConfig>>;
  readonly routes: readonly RouteConfig[];
  readonly trustedProxies: readonly string[];
  readonly limits: LimitsConfig;
  readonly timeouts: TimeoutsConfig;
}
