/**
 * HTTP/2 on the gateway's listener, beside HTTP/1.1 on the same port:
 *
 * - TLS: ALPN offers h2 and http/1.1; a connection that chose h2 is handed
 *   to the HTTP/2 server here, any other stays with the HTTPS server.
 * - cleartext (`listen: {h2c: true}`): a connection whose first bytes are
 *   the HTTP/2 preface ("PRI * HTTP/2.0...", prior knowledge, as gRPC
 *   clients speak) goes to HTTP/2, any other to HTTP/1.1. The bytes read to
 *   decide are put back (unshift) for whichever server takes it.
 *
 * The HTTP/2 server never listens itself; it is given connections. Its
 * limits, against hostile clients (the h2 error each gets):
 *
 * - too many streams: SETTINGS_MAX_CONCURRENT_STREAMS (limits.h2MaxConcurrentStreams);
 *   nghttp2 refuses extra streams (RST_STREAM REFUSED_STREAM), and a client
 *   that keeps opening them is cut (GOAWAY ENHANCE_YOUR_CALM, Node's
 *   maxSessionRejectedStreams);
 * - rapid reset (CVE-2023-44487): streams the client cancels are counted
 *   per connection in a token bucket (limits.h2MaxResetsPerSecond); an
 *   empty bucket ends the connection with GOAWAY ENHANCE_YOUR_CALM.
 *   Cancelled streams also cancel their upstream streams (h2-handler.ts),
 *   so a reset costs the upstream nothing;
 * - CONTINUATION floods: nghttp2 (>= 1.61) caps CONTINUATION frames per
 *   header block and the header list size; beyond, GOAWAY;
 * - header table abuse: the HPACK table is capped by SETTINGS_HEADER_TABLE_SIZE
 *   (4 KiB), the decoded list by maxHeaderListSize = limits.maxHeaderBytes and
 *   maxHeaderListPairs = limits.maxHeaderCount; past them the stream is
 *   refused (ENHANCE_YOUR_CALM) or the connection ends (COMPRESSION_ERROR);
 * - oversized frames: SETTINGS_MAX_FRAME_SIZE 16 KiB; larger frames are a
 *   FRAME_SIZE_ERROR (GOAWAY);
 * - memory: limits.h2MaxSessionMemory per connection (Node's
 *   maxSessionMemory); beyond it new streams are refused (ENHANCE_YOUR_CALM);
 * - silence: a connection with no frames for timeouts.idle is closed
 *   (GOAWAY), like an idle keep-alive connection.
 */
