/**
 * HTTP/2 to upstreams (`protocol: h2 | h2c`): one pooled session per
 * endpoint, many concurrent streams on it, trailers carried both ways.
 *
 * node:http2 rather than undici: it speaks cleartext h2c by prior
 * knowledge (gRPC servers' usual mode), exposes response trailers as an
 * event before the body's end (so they can be set on the client's answer
 * in time), and a stream can be cancelled on its own (RST_STREAM CANCEL)
 * without touching the session's other streams. Flow control is the
 * session's: a stream piped into a slow reader stops reading, and the
 * window it advertises closes.
 *
 * A session lives until the upstream sends GOAWAY, the connection fails,
 * or it has been idle (no stream, no frame) for IDLE_MS; the next stream
 * opens a new one.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders as H2Headers, type OutgoingHttpHeaders } from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { agentTlsOptions } from '../tls/upstream.js';
import type { CompiledUpstream } from '../config/compile.js';
import type { TryConnection, TryRequest } from './deadlines.js';
import type { Endpoint } from './endpoint.js';

const IDLE_MS = 60_000;

/**
 * RFC 9113's default priority, stated: Node fills in what a request's
 * options leave out by adding properties to a fresh copy of them, which
 * showed as 3% of the gateway's busy time under h2load.
 */
const DEFAULT_PRIORITY = { weight: 16, parent: 0, exclusive: false, silent: false } as const;

/** Whether requests to `upstream` go over HTTP/2 (`protocol: h2 | h2c`). */
export function speaksH2(upstream: CompiledUpstream): boolean {
  const protocol = upstream.config.protocol;
  return protocol === 'h2' || protocol === 'h2c';
}

/** Connection-level headers HTTP/2 forbids (RFC 9113 section 8.2.2); `te` passes only as "trailers". */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

interface PooledSession {
  readonly session: ClientHttp2Session;
  /** The connection (and, for h2, the handshake) is up. */
  connected: boolean;
  /** Why the session failed, when it did: its streams only hear that they were cancelled. */
  error: Error | undefined;
}

export class H2Sessions {
  private readonly sessions = new Map<Endpoint, PooledSession>();

  /** The endpoint's session, opening one when there is none usable. */
  session(endpoint: Endpoint): PooledSession {
    const pooled = this.sessions.get(endpoint);
    if (pooled && !pooled.session.closed && !pooled.session.destroyed) return pooled;
    // noDelay: many small frames (HEADERS, WINDOW_UPDATE) from many streams; Nagle's algorithm would hold them back.
    const options: http2.SecureClientSessionOptions & { noDelay: boolean } = endpoint.tls
      ? { ...agentTlsOptions(endpoint.tls), ALPNProtocols: ['h2'], noDelay: true }
      : { noDelay: true };
    const session = http2.connect(endpoint.origin, options);
    const entry: PooledSession = { session, connected: false, error: undefined };
    const forget = () => {
      if (this.sessions.get(endpoint) === entry) this.sessions.delete(endpoint);
    };
    session.on('error', (err) => {
      entry.error = err;
      forget();
    });
    session.once('connect', () => {
      entry.connected = true;
    });
    session.once('close', forget);
    session.once('goaway', forget);
    session.setTimeout(IDLE_MS, () => {
      forget();
      session.close();
    });
    // An idle pooled session must not keep the process alive.
    session.once('connect', () => session.unref());
    this.sessions.set(endpoint, entry);
    return entry;
  }

  closeAll(): void {
    for (const { session } of this.sessions.values()) session.destroy();
    this.sessions.clear();
  }
}

export interface H2Request {
  readonly method: string;
  /** What the upstream receives as :path (its base path joined already). */
  readonly path: string;
  /** :authority: the client's Host, as HTTP/1.1 forwarding keeps it. */
  readonly authority: string;
  /** Cleaned request headers (hop-by-hop gone); pseudo-headers are ignored. */
  readonly headers: IncomingHttpHeaders;
  /** Whether the client asked for trailers (gRPC always does). */
  readonly trailers: boolean;
  /** The body, or undefined when the request has none; 'written': the caller writes it to the stream and ends it. */
  readonly body: Readable | 'written' | undefined;
  /**
   * The client's trailers once its body has ended, when it announced some
   * (a `trailer` request header): they follow the body upstream.
   */
  readonly bodyTrailers?: (() => IncomingHttpHeaders | undefined) | undefined;
}

