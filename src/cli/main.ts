/**
 * The entry of `gatewayctl` (bin/gatewayctl, the single-file binary): runs
 * the command line on this process's arguments and exits with its status.
 */
import { runCommandLine } from './program.js';

let exiting = false;
function finish(code: number): void {
  if (exiting) return;
  exiting = true;
  process.exitCode = code;
  // Let stdout drain, then leave even if a handle lingers.
  setTimeout(() => process.exit(code), 50).unref();
  process.stdout.write('', () => process.exit(code));
}

// Not a top-level await: the single-file binary runs this as CommonJS.
void runCommandLine(process.argv).then(finish);
