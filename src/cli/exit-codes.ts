/**
 * The only place error codes become exit statuses, read from the error
 * catalogue (errors.ts): 0 success, 1 invalid config or a failed command,
 * 2 usage error (unknown command or flag, missing or unreadable config file).
 */
import { exitStatusOf, isGatewayError } from '../errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export function exitCodeFor(err: unknown): number {
  return isGatewayError(err) ? exitStatusOf(err.code) : EXIT_FAILED;
}
