/**
 * Terminal output: colour (off with NO_COLOR or when not a TTY, see
 * log/sinks.ts), diagnostic rendering, tables, and the logger `serve` and
 * `release run` write through.
 */
import { Chalk, type ChalkInstance } from 'chalk';
import { codeFrame, formatDiagnostic, type Diagnostic } from '../config/diagnostics.js';
import { UsageError } from '../errors.js';
import { Logger, LOG_LEVELS, type LogLevel } from '../log/logger.js';
import { colorEnabled, jsonSink, prettySink } from '../log/sinks.js';

export interface Output {
  readonly color: ChalkInstance;
  out(line: string): void;
  err(line: string): void;
}

export function terminalOutput(): Output {
  const color = new Chalk({ level: colorEnabled(process.stdout) ? 1 : 0 });
  return {
    color,
    out: (line) => process.stdout.write(line + '\n'),
    err: (line) => process.stderr.write(line + '\n'),
  };
}

export function renderDiagnostic(d: Diagnostic, color: ChalkInstance, source?: string): string[] {
  const plain = formatDiagnostic(d);
  const head = `${d.file}:${d.line}:${d.column}: `;
  const label = d.severity === 'error' ? color.red.bold('error:') : color.yellow.bold('warning:');
  const lines = [color.bold(head) + label + ' ' + plain.slice(head.length + d.severity.length + 2)];
  if (source !== undefined) {
    for (const frame of codeFrame(source, d.line, d.column)) lines.push(color.dim(frame));
  }
  return lines;
}

export function summaryLine(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  const parts = [];
  if (errors) parts.push(`${errors} error${errors === 1 ? '' : 's'}`);
  if (warnings) parts.push(`${warnings} warning${warnings === 1 ? '' : 's'}`);
  return parts.join(', ');
}

/**
 * Rows as aligned columns, two spaces apart. Widths come from the plain
 * text; `paint` colours a cell after padding so escapes never skew them.
 */
export function table(rows: readonly (readonly string[])[], paint?: (text: string, row: number, column: number) => string): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row, r) =>
    row
      .map((cell, c) => {
        const padded = c === row.length - 1 ? cell : cell.padEnd(widths[c]!);
        return paint ? paint(padded, r, c) : padded;
      })
      .join('  ')
      .trimEnd(),
  );
}

export function defaultLogFormat(): string {
  return process.stdout.isTTY ? 'pretty' : 'json';
}

export function makeLogger(flags: { logFormat?: string; logLevel?: string }): Logger {
  const format = flags.logFormat ?? defaultLogFormat();
  if (format !== 'json' && format !== 'pretty') throw new UsageError(`--log-format must be json or pretty, not "${format}"`);
  const level = (flags.logLevel ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not "${level}"`);
  return new Logger(format === 'json' ? jsonSink() : prettySink(), level);
}
