/**
 * The access log: one line per request, as JSON or in the combined format.
 *
 * Off the request path: a line is formatted and appended to an in-memory
 * batch; the batch is written by one asynchronous write at a time (libuv's
 * thread pool for a file), so a slow or full disk never blocks a request.
 * What cannot be written (the batch is over its bound, the disk is full) is
 * dropped and counted, never retried forever. The file is reopened on
 * reopen() (SIGUSR1) and, checked every second, when it was renamed or
 * removed, so rotation by rename loses no line: lines before the reopen go
 * to the renamed file, lines after to the new one.
 *
 * Secrets never reach it: only allow-listed headers are written (and the
 * config refuses credential headers), and secret-looking query values are
 * redacted from the path and the referer.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { AccessLogConfig } from '../config/types.js';
import { redactTarget } from '../diff/secrets.js';

/** Lines waiting beyond this many bytes are dropped (and counted). */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;
/** How often the file is checked for rotation (renamed or removed). */
const ROTATION_CHECK_MS = 1000;

export interface AccessEntry {
  readonly requestId: string;
  readonly client: string;
  readonly route: string;
  readonly upstream: string;
  readonly endpoint: string;
  readonly method: string;
  readonly path: string;
  readonly httpVersion: string;
  readonly status: number;
  readonly bytes: number;
  readonly durationMs: number;
  /** From the first try's start to the end of the upstream's answer; undefined when none was sent. */
  readonly upstreamMs: number | undefined;
  readonly retries: number;
  /** Shadow copies' outcomes ("completed", "timeout,completed"), or "" when not mirrored. */
  readonly shadow: string;
  readonly headers: IncomingHttpHeaders;
}

export interface AccessLogEvents {
  /** Lines that could not be written. */
  dropped(lines: number): void;
  /** The file could not be opened or written. */
  failed(error: Error): void;
}

export class AccessLog {
  private pending: string[] = [];
  private pendingBytes = 0;
  private writing = false;
  private scheduled = false;
  private file: FileHandle | undefined;
  private inode = 0;
  private reopenWanted = false;
  private closed = false;
  private readonly rotation: NodeJS.Timeout;

  constructor(
    private config: AccessLogConfig,
    private readonly events: AccessLogEvents,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
  ) {
    this.rotation = setInterval(() => void this.checkRotation(), ROTATION_CHECK_MS);
    this.rotation.unref();
  }

  /** A reload: a new path is opened before the next write. */
  configure(config: AccessLogConfig): void {
    if (config.path !== this.config.path) this.reopenWanted = true;
    this.config = config;
  }

  /** Reopen the file (SIGUSR1, after an external rotation). */
  reopen(): void {
    this.reopenWanted = true;
    this.schedule();
  }

