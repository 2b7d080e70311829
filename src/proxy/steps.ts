/**
 * The steps of the user's path before forwarding, in order, each over the
 * request's context (context.ts): screen → route → pick → headers → mirror.
 * Plain requests (handler.ts) take them all; upgrades (upgrade.ts) the
 * first four, so both reach an upstream with the same preamble.
 * A step that refuses the request returns a Rejection (the handler answers
 * it); the others fill in the context. Forwarding itself is the handler's.
 */
import { TLSSocket } from 'node:tls';
import type { UpstreamPools } from '../upstream/pools.js';
import type { ShadowService } from '../shadow/service.js';
import type { StepContext } from './context.js';
import { prepareUpstreamHeaders } from './headers.js';
import { escapedSlashRefused, screenRequest } from './screen.js';

/** A request the gateway answers itself, with a status and a small JSON body. */
export interface Rejection {
  readonly status: number;
  readonly message: string;
  /** Label value of gatewayctl_rejected_requests_total. */
  readonly reason: string;
  readonly headers?: Record<string, string>;
  /** Counted in the unmatched route's statistics (no route matched). */
  readonly unmatched?: boolean;
}

const NO_ROUTE: Rejection = { status: 404, message: 'no route matches this request', reason: 'no_route', unmatched: true };
const ESCAPED_SLASH: Rejection = { status: 400, message: 'bad request: encoded slash or backslash in path', reason: 'bad_path' };

/** Framing, limits and the request target (screen.ts); the canonical path and query. */
export function screen(ctx: StepContext): Rejection | undefined {
  const screened = screenRequest(ctx.req, ctx.active.snapshot.config.limits, ctx.active.snapshot.keepEscapedSlashes);
  if (!screened.ok) return screened;
  ctx.path = screened.path;
  ctx.query = screened.query;
  ctx.hasBody = screened.hasBody;
  ctx.chunked = screened.chunked;
  return undefined;
}

/** The route the request matches. */
export function route(ctx: StepContext): Rejection | undefined {
  const { req, active } = ctx;
  const matched = active.snapshot.route({ method: req.method ?? 'GET', path: ctx.path, host: active.hostOf(req), headers: req.headers });
  if (!matched) return NO_ROUTE;
  if (escapedSlashRefused(active.snapshot, matched, ctx.path)) return ESCAPED_SLASH;
  ctx.route = matched;
  return undefined;
}

/** The backend (primary or canary) that serves it, its statistics and its endpoint pool. */
export function pick(ctx: StepContext, pools: UpstreamPools): undefined {
  const upstream = ctx.route!.pickBackend(ctx.req.headers);
  ctx.upstream = upstream;
  ctx.stats = ctx.active.statsFor(ctx.route!, upstream);
  ctx.pool = pools.poolFor(upstream);
  return undefined;
}

/** The request as the upstream gets it: headers (headers.ts), and the canonical target. */
export function headers(ctx: StepContext): undefined {
  const { req } = ctx;
  const socket = req.socket;
  prepareUpstreamHeaders(req, {
    requestId: ctx.requestId,
    peer: socket.remoteAddress ?? '',
    trustedPeer: ctx.active.isTrusted(socket.remoteAddress),
    encrypted: socket instanceof TLSSocket,
  });
  const target = ctx.path + ctx.query;
  if (target !== req.url) req.url = target;
  return undefined;
}

/** Hands the request (method, target, headers, a tee of the body) to the shadow service when the route has shadows. */
export function mirror(ctx: StepContext, shadow: ShadowService | undefined): undefined {
  if (shadow && ctx.route!.shadows.length > 0) ctx.mirror = shadow.begin(ctx.req, ctx.route!, ctx.requestId, ctx.upstream!);
  return undefined;
}
