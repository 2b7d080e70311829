/**
 * The gateway's one deadline mechanism: a Sweep, one interval timer over
 * the items it watches, instead of a timer per request. Upstream deadlines
 * for the user's path (forwarded requests and upgrades) are enforced by it,
 * and the client connections' deadlines use the same Sweep. Re-arming a socket timer for every request (and
 * again when the socket goes back to the pool) costs more than the whole
 * of the gateway's own request handling; a sweep every 50 ms over the
 * exchanges in flight costs nothing per request.
 *
 * - queue: a request waiting for a pooled connection (all maxSockets busy)
 *   gets one within the upstream's poolTimeout, or is answered 503
 *   pool_exhausted: the gateway's own limit, not the upstream's fault;
 * - connect: a new connection must be up within the upstream's connectTimeout;
 * - upload: while the request body streams there is no deadline on the
 *   upload as a whole (a long upload is no fault); the client's pauses are
 *   bounded by timeouts.body (proxy/handler.ts), and an upstream that stops taking
 *   the body (the request is held back by it) for the upstream's timeout is
 *   given up on;
 * - response: the response head must arrive within the upstream's timeout,
 *   counted from when the request was sent whole (before a connection is
 *   assigned, from the start: waiting in the pool's queue counts);
 * - body: once the head is in, the upstream must keep sending; no progress
 *   on its socket for the same timeout cuts the response.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { CompiledUpstream } from '../config/compile.js';
import { ChurnSet, type ChurnMember } from '../churn.js';
import { ErrorCodes, GatewayError } from '../errors.js';

export const SWEEP_MS = 50;

export type DeadlinePhase = 'queue' | 'connect' | 'upload' | 'response' | 'body';

const MESSAGES: Record<DeadlinePhase, string> = {
  queue: 'no pooled upstream connection came free in time',
  connect: 'upstream connect timed out',
  upload: 'upstream stopped reading the request body',
  response: 'upstream response timed out',
  body: 'upstream body stalled',
};

export class UpstreamTimeoutError extends GatewayError {
  constructor(readonly phase: DeadlinePhase) {
    super(ErrorCodes.UPSTREAM_TIMEOUT, MESSAGES[phase]);
    this.name = 'UpstreamTimeoutError';
  }
}

/** What the sweep reads of a try's connection: a net.Socket, or an HTTP/2 stream's own counts (h2.ts). */
export interface TryConnection {
  readonly connecting: boolean;
  readonly bytesWritten: number;
  readonly bytesRead: number;
}

/** What the sweep reads of a try's request: a node:http ClientRequest, or a stream to an HTTP/2 upstream (h2.ts). */
export interface TryRequest {
  readonly socket: TryConnection | null;
  readonly writableNeedDrain: boolean;
}

/** What the sweep needs to know of one exchange. */
export interface Watched extends ChurnMember {
  /** When the exchange started waiting, ms (Date.now()). */
  watchedSince: number;
  /** Longest wait for a pooled connection (no upstream request has a socket yet). */
  poolTimeoutMs: number;
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  upstreamRequest: TryRequest | undefined;
  /** The answer's head is in (only whether there is one is read). */
  upstreamResponse: object | undefined;
  /** When the request was sent whole (its 'finish'), ms; 0 until then. */
  requestSentAt: number;
  /**
   * Progress on the upstream socket, and since when: bytes written while
   * the request is sent, bytes read once the response head is in.
   */
  lastBytes: number;
  lastProgress: number;
  /** Set when the sweep gave up on it. */
  expired: UpstreamTimeoutError | undefined;
}

/** A request to an upstream as the sweep watches it: extended by the request path's context and by upgrades. */
export class WatchedRequest<Request extends TryRequest = ClientRequest, Response extends object = IncomingMessage> implements Watched {
  churnSlot = -1;
  watchedSince = 0;
  poolTimeoutMs = 0;
  connectTimeoutMs = 0;
  responseTimeoutMs = 0;
  upstreamRequest: Request | undefined;
  upstreamResponse: Response | undefined;
  requestSentAt = 0;
  lastBytes = 0;
  lastProgress = 0;
  expired: UpstreamTimeoutError | undefined;

  /** Takes the upstream's pool, connect and response timeouts. */
  timeoutsOf(upstream: CompiledUpstream): void {
    this.poolTimeoutMs = upstream.config.poolTimeoutMs;
    this.connectTimeoutMs = upstream.config.connectTimeoutMs;
    this.responseTimeoutMs = upstream.timeoutMs;
  }
}

/**
 * One interval timer over a set of watched items, running only while the
 * set is not empty. `visit` returns false to stop watching an item.
 * Shared by the upstream deadlines here and the client connections'
 * deadlines (proxy/connections.ts).
 */
export class Sweep<T extends ChurnMember> {
  private readonly items = new ChurnSet<T>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly visit: (item: T, now: number) => boolean,
    private readonly intervalMs = SWEEP_MS,
  ) {}

  add(item: T): void {
    this.items.add(item);
    if (!this.timer) {
      this.timer = setInterval(() => this.run(), this.intervalMs);
      this.timer.unref();
    }
  }

  delete(item: T): void {
    this.items.delete(item);
  }

  get size(): number {
    return this.items.size;
  }

  private run(): void {
    const now = Date.now();
    this.items.forEach((item) => {
      if (!this.visit(item, now)) this.items.delete(item);
    });
    if (this.items.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.items.clear();
  }
}

export class UpstreamDeadlines<T extends Watched> {
  private readonly sweep: Sweep<T>;

  constructor(onExpired: (exchange: T, error: UpstreamTimeoutError) => void) {
    this.sweep = new Sweep<T>((w, now) => {
      const error = overdue(w, now);
      if (!error) return true;
      w.expired = error;
      this.sweep.delete(w);
      onExpired(w, error);
      return false;
    });
  }

  watch(exchange: T): void {
    exchange.watchedSince = Date.now();
    this.sweep.add(exchange);
  }

  unwatch(exchange: T): void {
    this.sweep.delete(exchange);
  }

  get size(): number {
    return this.sweep.size;
  }

  close(): void {
    this.sweep.close();
  }
}

function overdue(w: Watched, now: number): UpstreamTimeoutError | undefined {
  if (!w.upstreamRequest) {
    return now - w.watchedSince > Math.min(w.poolTimeoutMs, w.responseTimeoutMs) ? new UpstreamTimeoutError('queue') : undefined;
  }
  const socket = w.upstreamRequest.socket;
  if (socket && socket.connecting) {
    return now - w.watchedSince > Math.min(w.connectTimeoutMs, w.responseTimeoutMs) ? new UpstreamTimeoutError('connect') : undefined;
  }
  if (!w.upstreamResponse) {
    if (w.requestSentAt === 0 && socket) {
      const written = socket.bytesWritten;
      if (written !== w.lastBytes || !w.upstreamRequest!.writableNeedDrain) {
        w.lastBytes = written;
        w.lastProgress = now;
        return undefined;
      }
      return now - w.lastProgress > w.responseTimeoutMs ? new UpstreamTimeoutError('upload') : undefined;
    }
    return now - (w.requestSentAt || w.watchedSince) > w.responseTimeoutMs ? new UpstreamTimeoutError('response') : undefined;
  }
  const read = socket?.bytesRead ?? w.lastBytes;
  if (read !== w.lastBytes) {
    w.lastBytes = read;
    w.lastProgress = now;
    return undefined;
  }
  return now - w.lastProgress > w.responseTimeoutMs ? new UpstreamTimeoutError('body') : undefined;
}
