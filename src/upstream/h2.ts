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
import type { Endpoint } from './endpoint.js';

const IDLE_MS = 60_000;

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
): { stream: ClientHttp2Stream; connected: () => boolean; cause: (err: Error) => Error } {
  const pooled = sessions.session(endpoint);
  const endStream = request.body === undefined;
  const trailersOf = request.bodyTrailers;
  const stream = pooled.session.request(h2RequestHeaders(request, endpoint.tls !== undefined), {
    endStream,
    ...(trailersOf && !endStream ? { waitForTrailers: true } : {}),
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
  return { stream, connected: () => pooled.connected, cause: (err) => (pooled.connected ? err : (pooled.error ?? causeOf(err))) };
}

/** A pending stream's error names the connect failure as its cause. */
function causeOf(err: Error): Error {
  const cause = (err as Error & { cause?: unknown }).cause;
  return cause instanceof Error ? cause : err;
}
