/**
 * Structured logging: one line per event. The core logs through this
 * interface; the CLI chooses the sink (JSON for journald and log shippers,
 * or a readable line for people).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface LogRecord {
  readonly time: Date;
  readonly level: LogLevel;
  /** A short, stable event name: `config.reloaded`, `upstream.error`. */
  readonly event: string;
  readonly message: string;
  readonly fields: LogFields;
}

export type LogSink = (record: LogRecord) => void;

export class Logger {
  private readonly minimum: number;
  constructor(
    private readonly sink: LogSink,
    private readonly level: LogLevel = 'info',
    private readonly base: LogFields = {},
  ) {
    this.minimum = RANK[level];
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.minimum;
  }

  child(fields: LogFields): Logger {
    return new Logger(this.sink, this.level, { ...this.base, ...fields });
  }

  log(level: LogLevel, event: string, message: string, fields: LogFields = {}): void {
    if (RANK[level] < this.minimum) return;
    try {
      this.sink({ time: new Date(), level, event, message, fields: { ...this.base, ...fields } });
    } catch {
      // A broken log pipe must not take the gateway down.
    }
  }
  debug(event: string, message: string, fields?: LogFields): void {
    this.log('debug', event, message, fields);
  }
  info(event: string, message: string, fields?: LogFields): void {
    this.log('info', event, message, fields);
  }
  warn(event: string, message: string, fields?: LogFields): void {
    this.log('warn', event, message, fields);
  }
  error(event: string, message: string, fields?: LogFields): void {
    this.log('error', event, message, fields);
  }
}

/** One JSON object per line: what journald, Loki and friends ingest. */
export function jsonLine(record: LogRecord): string {
  return JSON.stringify({
    time: record.time.toISOString(),
    level: record.level,
    event: record.event,
    msg: record.message,
    ...record.fields,
  });
}
