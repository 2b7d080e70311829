/**
 * Raw-socket testing, in the style of HAProxy's regression tests: a client
 * that writes exact bytes and keeps every byte it gets back, and a capture
 * upstream (a plain TCP server) that records exact bytes received and
 * answers canned bytes. Nothing here uses Node's HTTP parser, so what the
 * gateway sends either way is seen as it is on the wire.
 */
import assert from 'node:assert/strict';
import net, { type AddressInfo, type Socket } from 'node:net';

export type Chunk = string | Buffer | { readonly delayMs: number };

const bytes = (data: string | Buffer): Buffer => (typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Response parsing (what the client got)

/** A message's header lines and decoded body. */
export interface RawMessage {
  /** Header lines as sent, in order, names as sent. */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Buffer;
  header(name: string): string | undefined;
  headerAll(name: string): string[];
}

export interface RawResponse extends RawMessage {
  readonly status: number;
  readonly statusLine: string;
}

/** Case-insensitive lookups over a list of header lines. */
function headerLookup(headers: readonly (readonly [string, string])[]): {
  header(name: string): string | undefined;
  headerAll(name: string): string[];
} {
  const all = (name: string) => headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  return { header: (name) => all(name)[0], headerAll: all };
}

function makeResponse(statusLine: string, headers: [string, string][], body: Buffer): RawResponse {
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  return { status, statusLine, headers, body, ...headerLookup(headers) };
}

interface Head {
  readonly start: string;
  readonly headers: [string, string][];
  readonly end: number;
}

function parseHead(buf: Buffer, from: number): Head | undefined | 'bad' {
  const end = buf.indexOf('\r\n\r\n', from, 'latin1');
  if (end < 0) return undefined;
  const lines = buf.toString('latin1', from, end).split('\r\n');
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return 'bad';
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return { start: lines[0]!, headers, end: end + 4 };
}

/** A chunked body from `from`: the decoded body and where it ends, or undefined if incomplete. */
function parseChunked(buf: Buffer, from: number): { body: Buffer; end: number } | undefined | 'bad' {
  const parts: Buffer[] = [];
  let at = from;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', at, 'latin1');
    if (lineEnd < 0) return undefined;
    const sizeText = buf.toString('latin1', at, lineEnd).split(';')[0]!;
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) return 'bad';
    const size = parseInt(sizeText, 16);
    at = lineEnd + 2;
    if (size === 0) {
      // trailer section: lines until an empty one
      for (;;) {
        const e = buf.indexOf('\r\n', at, 'latin1');
        if (e < 0) return undefined;
        const empty = e === at;
        at = e + 2;
        if (empty) return { body: Buffer.concat(parts), end: at };
      }
    }
    if (buf.length < at + size + 2) return undefined;
    parts.push(buf.subarray(at, at + size));
    if (buf.toString('latin1', at + size, at + size + 2) !== '\r\n') return 'bad';
    at += size + 2;
  }
}

/**
 * Parses every complete response in `buf`. A response without length is
 * complete only when the connection is closed. `headRequests` lists which
 * responses (by index) answer HEAD and so have no body.
 */
export function parseResponses(buf: Buffer, closed: boolean, headRequests: ReadonlySet<number> = new Set()): { responses: RawResponse[]; malformed: boolean } {
  const responses: RawResponse[] = [];
  let at = 0;
  while (at < buf.length) {
    const head = parseHead(buf, at);
    if (head === undefined) break;
    if (head === 'bad' || !/^HTTP\/1\.[01] \d{3}( |$)/.test(head.start)) return { responses, malformed: true };
    const response = (body: Buffer) => makeResponse(head.start, head.headers, body);
    const status = Number(head.start.slice(9, 12));
    const find = (name: string) => head.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
    if ((status >= 100 && status < 200) || status === 204 || status === 304 || headRequests.has(responses.length)) {
      responses.push(response(Buffer.alloc(0)));
      at = head.end;
      if (status === 101) {
        // Everything after a 101 belongs to the new protocol.
        break;
      }
      continue;
    }
    const te = find('transfer-encoding');
    const cl = find('content-length');
    if (te.length > 0) {
      if (te.join(',').toLowerCase() !== 'chunked' || cl.length > 0) return { responses, malformed: true };
      const chunked = parseChunked(buf, head.end);
      if (chunked === 'bad') return { responses, malformed: true };
      if (!chunked) break;
      responses.push(response(chunked.body));
      at = chunked.end;
    } else if (cl.length > 0) {
      if (cl.length > 1 || !/^\d+$/.test(cl[0]!)) return { responses, malformed: true };
      const length = Number(cl[0]);
      if (buf.length < head.end + length) break;
      responses.push(response(buf.subarray(head.end, head.end + length)));
      at = head.end + length;
    } else {
      if (!closed) break;
      responses.push(response(buf.subarray(head.end)));
      at = buf.length;
    }
  }
  return { responses, malformed: false };
}