  write(entry: AccessEntry): void {
    if (this.closed) return;
    const line = this.config.format === 'combined' ? combinedLine(entry, this.config) : jsonLine(entry, this.config);
    if (this.pendingBytes + line.length > MAX_PENDING_BYTES) {
      this.events.dropped(1);
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.writing) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.pending.length > 0 || this.reopenWanted) {
        if (this.config.path !== 'stdout' && (!this.file || this.reopenWanted)) await this.openFile();
        else if (this.reopenWanted) await this.closeFile();
        const lines = this.pending;
        if (lines.length === 0) continue;
        this.pending = [];
        this.pendingBytes = 0;
        try {
          await this.sink(lines.join(''));
        } catch (err) {
          // A full disk, a closed pipe: these lines are lost, and said to be.
          this.events.dropped(lines.length);
          this.events.failed(err as Error);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private sink(batch: string): Promise<void> {
    if (this.config.path === 'stdout') {
      return new Promise((resolve, reject) => this.stdout.write(batch, (err) => (err ? reject(err) : resolve())));
    }
    if (!this.file) return Promise.reject(new Error(`access log ${this.config.path} is not open`));
    return this.file.appendFile(batch);
  }

  private async openFile(): Promise<void> {
    this.reopenWanted = false;
    await this.closeFile();
    try {
      this.file = await open(this.config.path, 'a', 0o640);
      this.inode = (await this.file.stat()).ino;
    } catch (err) {
      this.events.failed(err as Error);
    }
  }

  private async closeFile(): Promise<void> {
    this.reopenWanted = false;
    const file = this.file;
    this.file = undefined;
    await file?.close().catch(() => undefined);
  }

  private async checkRotation(): Promise<void> {
    if (this.closed || this.config.path === 'stdout' || !this.file) return;
    const now = await stat(this.config.path).catch(() => undefined);
    if (!now || now.ino !== this.inode) this.reopen();
  }

  /** Writes what is waiting, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.rotation);
    while (this.writing || this.scheduled) await new Promise((resolve) => setImmediate(resolve));
    await this.flush();
    this.closed = true;
    await this.closeFile();
  }
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function jsonLine(e: AccessEntry, config: AccessLogConfig): string {
  const out: Record<string, unknown> = {};
  for (const field of config.fields) {
    switch (field) {
      case 'time':
        out['time'] = new Date().toISOString();
        break;
      case 'path':
        out['path'] = redactTarget(e.path);
        break;
      case 'durationMs':
        out['durationMs'] = round(e.durationMs);
        break;
      case 'upstreamMs':
        out['upstreamMs'] = e.upstreamMs === undefined ? null : round(e.upstreamMs);
        break;
      case 'shadow':
        out['shadow'] = e.shadow || null;
        break;
      case 'endpoint':
      case 'upstream':
      case 'route':
        out[field] = e[field] || null;
        break;
      default:
        out[field] = e[field as keyof AccessEntry];
    }
  }
  if (config.headers.length > 0) {
    const headers: Record<string, string> = {};
    for (const name of config.headers) {
      const value = headerValue(e.headers, name);
      if (value !== undefined) headers[name] = name === 'referer' ? redactTarget(value) : value;
    }
    out['headers'] = headers;
  }
  return JSON.stringify(out) + '\n';
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => (n < 10 ? '0' + n : String(n));

/** `04/Dec/2026:05:23:38 +0000`, in UTC. */
function clfTime(d: Date): string {
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** A quoted value as NGINX writes it: quotes, backslashes and control bytes escaped as \xHH. */
function quoted(value: string | undefined): string {
  if (value === undefined || value === '') return '"-"';
  return '"' + value.replace(/["\\\x00-\x1f\x7f]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()) + '"';
}

/** Combined format, then the gateway's fields as key=value (fields and headers as configured). */
function combinedLine(e: AccessEntry, config: AccessLogConfig): string {
  const request = `${e.method} ${redactTarget(e.path)} HTTP/${e.httpVersion}`;
  let line =
    `${e.client || '-'} - - [${clfTime(new Date())}] ${quoted(request)} ${e.status} ${e.bytes} ` +
    `${quoted(redactOrUndefined(headerValue(e.headers, 'referer')))} ${quoted(headerValue(e.headers, 'user-agent'))}`;
  for (const field of config.fields) {
    switch (field) {
      case 'requestId':
      case 'route':
      case 'upstream':
      case 'endpoint':
      case 'shadow':
        line += ` ${field}=${e[field] || '-'}`;
        break;
      case 'durationMs':
        line += ` durationMs=${round(e.durationMs)}`;
        break;
      case 'upstreamMs':
        line += ` upstreamMs=${e.upstreamMs === undefined ? '-' : round(e.upstreamMs)}`;
        break;
      case 'retries':
        line += ` retries=${e.retries}`;
        break;
      default:
      // time, client, method, path, status, bytes: in the combined part already.
    }
  }
  for (const name of config.headers) line += ` ${name}=${quoted(headerValue(e.headers, name))}`;
  return line + '\n';
}

function redactOrUndefined(value: string | undefined): string | undefined {
  return value === undefined ? undefined : redactTarget(value);
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
