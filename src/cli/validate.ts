/**
 * `gatewayctl validate`: the serve path's load, validation and compile,
 * without listening. Compiler-style output, one line per problem.
 */
import type { Command } from 'commander';
import { compileSnapshot } from '../config/compile.js';
import { diagnosticJson } from '../config/diagnostics.js';
import { resolveConfigPath } from '../config/load.js';
import { validateConfigFile } from '../config/validate.js';
import { EXIT_FAILED, EXIT_OK } from './exit-codes.js';
import { renderDiagnostic, summaryLine, terminalOutput } from './output.js';

interface ValidateFlags {
  config?: string;
  json?: boolean;
  frame?: boolean;
}

export function registerValidate(program: Command, run: (action: () => Promise<number>) => void): void {
  program
    .command('validate')
    .description('check a config file like a compiler: every problem, with line and column')
    .option('-c, --config <file>', 'config file (default: $GATEWAYCTL_CONFIG, else ./gateway.yaml)')
    .option('--json', 'print an array of {severity, message, path, line, column}')
    .option('--frame', 'show a code frame under each problem (default on a terminal)')
    .option('--no-frame', 'never show code frames')
    .addHelpText(
      'after',
      `
Exit status: 0 valid (warnings allowed), 1 errors found, 2 file missing or unreadable.

Examples:
  gatewayctl validate -c /etc/gatewayctl/gateway.yaml
  gatewayctl validate --json | jq '.[] | select(.severity == "error")'`,
    )
    .action((flags: ValidateFlags) => run(async () => validateCommand(flags)));
}

export function validateCommand(flags: ValidateFlags): number {
  const file = resolveConfigPath(flags.config);
  const result = validateConfigFile(file);
  const io = terminalOutput();
  if (flags.json) {
    io.out(JSON.stringify(result.diagnostics.map((d) => ({ ...diagnosticJson(d), file: d.file })), null, 2));
  } else {
    const frames = flags.frame ?? Boolean(process.stdout.isTTY);
    for (const d of result.diagnostics) {
      // Simulation files' problems are located in their own files: no config frame under them.
      const text = frames && d.file === result.source.file ? result.source.text : undefined;
      for (const line of renderDiagnostic(d, io.color, text)) io.out(line);
    }
  }
  if (!result.config) {
    if (!flags.json) io.err(`${file}: invalid: ${summaryLine(result.diagnostics)}`);
    return EXIT_FAILED;
  }
  // Compile too, exactly as serve would.
  const snapshot = compileSnapshot(result.config, { generation: 0, source: file, loadedAt: new Date() });
  if (!flags.json) {
    const routes = snapshot.routes.length;
    const upstreams = snapshot.upstreams.size;
    const warnings = result.diagnostics.length ? ` (${summaryLine(result.diagnostics)})` : '';
    io.err(`${file}: valid: ${routes} route${routes === 1 ? '' : 's'}, ${upstreams} upstream${upstreams === 1 ? '' : 's'}${warnings}`);
  }
  return EXIT_OK;
}
