/**
 * The command line as a program: its commands, and running one to an exit
 * status. Commands are thin: they turn flags into calls on the core and its
 * results into output; errors become exit statuses here alone (through the
 * catalogue, exit-codes.ts). Importing this file runs nothing: main.ts is
 * the process's entry, and tests run commands through runCommandLine.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { EMBEDDED } from '../embedded.js';
import { isGatewayError } from '../errors.js';
import { registerDiff } from './diff.js';
import { registerDiffShow } from './diff-show.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, exitCodeFor } from './exit-codes.js';
import { registerDemo } from './demo.js';
import { registerInit } from './init.js';
import { registerRecord } from './record.js';
import { registerRelease } from './release.js';
import { registerReload } from './reload.js';
import { registerServe } from './serve.js';
import { registerStatus } from './status.js';
import { registerValidate } from './validate.js';

function version(): string {
  if (EMBEDDED.version) return EMBEDDED.version;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

export function buildProgram(run: (action: () => Promise<number>) => void): Command {
  const program = new Command('gatewayctl');
  program
    .description('An edge gateway for dark launches and canary releases.')
    .version(version(), '-V, --version')
    .showHelpAfterError('(run "gatewayctl --help" for usage)')
    .showSuggestionAfterError(true)
    // A subcommand's options belong to it ("diff summary --admin URL").
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) })
    .addHelpText(
      'after',
      `
Quick start:
  gatewayctl demo                         live demo: canary, shadow, diffs
  gatewayctl validate -c gateway.yaml     check a config
  gatewayctl serve -c gateway.yaml        run the gateway
  gatewayctl diff                         follow shadow diffs live
  gatewayctl diff summary                 which paths differ, how often, what is noise
  gatewayctl status                       routes, weights, shadows and live rates
  gatewayctl reload                       reload a running gateway's config; fails if refused`,
    );
  registerServe(program, run);
  registerValidate(program, run);
  registerDiffShow(registerDiff(program, run), run);
  registerStatus(program, run);
  registerReload(program, run);
  registerRelease(program, run);
  registerRecord(program, run);
  registerInit(program, run);
  registerDemo(program, run);
  const override = (command: Command) => {
    command.exitOverride();
    command.commands.forEach(override);
  };
  program.commands.forEach(override);
  return program;
}

function report(err: unknown): number {
  if (isGatewayError(err)) {
    process.stderr.write(`gatewayctl: ${err.message}\n`);
    return exitCodeFor(err);
  }
  process.stderr.write(`gatewayctl: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT_FAILED;
}

/** Parses `argv` (as process.argv: node, script, args...) and runs the command; resolves to its exit status. */
export async function runCommandLine(argv: readonly string[]): Promise<number> {
  let pending: Promise<number> | undefined;
  const program = buildProgram((action) => {
    pending = action().catch(report);
  });
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      return ok || err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    return report(err);
  }
  return pending ? await pending : EXIT_OK;
}
