/**
 * Every error the core raises carries a stable `code`. Only the CLI turns a
 * code into an exit status (see cli/exit-codes.ts); the admin API turns it
 * into an HTTP status. The catalogue is listed in the README ("Errors"),
 * and a test keeps the two in agreement.
 */
import type { Diagnostic } from './config/diagnostics.js';

export const ErrorCodes = {
  /** The config file could not be read (missing, unreadable, too large). */
  CONFIG_UNREADABLE: 'GW_CONFIG_UNREADABLE',
  /** The config file was read but has at least one error. */
  CONFIG_INVALID: 'GW_CONFIG_INVALID',
  /** A listener could not bind its address. */
  LISTEN_FAILED: 'GW_LISTEN_FAILED',
  /** A call to a gateway's admin API failed or was refused. */
  ADMIN_REQUEST_FAILED: 'GW_ADMIN_REQUEST_FAILED',
  /** A command line that cannot be acted on. */
  USAGE: 'GW_USAGE',
  /** A file the command writes already exists. */
  FILE_EXISTS: 'GW_FILE_EXISTS',
  /** A release operation that does not apply in the release's current state. */
  RELEASE_CONFLICT: 'GW_RELEASE_CONFLICT',
  /** A route named in a command does not exist or has no release. */
  NOT_FOUND: 'GW_NOT_FOUND',
  /** A query to Prometheus, the release evidence source, failed. */
  PROMETHEUS_FAILED: 'GW_PROMETHEUS_FAILED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class GatewayError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

/** A config that failed validation; `diagnostics` holds every problem found. */
export class ConfigInvalidError extends GatewayError {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error').length;
    super(ErrorCodes.CONFIG_INVALID, `config has ${errors} error${errors === 1 ? '' : 's'}`);
    this.name = 'ConfigInvalidError';
    this.diagnostics = diagnostics;
  }
}

export class ConfigUnreadableError extends GatewayError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.CONFIG_UNREADABLE, message, options);
    this.name = 'ConfigUnreadableError';
    this.file = file;
  }
}

export class UsageError extends GatewayError {
  constructor(message: string) {
    super(ErrorCodes.USAGE, message);
    this.name = 'UsageError';
  }
}

export class AdminRequestError extends GatewayError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(ErrorCodes.ADMIN_REQUEST_FAILED, message, options);
    this.name = 'AdminRequestError';
    this.status = status;
  }
}

/** Prometheus (or Mimir, Thanos...) could not answer a release's evidence query. */
export class PrometheusError extends GatewayError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(ErrorCodes.PROMETHEUS_FAILED, message, options);
    this.name = 'PrometheusError';
    this.status = status;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}