/** Request headers as an HTTP/2 upstream must receive them. */
export function h2RequestHeaders(request: H2Request, secure: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {
    ':method': request.method,
    ':path': request.path,
    ':scheme': secure ? 'https' : 'http',
    ':authority': request.authority,
  };
  for (const name in request.headers) {
    if (name.charCodeAt(0) === 58 /* : */ || CONNECTION_SPECIFIC.has(name) || name === 'te') continue;
    out[name] = request.headers[name];
  }
  if (request.trailers) out['te'] = 'trailers';
  return out;
}

/** Response headers from an HTTP/2 upstream as a flat [name, value, ...] list, pseudo-headers left out. */
export function h2ResponseRaw(headers: H2Headers): string[] {
  const raw: string[] = [];
  for (const name in headers) {
    if (name.charCodeAt(0) === 58) continue;
    const value = headers[name];
    if (Array.isArray(value)) for (const v of value) raw.push(name, v);
    else if (value !== undefined) raw.push(name, String(value));
  }
  return raw;
}

/** HTTP/2 headers or trailers without pseudo-headers, as a plain object (what a captured answer holds). */
export function h2HeaderObject(headers: H2Headers): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const name in headers) if (name.charCodeAt(0) !== 58) out[name] = headers[name];
  return out;
}

/**
 * Opens one stream for `request`. The body is piped with backpressure;
 * the caller listens for 'response', 'trailers', 'error' and 'close' on
 * the returned stream, and pipes it to the client. `connected` says whether
 * the session was up before this stream failed (a connect failure is safe
 * to try elsewhere; a reset is not).
 */
export function openH2Stream(
  sessions: H2Sessions,
  endpoint: Endpoint,
  request: H2Request,
): { stream: ClientHttp2Stream; connected: () => boolean; cause: (err: Error) => Error; pooled: PooledSession } {
  const pooled = sessions.session(endpoint);
  const endStream = request.body === undefined;
  const trailersOf = request.bodyTrailers;
  const stream = pooled.session.request(h2RequestHeaders(request, endpoint.tls !== undefined), {
    endStream,
    waitForTrailers: trailersOf !== undefined && !endStream,
    ...DEFAULT_PRIORITY,
  });
  if (request.body && request.body !== 'written') {
    const body = request.body;
    body.pipe(stream);
    stream.once('close', () => body.unpipe(stream));
    if (trailersOf) {
      stream.once('wantTrailers', () => {
        const trailers: OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(trailersOf() ?? {})) {
          if (name.charCodeAt(0) !== 58 && !CONNECTION_SPECIFIC.has(name) && name !== 'te') trailers[name] = value;
        }
        stream.sendTrailers(trailers);
      });
    }
  }
  return { stream, connected: () => pooled.connected, cause: (err) => (pooled.connected ? err : (pooled.error ?? causeOf(err))), pooled };
}

/** How a forwarded request's stream goes, as the request paths (HTTP/2 and HTTP/1.1 clients alike) hear it. */
export interface H2Answer {
  /** The answer's head; `headOnly` when it also ended the stream (gRPC's trailers-only, a bodiless answer). */
  response(status: number, headers: H2Headers, headOnly: boolean): void;
  /** The answer's trailers, heard before its body's end. */
  trailers(trailers: H2Headers): void;
  /**
   * Heard at most once: the stream failed (an error, a deadline, the
   * session lost) or was reset before its answer was whole. `connected`:
   * the session was up, so the upstream may have seen the request.
   */
  failed(err: Error, connected: boolean): void;
  /** The stream has closed, whole or not (after `failed`, when it failed). */
  closed?(): void;
}

/** What the deadline sweep reads of a stream in place of a socket: the session's state and this stream's bytes. */
class StreamProgress implements TryConnection {
  bytesWritten = 0;
  bytesRead = 0;

  constructor(private readonly pooled: PooledSession) {}

  get connecting(): boolean {
    return !this.pooled.connected;
  }
}

