/**
 * Client connections of one listener: how long they may stay silent, how
 * many there may be, and how many per client. A connection that never
 * speaks would otherwise hold a file descriptor forever (Node's own header
 * timeout starts with the first byte of a request, not at accept).
 *
 * - From accept (TLS handshake included), a complete request head must
 *   arrive within `headerMs`; after the last response, the next one must
 *   start within `idleMs` and, once started, be complete within `headerMs`.
 *   Enforced by one sweep over the connections not busy with a request,
 *   the same Sweep that enforces the upstream deadlines.
 * - At `maxConnections`, a new connection first closes the connection that
 *   has been doing nothing the longest (idle keep-alive, or accepted and
 *   silent since), as nginx drains its reusable connections; only when
 *   every connection is busy is the new one refused, at once: 503 on a
 *   plain listener, a close on a TLS one.
 * - Beyond `maxPerClient` from one peer address: 429 and closed. Trusted
 *   proxies are exempt (they carry many clients).
 */
import type http from 'node:http';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { ConnectionCloseReason, GatewayMetrics } from '../metrics/registry.js';
import { ChurnQueue } from '../churn.js';
import { Sweep } from '../upstream/deadlines.js';
import { sendRawError } from './responses.js';

/** Coarser than the upstream sweep: these deadlines are seconds long. */
export const CONNECTION_SWEEP_MS = 100;

export interface ConnectionSettings {
  readonly headerMs: number;
  readonly idleMs: number;
  /** Most connections open at once on this listener. */
  readonly maxConnections: number;
  /** Most connections from one peer address; 0 for no limit. */
  readonly maxPerClient: number;
}

export interface ConnectionGuardOptions {
  /** The `listener` label of the connection metrics. */
  readonly listener: string;
  readonly metrics: GatewayMetrics;
  /** Read for every new connection and every sweep, so a reload applies at once. */
  readonly settings: () => ConnectionSettings;
  /** Peers exempt from the per-client cap. */
  readonly exempt?: (address: string | undefined) => boolean;
  /** The listener speaks TLS: a connection is a raw socket until its handshake is done. */
  readonly tls?: boolean;
}

const enum Phase {
  /** Waiting for a complete request head: since accept, or since the next request began. */
  Head,
  /** A request is being served. */
  Busy,
  /** Keep-alive, between a response and the next request's first byte. */
  Idle,
  /** Upgraded or tunnelled: no longer HTTP, timed by its own rules. */
  Detached,
}

const kConnection = Symbol('gatewayctl.connection');
type Tracked = Duplex & { [kConnection]?: Connection };

class Connection {
  /** Its place in the sweep. */
  churnSlot = -1;
  phase = Phase.Head;
  /** When the phase began, ms. */
  since: number;
  /** Bytes read on the socket when the phase began: more means a request has started. */
  bytesAt = 0;
  outstanding = 0;
  closing = false;
  /** The socket HTTP runs on: the raw one, or the TLS one once the handshake is done. */
  http: Socket | undefined;

  /** Peer address and port: how the TLS socket is matched with its raw one. */
  readonly key: string;
  /** Its place among the resting connections. */
  queuePrev: Connection | undefined;
  queueNext: Connection | undefined;
  queued = false;

  constructor(
    readonly raw: Socket,
    readonly peer: string,
    now: number,
  ) {
    this.since = now;
    this.key = peerKey(raw);
  }

  get bytesRead(): number {
    // Once TLS runs, the raw socket's count stops at the handshake.
    return (this.http ?? this.raw).bytesRead;
  }

  /** Nothing is going on: nginx's "reusable" connection. */
  get resting(): boolean {
    return this.phase === Phase.Idle || (this.phase === Phase.Head && this.bytesRead === this.bytesAt);
  }
}

