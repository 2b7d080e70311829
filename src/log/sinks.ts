/**
 * The log sinks a process writes through: JSON lines for journald and log
 * shippers, or one readable line per event. Workers use them as well as the
 * CLI, so they live here rather than in cli/.
 */
import { Chalk } from 'chalk';
import { jsonLine, type LogRecord, type LogSink } from './logger.js';

/** Colour unless NO_COLOR is set or the stream is not a TTY; FORCE_COLOR wins. */
export function colorEnabled(stream: NodeJS.WriteStream): boolean {
  if (process.env['NO_COLOR'] !== undefined && process.env['NO_COLOR'] !== '') return false;
  if (process.env['FORCE_COLOR'] !== undefined && process.env['FORCE_COLOR'] !== '0') return true;
  return Boolean(stream.isTTY);
}

/** JSON lines on stdout: for journald and log shippers. */
export function jsonSink(stream: NodeJS.WritableStream = process.stdout): LogSink {
  return (record) => {
    stream.write(jsonLine(record) + '\n');
  };
}

/** One readable line per event, coloured on a terminal. */
export function prettySink(stream: NodeJS.WriteStream = process.stdout): LogSink {
  const color = new Chalk({ level: colorEnabled(stream) ? 1 : 0 });
  const levelColor = { debug: color.gray, info: color.cyan, warn: color.yellow, error: color.red };
  return (record: LogRecord) => {
    const time = record.time.toISOString().slice(11, 23);
    const fields = Object.entries(record.fields)
      .filter(([, v]) => v !== undefined && (typeof v !== 'object' || v === null))
      .map(([k, v]) => color.dim(`${k}=`) + String(v))
      .join(' ');
    stream.write(
      `${color.dim(time)} ${levelColor[record.level](record.level.toUpperCase().padEnd(5))} ${record.message}${fields ? '  ' + fields : ''}\n`,
    );
  };
}
