/**
 * `gatewayctl init`: writes a commented starter config; never overwrites.
 */
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { STARTER_CONFIG } from '../config/starter.js';
import { ErrorCodes, GatewayError } from '../errors.js';
import { resolveConfigPath } from '../config/load.js';
import { EXIT_OK } from './exit-codes.js';
import { terminalOutput } from './output.js';

export function registerInit(program: Command, run: (action: () => Promise<number>) => void): void {
  program
    .command('init')
    .description('write a commented starter gateway.yaml (never overwrites)')
    .option('-c, --config <file>', 'where to write it (default: $GATEWAYCTL_CONFIG, else ./gateway.yaml)')
    .action((flags: { config?: string }) => run(async () => initCommand(flags)));
}

const WRITE_FAILURES: Record<string, string> = {
  EACCES: 'permission denied (EACCES)',
  EPERM: 'operation not permitted (EPERM)',
  ENOENT: 'its directory does not exist (ENOENT)',
  ENOTDIR: 'a part of its path is not a directory (ENOTDIR)',
  EISDIR: 'it is a directory (EISDIR)',
  ENOSPC: 'no space left on the device (ENOSPC)',
  EROFS: 'read-only file system (EROFS)',
};

export function initCommand(flags: { config?: string }): number {
  const file = resolveConfigPath(flags.config);
  try {
    writeFileSync(file, STARTER_CONFIG, { flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new GatewayError(ErrorCodes.FILE_EXISTS, `${file} already exists; not overwriting it`);
    // The real cause (EACCES, ENOENT for a missing directory, ENOSPC...), not "exists".
    throw new GatewayError(ErrorCodes.FILE_WRITE_FAILED, `cannot write ${file}: ${WRITE_FAILURES[code ?? ''] ?? (err as Error).message}`, { cause: err });
  }
  const io = terminalOutput();
  io.out(`wrote ${file}`);
  io.out(`next: edit the upstream URLs, then  gatewayctl validate -c ${file}  and  gatewayctl serve -c ${file}`);
  return EXIT_OK;
}