export class ConnectionGuard {
  private readonly sweep = new Sweep<Connection>((c, now) => this.visit(c, now), CONNECTION_SWEEP_MS);
  /**
   * Candidates to close at the cap, in the order they came to rest (oldest
   * first). Every request takes its connection out and puts it back: a
   * linked queue does that without hashing (a Set's add and delete were
   * about 1 µs of each request's CPU).
   */
  private readonly resting = new ChurnQueue<Connection>();
  private readonly perClient = new Map<string, number>();
  /** TLS connections in their handshake, by peer address and port. */
  private readonly handshaking = new Map<string, Connection>();
  private count = 0;
  private readonly closed: Record<ConnectionCloseReason, { inc(): void }>;
  private readonly gauge: { inc(): void; dec(): void };
  private readonly limitGauge: { set(value: number): void };
  private limitShown = -1;

  constructor(private readonly options: ConnectionGuardOptions) {
    const { metrics, listener } = options;
    // Every series from the start, at 0: a rate() or a ratio needs them before the first event.
    const gauge = metrics.connections.labels(listener);
    gauge.set(0);
    this.gauge = gauge;
    this.limitGauge = metrics.connectionsLimit.labels(listener);
    this.showLimit(options.settings().maxConnections);
    const child = (reason: ConnectionCloseReason) => {
      const counter = metrics.connectionsClosed.labels(listener, reason);
      counter.inc(0);
      return counter;
    };
    this.closed = {
      header_timeout: child('header_timeout'),
      idle: child('idle'),
      evicted: child('evicted'),
      cap: child('cap'),
      per_client_cap: child('per_client_cap'),
    };
  }

  /** Connections open now. */
  get open(): number {
    return this.count;
  }

  /**
   * Follows `server`'s connections. Call after the server's own handlers
   * are attached: the events that take a socket over (upgrade, CONNECT)
   * are followed only when the server handles them.
   */
  attach(server: http.Server): void {
    server.on('connection', (raw: Socket) => this.admit(raw));
    if (this.options.tls) server.on('secureConnection', (socket: TLSSocket) => this.secured(socket));
    const started = (req: http.IncomingMessage, res: ServerResponse) => this.started(req.socket, res);
    server.on('request', started);
    for (const event of ['checkContinue', 'checkExpectation']) if (server.listenerCount(event) > 0) server.on(event, started);
    const detached = (req: http.IncomingMessage) => this.detach(req.socket);
    for (const event of ['upgrade', 'connect']) if (server.listenerCount(event) > 0) server.on(event, detached);
  }

  private showLimit(limit: number): void {
    if (limit === this.limitShown) return;
    this.limitShown = limit;
    this.limitGauge.set(limit);
  }

  private admit(raw: Socket): void {
    const settings = this.options.settings();
    this.showLimit(settings.maxConnections);
    const peer = raw.remoteAddress ?? '';
    if (settings.maxPerClient > 0 && (this.perClient.get(peer) ?? 0) >= settings.maxPerClient && !this.options.exempt?.(peer)) {
      return this.refuse(raw, 'per_client_cap', 429, 'too many connections from this address');
    }
    if (this.count >= settings.maxConnections && !this.evictOne()) {
      return this.refuse(raw, 'cap', 503, 'too many connections');
    }
    const c = new Connection(raw, peer, Date.now());
    (raw as Tracked)[kConnection] = c;
    this.count++;
    this.gauge.inc();
    this.perClient.set(peer, (this.perClient.get(peer) ?? 0) + 1);
    if (this.options.tls) this.handshaking.set(c.key, c);
    else c.http = raw;
    this.resting.push(c);
    this.sweep.add(c);
    raw.once('close', () => this.forget(c));
  }

  /** Refused before it was counted: a refusal on a plain listener, a close on a TLS one. */
  private refuse(raw: Socket, reason: ConnectionCloseReason, status: number, message: string): void {
    this.closed[reason].inc();
    raw.on('error', noop);
    if (this.options.tls) raw.destroy();
    else sendRawError(raw, status, message);
  }

  /** Closes the connection that has rested longest; false when none rests. */
  private evictOne(): boolean {
    for (let c = this.resting.shift(); c; c = this.resting.shift()) {
      // A connection that began sending a request since it came to rest is not idle.
      if (c.resting && !c.closing) {
        this.closeConnection(c, 'evicted');
        return true;
      }
    }
    return false;
  }