import http2, { type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { GatewayConfig } from '../config/types.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const MB = 1024 * 1024;
/** The reset budget's burst: this many seconds' worth of cancels. */
const RESET_WINDOW_S = 1;
/** After an idle GOAWAY, how long streams may still finish. */
const IDLE_GRACE_MS = 1000;

export interface H2Limits {
  readonly maxConcurrentStreams: number;
  readonly maxResetsPerSecond: number;
  readonly maxSessionMemory: number;
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
  readonly idleMs: number;
}

export function h2Limits(config: GatewayConfig): H2Limits {
  const { limits, timeouts } = config;
  return {
    maxConcurrentStreams: limits.h2MaxConcurrentStreams ?? 100,
    maxResetsPerSecond: limits.h2MaxResetsPerSecond ?? 200,
    maxSessionMemory: limits.h2MaxSessionMemory ?? 10 * MB,
    maxHeaderBytes: limits.maxHeaderBytes,
    maxHeaderCount: limits.maxHeaderCount,
    idleMs: timeouts.idleMs,
  };
}

type Handler = (req: Http2ServerRequest, res: Http2ServerResponse) => void;

export class H2Front {
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<ServerHttp2Session>();
  private draining = false;

  constructor(
    private readonly limits: () => H2Limits,
    handler: Handler,
    private readonly onFault: (reason: string) => void,
  ) {
    const initial = limits();
    this.server = http2.createServer(
      {
        settings: this.settings(initial),
        maxHeaderListPairs: initial.maxHeaderCount + 8,
        maxSessionMemory: Math.max(1, Math.ceil(initial.maxSessionMemory / MB)),
        maxSessionRejectedStreams: 100,
        maxSessionInvalidFrames: 100,
        maxOutstandingPings: 10,
      },
      handler,
    );
    this.server.on('session', (session: ServerHttp2Session) => this.watch(session));
  }

  private settings(limits: H2Limits): http2.Settings {
    return {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderBytes,
      maxFrameSize: 16384,
      headerTableSize: 4096,
      enablePush: false,
    };
  }

  /** Serves `socket` (a TLS socket that chose h2, or a cleartext one that began with the preface) as HTTP/2. */
  accept(socket: Socket): void {
    this.accepting = socket;
    // Node's HTTP/1.1 server sets this on its connections as it takes them; these it never takes.
    socket.setNoDelay(true);
    try {
      this.server.emit('connection', socket);
    } finally {
      this.accepting = undefined;
    }
  }

  /** The connection being handed over: its session is made while it is. */
  private accepting: Socket | undefined;

  private watch(session: ServerHttp2Session): void {
    const limits = this.limits();
    // The listener's sockets allow half-open connections (HTTP/1.1 needs
    // them); HTTP/2 has no use for one: a client that ends its side is gone.
    // After a connection error of its own (FRAME_SIZE_ERROR, say) nghttp2
    // stops reading, so such a session is only ended by the idle timeout below.
    const socket = this.accepting;
    const over = () => {
      if (!session.destroyed) session.destroy();
    };
    socket?.once('end', over);
    socket?.once('close', over);
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', () => this.onFault('h2_session_error'));
    if (this.draining) session.close();
    // Idle: GOAWAY, and streams still open a moment later (a dead peer's) are ended too.
    session.setTimeout(limits.idleMs, () => {
      session.close();
      setTimeout(() => session.destroy(), IDLE_GRACE_MS).unref();
    });
    // A token bucket: a burst of a window's worth of cancels, refilled at the rate.
    const rate = limits.maxResetsPerSecond;
    let tokens = rate * RESET_WINDOW_S;
    let last = Date.now();
    let cut = false;
    session.on('stream', (stream) => {
      // Every stream that ends reset (by the client, mostly) spends a token.
      stream.once('close', () => {
        if (stream.rstCode === http2.constants.NGHTTP2_NO_ERROR || stream.rstCode === undefined) return;
        const now = Date.now();
        tokens = Math.min(rate * RESET_WINDOW_S, tokens + ((now - last) / 1000) * rate);
        last = now;
        if (--tokens >= 0 || cut) return;
        cut = true;
        this.onFault('h2_rapid_reset');
        session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
        // Once the GOAWAY is on its way: nothing more is read from this client.
        setImmediate(() => session.destroy());
      });
    });
  }

  /** New limits for new connections; open ones keep the settings they agreed. */
  apply(): void {
    // Node reads the server's settings for each new session.
    this.server.updateSettings(this.settings(this.limits()));
  }

  /** Graceful stop: GOAWAY on every connection; streams in flight finish. */
  drain(): void {
    this.draining = true;
    for (const session of this.sessions) session.close();
  }

  close(): void {
    for (const session of this.sessions) session.destroy();
    this.sessions.clear();
  }
}

/**
 * Takes over `server`'s own handling of `event` (the HTTP/1.1 server's
 * 'connection' or 'secureConnection' listener) so connections can be
 * diverted to HTTP/2 first. Only the listeners present now (Node's own)
 * are wrapped; listeners added later see every connection as before.
 */
function divert(server: Server, event: string, route: (socket: Socket, http1: (socket: Socket) => void) => void): void {
  const own = server.listeners(event) as ((socket: Socket) => void)[];
  server.removeAllListeners(event);
  const http1 = (socket: Socket) => {
    for (const listener of own) listener.call(server, socket);
  };
  server.on(event, (socket: Socket) => route(socket, http1));
}

/** TLS: connections that chose h2 by ALPN go to `front`. */
export function divertAlpn(server: Server, front: H2Front, handedOver: (socket: Socket) => void): void {
  divert(server, 'secureConnection', (socket, http1) => {
    if ((socket as TLSSocket).alpnProtocol !== 'h2') return http1(socket);
    front.accept(socket);
    // After the other 'secureConnection' listeners (the connection guard) have seen it.
    queueMicrotask(() => handedOver(socket));
  });
}

/**
 * Cleartext: connections that open with the HTTP/2 preface go to `front`
 * while `enabled()` says so. Reads only until the first bytes decide.
 */
export function divertPreface(server: Server, front: H2Front, enabled: () => boolean, handedOver: (socket: Socket) => void): void {
  divert(server, 'connection', (socket, http1) => {
    if (!enabled()) return http1(socket);
    let seen: Buffer = Buffer.alloc(0);
    const decide = (h2: boolean) => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.pause();
      if (seen.length > 0) socket.unshift(seen);
      if (h2) {
        front.accept(socket);
        handedOver(socket);
        // HTTP/2 reads the connection natively, taking the bytes put back on
        // the next tick; the stream must flow again after that, or the
        // connection's end would never be seen (and its session never closed).
        setImmediate(() => socket.resume());
      } else {
        http1(socket);
        socket.resume();
      }
    };
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      if (seen.subarray(0, n).compare(PREFACE, 0, n) !== 0) return decide(false);
      if (n === PREFACE.length) decide(true);
    };
    // Closed before deciding: HTTP/1.1's handling (and the connection guard) sees it end.
    const onEnd = () => decide(false);
    const onError = () => socket.destroy();
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.on('error', onError);
  });
}
