/**
 * gRPC on the request path: deadlines from `grpc-timeout`, failures told
 * as a gRPC status (a gRPC client reads `grpc-status`, not the HTTP
 * status), and the status names the metrics carry.
 */

/** gRPC status codes (grpc/doc/statuscodes.md) the gateway itself gives. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/**
 * The `grpc_code` label: the names Prometheus users know from
 * go-grpc-prometheus and grpc-java (OK, Unavailable, DeadlineExceeded...).
 */
const CODE_NAMES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
];

export function grpcCodeName(status: string | number | undefined): string {
  if (status === undefined) return 'Unknown';
  const n = typeof status === 'number' ? status : Number(status);
  return Number.isInteger(n) && n >= 0 && n < CODE_NAMES.length ? CODE_NAMES[n]! : 'Unknown';
}

const UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-timeout` (1 to 8 digits and a unit, H M S m u n) in milliseconds; undefined when absent or malformed. */
export function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.length < 2 || value.length > 9) return undefined;
  const unit = UNITS[value[value.length - 1]!];
  const digits = value.slice(0, -1);
  if (unit === undefined || !/^\d+$/.test(digits)) return undefined;
  return Number(digits) * unit;
}

/** grpc-message is percent-encoded (the gRPC HTTP/2 protocol spec). */
export function grpcMessage(text: string): string {
  return encodeURIComponent(text);
}

/**
 * A failure before any answer, as gRPC tells it: HTTP 200 with the status
 * in a trailers-only response (headers that end the stream).
 */
export function grpcFailureHeaders(status: number, message: string, requestId: string): Record<string, string> {
  return {
    'content-type': 'application/grpc',
    'grpc-status': String(status),
    'grpc-message': grpcMessage(message),
    'x-request-id': requestId,
  };
}

/** The gRPC status for an upstream failure the gateway would answer with `httpStatus`. */
export function grpcStatusFor(httpStatus: number, timedOut: boolean): number {
  if (timedOut) return GrpcStatus.DEADLINE_EXCEEDED;
  if (httpStatus === 404) return GrpcStatus.UNIMPLEMENTED;
  if (httpStatus === 413 || httpStatus === 431) return GrpcStatus.RESOURCE_EXHAUSTED;
  if (httpStatus >= 400 && httpStatus < 500) return GrpcStatus.INTERNAL;
  return GrpcStatus.UNAVAILABLE;
}