  private secured(socket: TLSSocket): void {
    const key = peerKey(socket);
    const c = this.handshaking.get(key);
    if (!c) return;
    this.handshaking.delete(key);
    c.http = socket;
    (socket as Tracked)[kConnection] = c;
    // The handshake is not a request: from here on, bytes are HTTP, and a
    // connection that sends none rests (an eviction scan during the handshake may have passed it over).
    if (c.phase === Phase.Head && !c.closing) {
      c.bytesAt = socket.bytesRead;
      this.resting.push(c);
    }
  }

  private started(socket: Duplex, res: ServerResponse): void {
    const c = (socket as Tracked)[kConnection];
    if (!c || c.closing) return;
    c.outstanding++;
    if (c.phase !== Phase.Busy) {
      c.phase = Phase.Busy;
      this.resting.delete(c);
      this.sweep.delete(c);
    }
    // Fires once: on() spares once()'s wrapper (as in handler.ts).
    res.on('close', () => this.finished(c));
  }

  private finished(c: Connection): void {
    if (c.closing || c.phase !== Phase.Busy || --c.outstanding > 0) return;
    this.rest(c, Phase.Idle, Date.now());
  }

  private rest(c: Connection, phase: Phase.Head | Phase.Idle, now: number): void {
    c.phase = phase;
    c.since = now;
    c.bytesAt = c.bytesRead;
    this.resting.push(c);
    this.sweep.add(c);
  }

  /** Taken over by another protocol (HTTP/2): timed by its own rules from now on, still counted. */
  handOver(socket: Duplex): void {
    this.detach(socket);
  }

  private detach(socket: Duplex): void {
    const c = (socket as Tracked)[kConnection];
    if (!c) return;
    c.phase = Phase.Detached;
    this.resting.delete(c);
    this.sweep.delete(c);
  }

  /** One connection, once per sweep; false stops watching it. */
  private visit(c: Connection, now: number): boolean {
    if (c.closing || c.phase === Phase.Busy || c.phase === Phase.Detached) return false;
    const { headerMs, idleMs } = this.options.settings();
    if (c.phase === Phase.Idle) {
      if (c.bytesRead !== c.bytesAt) {
        // The next request has begun: its head gets headerMs from now.
        c.phase = Phase.Head;
        c.since = now;
        this.resting.delete(c);
        return true;
      }
      if (now - c.since < idleMs) return true;
      this.closeConnection(c, 'idle');
      return false;
    }
    if (now - c.since < headerMs) return true;
    this.closeConnection(c, 'header_timeout');
    return false;
  }

  private closeConnection(c: Connection, reason: ConnectionCloseReason): void {
    c.closing = true;
    this.closed[reason].inc();
    this.resting.delete(c);
    this.sweep.delete(c);
    c.raw.on('error', noop);
    // A client that sent part of a head is told why; a silent or idle one is just closed.
    if (reason === 'header_timeout' && c.http && c.bytesRead > c.bytesAt) {
      // A request had begun: refused like any other request (as Node's own header timeout would).
      this.options.metrics.rejectedRequests.inc({ reason: 'header_timeout' });
      sendRawError(c.http, 408, 'request timeout');
    } else c.raw.destroy();
  }

  private forget(c: Connection): void {
    c.closing = true;
    this.count--;
    this.gauge.dec();
    const left = (this.perClient.get(c.peer) ?? 1) - 1;
    if (left > 0) this.perClient.set(c.peer, left);
    else this.perClient.delete(c.peer);
    this.resting.delete(c);
    this.sweep.delete(c);
    if (this.handshaking.get(c.key) === c) this.handshaking.delete(c.key);
  }

  close(): void {
    this.sweep.close();
    this.resting.clear();
    this.handshaking.clear();
  }
}

/** A live TCP connection's identity on one listener: the raw and the TLS socket report the same. */
function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

function noop(): void {}