// ---------------------------------------------------------------------------
// The client

export interface RawResult {
  /** Every byte received. */
  readonly bytes: Buffer;
  readonly text: string;
  readonly responses: RawResponse[];
  /** The bytes were not a sequence of HTTP/1.1 responses. */
  readonly malformed: boolean;
  /** The gateway closed the connection (FIN or reset) within the wait. */
  readonly closed: boolean;
  readonly reset: boolean;
  /** First response, or a status-0 stand-in when none came. */
  readonly first: RawResponse;
}

export interface RawOptions {
  /** Stop once this many complete responses arrived (default 1); 0 waits for close. */
  readonly responses?: number;
  /** Longest wait overall (default 3000 ms). */
  readonly timeoutMs?: number;
  /** After the wanted responses, keep listening this long for more bytes or a close (default 30 ms). */
  readonly settleMs?: number;
  /** Indexes of responses that answer HEAD. */
  readonly headRequests?: ReadonlySet<number>;
  /** Leave the connection open and return it (the caller closes it). */
  readonly keep?: boolean;
}

const NONE = makeResponse('', [], Buffer.alloc(0));

/** An open raw connection to `port`, collecting what comes back. */
export class RawClient {
  readonly socket: Socket;
  private received: Buffer[] = [];
  private size = 0;
  closed = false;
  reset = false;
  private readonly waiters = new Set<() => void>();
  readonly connected: Promise<void>;

