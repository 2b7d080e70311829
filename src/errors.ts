/**
 * Every error the gateway raises or answers with carries a stable `code`.
 * The catalogue below gives each code its HTTP status (what the admin API
 * and the gateway's own answers send) and its exit status (what the CLI
 * exits with: cli/exit-codes.ts reads it, and nothing else maps codes to
 * exits). The README's error table lists the same codes, statuses and
 * exits; test/unit/errors.test.ts keeps the two in agreement both ways.
 */
import type { Diagnostic } from './config/diagnostics.js';

export interface ErrorEntry {
  /** HTTP status of an answer carrying this code. */
  readonly http: number;
  /** Exit status of a command failing with this code. */
  readonly exit: number;
  /** What it means, as the README's table says it. */
  readonly meaning: string;
}

export const ERROR_CATALOGUE = {
  GW_CONFIG_UNREADABLE: { http: 422, exit: 2, meaning: 'the config file is missing or unreadable' },
  GW_CONFIG_INVALID: { http: 422, exit: 1, meaning: 'the config has at least one error' },
  GW_USAGE: { http: 400, exit: 2, meaning: 'a command line that cannot be acted on' },
  GW_LISTEN_FAILED: { http: 500, exit: 1, meaning: 'a listener could not bind its address' },
  GW_ADMIN_REQUEST_FAILED: { http: 502, exit: 1, meaning: 'an admin API call failed or was refused' },
  GW_FILE_EXISTS: { http: 409, exit: 1, meaning: '`init` would overwrite a file' },
  GW_FILE_WRITE_FAILED: { http: 500, exit: 1, meaning: '`init` could not write its file (permissions, missing directory, full disk)' },
  GW_RELEASE_CONFLICT: { http: 409, exit: 1, meaning: "a release action that does not apply in the release's state" },
  GW_NOT_FOUND: { http: 404, exit: 1, meaning: 'nothing by that name: no route matches, or a route named in a command has no release' },
  GW_PROMETHEUS_FAILED: { http: 502, exit: 1, meaning: '`release run --prometheus`: Prometheus was unreachable or refused a query' },
  GW_BAD_REQUEST: { http: 400, exit: 1, meaning: 'the gateway refused a malformed or oversized request (the answer carries the precise 4xx status)' },
  GW_UNAUTHORIZED: { http: 401, exit: 1, meaning: 'an admin call that needs `admin.token` came without it' },
  GW_FORBIDDEN: { http: 403, exit: 1, meaning: 'an admin call for a foreign `Host`, or a cross-site one' },
  GW_METHOD_NOT_ALLOWED: { http: 405, exit: 1, meaning: 'a method the endpoint does not serve' },
  GW_INTERNAL: { http: 500, exit: 1, meaning: 'a fault of the gateway itself (logged with the request id)' },
  GW_UPSTREAM_FAILED: { http: 502, exit: 1, meaning: 'the upstream could not be reached, refused, or broke the exchange' },
  GW_UNAVAILABLE: { http: 503, exit: 1, meaning: 'no capacity to serve now: pool exhausted, draining, or starting' },
  GW_UPSTREAM_TIMEOUT: { http: 504, exit: 1, meaning: 'the upstream did not answer, or stalled, within its timeouts' },
  GW_SHADOW_TIMEOUT: { http: 504, exit: 1, meaning: 'a shadow copy did not finish within its timeout (never seen by clients: counted and logged)' },
} as const satisfies Record<string, ErrorEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

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
  /** A file the command writes could not be written (EACCES, ENOENT, ENOSPC...). */
  FILE_WRITE_FAILED: 'GW_FILE_WRITE_FAILED',
  /** A release operation that does not apply in the release's current state. */
  RELEASE_CONFLICT: 'GW_RELEASE_CONFLICT',
  /** Nothing by that name: no route matches, or a named route has no release. */
  NOT_FOUND: 'GW_NOT_FOUND',
  /** A query to Prometheus, the release evidence source, failed. */
  PROMETHEUS_FAILED: 'GW_PROMETHEUS_FAILED',
  /** A request the gateway refused as malformed or too large. */
  BAD_REQUEST: 'GW_BAD_REQUEST',
  /** An admin call without the token it needs. */
  UNAUTHORIZED: 'GW_UNAUTHORIZED',
  /** An admin call refused for its Host or as cross-site. */
  FORBIDDEN: 'GW_FORBIDDEN',
  /** A method the endpoint does not serve. */
  METHOD_NOT_ALLOWED: 'GW_METHOD_NOT_ALLOWED',
  /** A fault of the gateway itself. */
  INTERNAL: 'GW_INTERNAL',
  /** The upstream was unreachable or broke the exchange. */
  UPSTREAM_FAILED: 'GW_UPSTREAM_FAILED',
  /** No capacity now (pool exhausted, draining, starting). */
  UNAVAILABLE: 'GW_UNAVAILABLE',
  /** An upstream phase (connect, response, body...) ran over its timeout: raised on the request path. */
  UPSTREAM_TIMEOUT: 'GW_UPSTREAM_TIMEOUT',
  /** A shadow copy ran over its timeout: raised on the shadow path. */
  SHADOW_TIMEOUT: 'GW_SHADOW_TIMEOUT',
} as const satisfies Record<string, ErrorCode>;

/** The HTTP status an answer with this code carries. */
export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].http;
}

/** The exit status of a command failing with this code (the CLI's to use). */
export function exitStatusOf(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].exit;
}

/**
 * The code of an answer the gateway gives itself, from its status: where a
 * status has several codes, the request path's own (an upstream fault, not
 * an admin call) is the one clients see.
 */
const ANSWER_CODES: ReadonlyMap<number, ErrorCode> = new Map([
  [400, 'GW_BAD_REQUEST'],
  [401, 'GW_UNAUTHORIZED'],
  [403, 'GW_FORBIDDEN'],
  [404, 'GW_NOT_FOUND'],
  [405, 'GW_METHOD_NOT_ALLOWED'],
  [500, 'GW_INTERNAL'],
  [502, 'GW_UPSTREAM_FAILED'],
  [503, 'GW_UNAVAILABLE'],
  [504, 'GW_UPSTREAM_TIMEOUT'],
]);

export function answerCode(status: number): ErrorCode {
  return ANSWER_CODES.get(status) ?? (status >= 500 ? 'GW_INTERNAL' : 'GW_BAD_REQUEST');
}

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
