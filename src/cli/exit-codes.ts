/**
 * The only place error codes become exit statuses:
 * 0 success, 1 invalid config or a failed command, 2 usage error
 * (unknown command or flag, missing or unreadable config file).
 */
import { ErrorCodes, isGatewayError } from '../errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export function exitCodeFor(err: unknown): number {
  if (!isGatewayError(err)) return EXIT_FAILED;
  switch (err.code) {
    case ErrorCodes.USAGE:
    case ErrorCodes.CONFIG_UNREADABLE:
      return EXIT_USAGE;
    default:
      return EXIT_FAILED;
  }
}