/**
 * One request forwarded on an HTTP/2 upstream's pooled session: the stream,
 * its failure told once, its cancellation (RST_STREAM CANCEL, the session's
 * other streams untouched). Both request paths forward through it; it also
 * serves as the try's request and answer for the deadline sweep
 * (deadlines.ts TryRequest), with this stream's bytes as its progress.
 */
export class H2Forward implements TryRequest {
  readonly stream: ClientHttp2Stream;
  readonly socket: StreamProgress;
  private readonly connectedNow: () => boolean;
  private over = false;

  constructor(sessions: H2Sessions, endpoint: Endpoint, request: H2Request, private readonly answer: H2Answer) {
    const opened = openH2Stream(sessions, endpoint, request);
    const stream = opened.stream;
    this.stream = stream;
    this.connectedNow = opened.connected;
    this.socket = new StreamProgress(opened.pooled);
    const progress = this.socket;
    const body = request.body;
    // A body the caller writes itself (a streaming shadow copy) is not a primary try's: no deadline watches its progress.
    if (body && body !== 'written') {
      body.on('data', (chunk: Buffer) => {
        progress.bytesWritten += chunk.length;
      });
    }
    stream.on('error', (err) => this.fail(opened.cause(err), opened.connected()));
    stream.once('response', (headers, flags) => {
      answer.response(Number(headers[':status'] ?? 502), headers, (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0);
    });
    stream.once('trailers', (trailers) => answer.trailers(trailers));
    stream.once('close', () => {
      if (!this.complete) this.fail(resetError(stream), opened.connected());
      answer.closed?.();
    });
  }

  /** Whether the session is up (the request has gone, or goes now, to the upstream). */
  connected(): boolean {
    return this.connectedNow();
  }

  /** The answer came whole: the stream ended without a reset. */
  get complete(): boolean {
    return this.stream.rstCode === http2.constants.NGHTTP2_NO_ERROR && this.stream.readableEnded;
  }

  get writableNeedDrain(): boolean {
    return this.stream.writableNeedDrain;
  }

  /**
   * Streams the answer's body into `destination` with backpressure,
   * counting its bytes for the sweep, and ends it only if the answer came
   * whole: Node ends a reset stream's readable side too, and a piped
   * destination would then end as if nothing had gone wrong. After a
   * reset, the caller cuts `destination` (closed()).
   *
   * Not pipe(): its half-dozen listeners on both sides, added and removed
   * per answer, were the largest cost of the relay in the gateway's CPU
   * profile under h2load. A destination that goes away stops nothing here:
   * both request paths cancel the stream when their client leaves.
   */
  relay(destination: NodeJS.WritableStream): void {
    const stream = this.stream;
    const progress = this.socket;
    const resume = () => stream.resume();
    stream.on('data', (chunk: Buffer) => {
      progress.bytesRead += chunk.length;
      if (!destination.write(chunk)) {
        stream.pause();
        destination.once('drain', resume);
      }
    });
    stream.once('end', () => {
      if ((stream.rstCode ?? http2.constants.NGHTTP2_NO_ERROR) === http2.constants.NGHTTP2_NO_ERROR) destination.end();
    });
  }

  /** Lets go of the stream (RST_STREAM CANCEL); with an error, the failure is told with it. */
  destroy(err?: Error): void {
    if (err) this.fail(err, this.connectedNow());
    if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private fail(err: Error, connected: boolean): void {
    if (this.over) return;
    this.over = true;
    this.answer.failed(err, connected);
  }
}

/**
 * Why a stream closed short. REFUSED_STREAM promises the upstream did not
 * process it (RFC 9113 section 8.7): told as a refused connection, which
 * may be tried elsewhere. Any other reset is a connection reset.
 */
function resetError(stream: ClientHttp2Stream): Error {
  const refused = stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
  return Object.assign(new Error(`upstream stream reset (${stream.rstCode})`), { code: refused ? 'ECONNREFUSED' : 'ECONNRESET' });
}

/** A pending stream's error names the connect failure as its cause. */
function causeOf(err: Error): Error {
  const cause = (err as Error & { cause?: unknown }).cause;
  return cause instanceof Error ? cause : err;
}