  /** `localAddress` makes the connection come from another loopback address (127.0.0.2, ...). */
  constructor(port: number, host = '127.0.0.1', localAddress?: string) {
    this.socket = net.connect({ port, host, ...(localAddress ? { localAddress } : {}) });
    this.socket.setNoDelay(true);
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('data', (d: Buffer) => {
      this.received.push(d);
      this.size += d.length;
      this.wake();
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') this.reset = true;
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  get bytes(): Buffer {
    if (this.received.length > 1) this.received = [Buffer.concat(this.received, this.size)];
    return this.received[0] ?? Buffer.alloc(0);
  }

  /** Bytes received since `from` as latin1 text. */
  text(from = 0): string {
    return this.bytes.toString('latin1', from);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /**
   * Resolves when `predicate` holds, or false at the timeout (or when the
   * connection closed without it). Checked on every arrival and every 5 ms,
   * so it may also watch things outside this connection.
   */
  until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
    if (predicate()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (predicate()) done(true);
        else if (this.closed) done(predicate());
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const poll = setInterval(check, 5);
      const done = (value: boolean) => {
        clearTimeout(timer);
        clearInterval(poll);
        this.waiters.delete(check);
        resolve(value);
      };
      this.waiters.add(check);
    });
  }

  async write(...chunks: Chunk[]): Promise<void> {
    for (const chunk of chunks) {
      if (typeof chunk === 'object' && !Buffer.isBuffer(chunk)) await sleep(chunk.delayMs);
      else if (!this.socket.destroyed) {
        await new Promise<void>((resolve) => this.socket.write(bytes(chunk as string | Buffer), () => resolve()));
      }
    }
  }

  /** Waits for `count` complete responses (or close, or the timeout) and parses them. */
  async read(options: RawOptions = {}): Promise<RawResult> {
    const want = options.responses ?? 1;
    const parsed = () => parseResponses(this.bytes, this.closed, options.headRequests);
    await this.until(() => {
      const p = parsed();
      return this.closed || p.malformed || (want > 0 && p.responses.length >= want);
    }, options.timeoutMs ?? 3000);
    if (!this.closed) await this.until(() => this.closed, options.settleMs ?? 30);
    const { responses, malformed } = parsed();
    return {
      bytes: this.bytes,
      text: this.text(),
      responses,
      malformed,
      closed: this.closed,
      reset: this.reset,
      first: responses[0] ?? NONE,
    };
  }

  /** Ends with a TCP reset. */
  resetNow(): void {
    const s = this.socket as Socket & { resetAndDestroy?: () => void };
    if (s.resetAndDestroy) s.resetAndDestroy();
    else s.destroy();
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Runs `fn` with a connected client, closing it afterwards whatever happens. */
export async function withClient<T>(port: number, fn: (client: RawClient) => Promise<T>): Promise<T> {
  const client = new RawClient(port);
  try {
    await client.connected;
    return await fn(client);
  } finally {
    client.close();
  }
}

/** One exchange on a new connection: write the chunks, read the answer, close. */
export async function exchange(port: number, data: Chunk | Chunk[], options: RawOptions = {}): Promise<RawResult> {
  const client = new RawClient(port);
  try {
    await client.connected;
    await client.write(...(Array.isArray(data) ? data : [data]));
    return await client.read(options);
  } finally {
    if (!options.keep) client.close();
  }
}

// ---------------------------------------------------------------------------
// The capture upstream

export interface CapturedRequest extends RawMessage {
  /** Which connection (1-based, in accept order) carried it. */
  readonly conn: number;
  /** Exact bytes of the request: head and body as framed on the wire. */
  readonly raw: Buffer;
  readonly head: string;
  readonly method: string;
  readonly target: string;
  readonly version: string;
}

export interface CaptureConnection {
  readonly id: number;
  readonly socket: Socket;
  /** Every byte received on this connection. */
  readonly bytes: Buffer[];
  /** Targets of the request heads it carried. */
  readonly targets: string[];
  closed: boolean;
  /** Set once a 101 was sent: later bytes are echoed and recorded here. */
  tunnel: Buffer[] | undefined;
}

/**
 * What the capture upstream does with a request: bytes to send, then keep
 * the connection (default), close it, reset it, hang (send nothing, hold),
 * or switch to an echo tunnel (after a 101).
 */
export type Reply =
  | string
  | Buffer
  | 'hang'
  | 'reset'
  | {
      readonly bytes?: string | Buffer;
      readonly then?: 'keep' | 'close' | 'reset' | 'hang' | 'tunnel';
      readonly delayMs?: number;
    };

export interface CaptureOptions {
  /** Answer when the head has arrived, without waiting for the body. */
  readonly replyAfterHead?: boolean;
}

export interface CaptureUpstream {
  readonly port: number;
  readonly url: string;
  readonly requests: CapturedRequest[];
  readonly connections: CaptureConnection[];
  /** Heads seen, including requests whose body never completed. */
  heads: number;
  /** Request targets whose head arrived. */
  readonly headTargets: Set<string>;
  /** Bytes that did not parse as an HTTP/1.1 request (a framing bug upstream-side). */
  readonly unparsable: { conn: number; bytes: string }[];
  readonly open: number;
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  waitForHeads(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves once no connection is open (or rejects at the timeout). */
  waitForIdle(timeoutMs?: number): Promise<void>;
  /** Resolves once every connection that carried a matching request is closed. */
  waitForClosed(carried: (target: string) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const ok = (body = 'ok', extra = ''): string =>
  `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

function capturedRequest(conn: number, raw: Buffer, head: Head, body: Buffer): CapturedRequest {
  const [method = '', target = '', version = ''] = head.start.split(' ');
  return { conn, raw, head: raw.toString('latin1', 0, head.end), method, target, version, headers: head.headers, body, ...headerLookup(head.headers) };
}

/**
 * A TCP server speaking just enough HTTP/1.1 to frame requests (strictly:
 * both Content-Length and Transfer-Encoding, several Content-Lengths, or a
 * coding other than chunked count as unparsable) and answer them in order.
 */
export async function startCapture(
  respond: (req: CapturedRequest, conn: CaptureConnection) => Reply | Promise<Reply>,
  options: CaptureOptions = {},
): Promise<CaptureUpstream> {
  const requests: CapturedRequest[] = [];
  const connections: CaptureConnection[] = [];
  const unparsable: { conn: number; bytes: string }[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const state = { heads: 0 };
  const headTargets = new Set<string>();
  const server = net.createServer((socket) => {
    const conn: CaptureConnection = { id: connections.length + 1, socket, bytes: [], targets: [], closed: false, tunnel: undefined };
    connections.push(conn);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      conn.closed = true;
      wake();
    });
    let buffer = Buffer.alloc(0);
    let busy = false;
    // For the request at the front of the buffer:
    let headCounted = false;
    let replied = false;
    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        while (buffer.length > 0 && !socket.destroyed) {
          if (conn.tunnel) {
            conn.tunnel.push(buffer);
            socket.write(buffer);
            buffer = Buffer.alloc(0);
            break;
          }
          const head = parseHead(buffer, 0);
          if (head === undefined) break;
          if (head === 'bad') {
            unparsable.push({ conn: conn.id, bytes: buffer.toString('latin1') });
            socket.destroy();
            break;
          }
          if (!headCounted) {
            headCounted = true;
            state.heads++;
            headTargets.add(head.start.split(' ')[1] ?? '');
            conn.targets.push(head.start.split(' ')[1] ?? '');
            wake();
          }
          const te = head.headers.filter(([n]) => n.toLowerCase() === 'transfer-encoding').map(([, v]) => v);
          const cl = head.headers.filter(([n]) => n.toLowerCase() === 'content-length').map(([, v]) => v);
          let body: Buffer;
          let end: number;
          if ((te.length > 0 && cl.length > 0) || te.length > 1 || cl.length > 1 || (te.length === 1 && te[0] !== 'chunked') || (cl.length === 1 && !/^\d+$/.test(cl[0]!))) {
            unparsable.push({ conn: conn.id, bytes: buffer.toString('latin1') });
            socket.destroy();
            break;
          }
          let complete = true;
          if (te.length === 1) {
            const chunked = parseChunked(buffer, head.end);
            if (chunked === 'bad') {
              unparsable.push({ conn: conn.id, bytes: buffer.toString('latin1') });
              socket.destroy();
              break;
            }
            if (!chunked) complete = false;
            body = chunked ? chunked.body : Buffer.alloc(0);
            end = chunked ? chunked.end : buffer.length;
          } else {
            const length = cl.length === 1 ? Number(cl[0]) : 0;
            complete = buffer.length >= head.end + length;
            body = buffer.subarray(head.end, Math.min(buffer.length, head.end + length));
            end = head.end + length;
          }
          if (!complete && (!options.replyAfterHead || replied)) break;
          const request = capturedRequest(conn.id, buffer.subarray(0, complete ? end : buffer.length), head, body);
          const answer = !replied;
          if (complete) {
            buffer = buffer.subarray(end);
            headCounted = false;
            replied = false;
            requests.push(request);
            wake();
          } else replied = true;
          if (answer) await send(await respond(request, conn));
          if (!complete) break;
        }
      } finally {
        busy = false;
      }
    };
    const send = async (reply: Reply) => {
      const r: Exclude<Reply, string | Buffer> =
        reply === 'hang' || reply === 'reset'
          ? { then: reply }
          : typeof reply === 'string' || Buffer.isBuffer(reply)
            ? { bytes: reply }
            : reply;
      if (r.delayMs) await sleep(r.delayMs);
      if (socket.destroyed) return;
      if (r.bytes !== undefined) socket.write(bytes(r.bytes));
      switch (r.then) {
        case 'close':
          socket.end();
          break;
        case 'reset':
          (socket as Socket & { resetAndDestroy?: () => void }).resetAndDestroy?.() ?? socket.destroy();
          break;
        case 'hang':
          socket.pause();
          break;
        case 'tunnel':
          conn.tunnel = [];
          break;
        default:
      }
    };
    socket.on('data', (d: Buffer) => {
      conn.bytes.push(d);
      buffer = Buffer.concat([buffer, d]);
      void pump();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const waitFor = (predicate: () => boolean, what: () => string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      if (predicate()) return resolve();
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`capture upstream: ${what()}`));
      }, timeoutMs);
      const check = () => {
        if (predicate()) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        }
      };
      waiters.add(check);
    });
  const openCount = () => connections.filter((c) => !c.closed).length;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    connections,
    get heads() {
      return state.heads;
    },
    set heads(v: number) {
      state.heads = v;
    },
    unparsable,
    headTargets,
    get open() {
      return openCount();
    },
    waitForRequests: (count, timeoutMs = 3000) =>
      waitFor(() => requests.length >= count, () => `waited for ${count} requests, got ${requests.length}`, timeoutMs),
    waitForHeads: (count, timeoutMs = 3000) => waitFor(() => state.heads >= count, () => `waited for ${count} request heads, got ${state.heads}`, timeoutMs),
    waitForIdle: (timeoutMs = 3000) => waitFor(() => openCount() === 0, () => `${openCount()} connections still open`, timeoutMs),
    waitForClosed: (carried, timeoutMs = 3000) => {
      const open = () => connections.filter((c) => !c.closed && c.targets.some(carried)).length;
      return waitFor(() => open() === 0, () => `${open()} connections still open`, timeoutMs);
    },
    close() {
      for (const c of connections) c.socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A table case: bytes a client sends, the status it must get back (0: none,
 * the connection is closed), how many requests the upstream must receive.
 */
export interface RawCase {
  readonly name: string;
  readonly send: Chunk | Chunk[];
  readonly status: number;
  readonly upstream: number;
  /** The gateway must close the connection after answering. */
  readonly closes?: boolean;
  /** Complete responses to wait for (default 1). */
  readonly responses?: number;
}

/**
 * Runs one table case on a new connection and checks what every case must
 * hold: a well-formed answer with the expected status (the final one, after
 * any 1xx), the expected number of requests upstream, every one of them
 * well-framed, and the connection closed when the case says so.
 */
export async function runRawCase(port: number, upstream: CaptureUpstream, c: RawCase): Promise<{ got: RawResult; received: CapturedRequest[] }> {
  const before = upstream.requests.length;
  const got = await exchange(port, c.send, { responses: c.responses ?? 1, settleMs: c.closes ? 300 : 30 });
  if (c.upstream === 0) await sleep(30);
  const received = upstream.requests.slice(before);
  assert.equal(got.malformed, false, `the gateway's answer is well-formed HTTP: ${JSON.stringify(got.text)}`);
  if (c.status === 0) assert.equal(got.responses.length, 0, got.text);
  else assert.equal(got.responses.find((r) => r.status >= 200)?.status, c.status, got.text);
  assert.equal(received.length, c.upstream, `upstream received: ${received.map((r) => JSON.stringify(r.head)).join(', ')}`);
  if (c.closes) assert.ok(got.closed, 'the gateway closes the connection');
  assert.deepEqual(upstream.unparsable, [], 'everything the upstream got is well-framed');
  return { got, received };
}

/** A small seeded generator (mulberry32): `next(n)` is an integer in [0, n), `float()` a number in [0, 1). */
export function prng(seed: number): { next(n: number): number; float(): number; pick<T>(items: readonly T[]): T } {
  let a = seed >>> 0;
  const float = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const next = (n: number) => Math.floor(float() * n);
  return { next, float, pick: (items) => items[next(items.length)]! };
}

/** TCP sockets this process holds open (client and server side). */
export function openTcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

export { sleep };
