/**
 * One request on the user's path: what each step (steps.ts) found, and the
 * state of the current try, in one object that every step and every
 * upstream event of the request reads and writes. Nothing rides on the
 * request or response objects themselves.
 */
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { PassThrough } from 'node:stream';
import type { CompiledRoute, CompiledUpstream } from '../config/compile.js';
import type { RequestStats } from '../metrics/registry.js';
import type { MirrorSession } from '../shadow/service.js';
import { WatchedRequest } from '../upstream/deadlines.js';
import type { Endpoint } from '../upstream/endpoint.js';
import type { H2Forward } from '../upstream/h2.js';
import type { UpstreamPool } from '../upstream/pool.js';
import type { ActiveConfig } from './active.js';

/** What the steps (steps.ts) read and fill in: a plain request's context, or an upgrade's. */
export interface StepContext {
  readonly req: IncomingMessage;
  readonly active: ActiveConfig;
  readonly requestId: string;
  path: string;
  query: string;
  hasBody: boolean;
  chunked: boolean;
  route: CompiledRoute | undefined;
  upstream: CompiledUpstream | undefined;
  stats: RequestStats | undefined;
  pool: UpstreamPool | undefined;
  mirror: MirrorSession | undefined;
}

/** A fresh StepContext, for a request that is not a RequestContext (an upgrade). */
export function stepContext(req: IncomingMessage, active: ActiveConfig, requestId: string): StepContext {
  return { req, active, requestId, path: '', query: '', hasBody: false, chunked: false, route: undefined, upstream: undefined, stats: undefined, pool: undefined, mirror: undefined };
}

export class RequestContext extends WatchedRequest<ClientRequest | H2Forward, IncomingMessage | H2Forward> implements StepContext {
  // screen
  /** The canonical path and query the request is routed on and forwarded with. */
  path = '';
  query = '';
  hasBody = false;
  chunked = false;
  // route, pick
  route: CompiledRoute | undefined;
  upstream: CompiledUpstream | undefined;
  stats: RequestStats | undefined;
  pool: UpstreamPool | undefined;
  // mirror
  mirror: MirrorSession | undefined;

  // forward: the tries
  /** The response has closed: whatever the upstream still does reaches no one. */
  closed = false;
  upstreamFailed = false;
  /** The client was cut off (body too large or stalled): nothing to hold against the endpoint. */
  clientFault = false;
  /** Tries started; the endpoint of the last one, and whether it still counts as outstanding. */
  tries = 0;
  endpoint: Endpoint | undefined;
  holding = false;
  /** The current try's upstream request, from its creation (waiting for a pooled connection included): HTTP/1.1, or a stream to an HTTP/2 upstream. */
  outgoing: ClientRequest | H2Forward | undefined;
  /** The client said `TE: trailers` (read before the hop-by-hop header goes): an HTTP/2 upstream's trailers reach it. */
  acceptsTrailers = false;
  /** An HTTP/2 upstream's trailers, once they came (the shadow comparison reads them). */
  upstreamTrailers: IncomingHttpHeaders | undefined;
  /** The request body, let through to the current try once its connection is up (retryable bodies). */
  bodyGate: PassThrough | undefined;
  bodyStarted = false;
  /** Bytes written on the try's socket before it carried this request. */
  writtenBefore = 0;
  upstreamSocket: Socket | undefined;
  connected = false;
  /** For the access log: when the first try started, when the upstream's answer ended. */
  sentAt = 0;
  upstreamEndedAt = 0;


  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly active: ActiveConfig,
    readonly requestId: string,
    readonly started: number,
  ) {
    super();
  }

  get method(): string {
    return this.req.method ?? 'GET';
  }

  /** The current try is over: the endpoint has one request fewer. */
  release(): void {
    if (!this.holding) return;
    this.holding = false;
    this.pool!.finish(this.endpoint!);
  }
}
