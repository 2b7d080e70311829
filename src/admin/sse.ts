/**
 * Server-Sent Events framing (the WHATWG EventSource format): writing
 * frames on the admin API, and parsing them in the admin client.
 */

export interface SseMessage {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: string;
}

/** One frame; `data` may span lines. */
export function sseFrame(event: string, data: string, id?: string): string {
  let frame = '';
  if (id !== undefined) frame += `id: ${id}\n`;
  frame += `event: ${event}\n`;
  for (const line of data.split('\n')) frame += `data: ${line}\n`;
  return frame + '\n';
}

/** A comment frame: ignored by clients, keeps proxies and idle timers at bay. */
export function sseComment(text: string): string {
  return `: ${text.replace(/\n/g, ' ')}\n\n`;
}

/**
 * Incremental parser: feed text chunks as they arrive, get whole messages.
 * Bounded: a message larger than `maxMessageChars` is discarded.
 */
export class SseParser {
  private buffer = '';
  private event = '';
  private id: string | undefined;
  private data: string[] = [];
  private dataChars = 0;
  private oversize = false;
  /** The last id seen (the stream's Last-Event-ID). */
  lastId: string | undefined;
  /** The server's advised reconnection delay. */
  retryMs: number | undefined;

  constructor(private readonly maxMessageChars = 4 * 1024 * 1024) {}

  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    let start = 0;
    for (;;) {
      const nl = this.buffer.indexOf('\n', start);
      if (nl < 0) break;
      let line = this.buffer.slice(start, nl);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      start = nl + 1;
      const message = this.line(line);
      if (message) out.push(message);
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length > this.maxMessageChars) {
      this.buffer = '';
      this.oversize = true;
    }
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.dataChars += value.length + 1;
        if (this.dataChars > this.maxMessageChars) this.oversize = true;
        else this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\u0000')) this.id = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
    return undefined;
  }

  private dispatch(): SseMessage | undefined {
    const message: SseMessage | undefined =
      this.data.length > 0 && !this.oversize ? { event: this.event || 'message', id: this.id, data: this.data.join('\n') } : undefined;
    if (this.id !== undefined) this.lastId = this.id;
    this.event = '';
    this.data = [];
    this.dataChars = 0;
    this.oversize = false;
    return message;
  }
}
