/**
 * Shadow copies for dark launches.
 *
 * A route's shadow targets each take a share of its matching requests
 * (counter-sampled, see PercentSampler). The request body is teed while it
 * streams to the primary, never delaying it; the copy leaves once its body is
 * complete, on its own connection pool, with its own timeout, marked
 * `x-shadow-request: 1` and carrying the primary's `x-request-id`.
 *
 * gRPC calls are mirrored when unary; streaming ones only to targets with
 * `streaming: true`, their request streamed to the copy as it flows
 * (session.ts says how a call's shape is known, and the bounds).
 *
 * Nothing here can reach the user: copies beyond the in-flight budget are
 * dropped and counted, never queued, and so are copies shed while the
 * serving thread is saturated (load-shedding.ts); bodies over the limit are skipped;
 * every failure is caught and counted. Both responses of a mirrored pair are
 * captured, bounded, and handed to the comparison sink off the user's path.
 * The copies themselves are sent, and their answers read and captured, in a
 * shadow thread (threaded-copies.ts): the serving thread never reads a
 * shadow's bytes; it captures only the primary's, which it serves anyway.
 *
 * The in-flight budget is a count (limits.shadowInflight) and a number of
 * bytes (limits.shadowInflightBytes): request copies and captured answers
 * held until their pair is complete. A hung shadow holds both until its
 * timeout; without the byte bound, a thousand 1 MB copies held a gigabyte.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { CompiledRoute, CompiledShadow, CompiledUpstream } from '../config/compile.js';
import { defaultsAt } from '../config/defaults.js';
import type { LimitsConfig, TimeoutsConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, ShadowOutcome, ShadowStats } from '../metrics/registry.js';
import { BASELINE_ID_SUFFIX, SHADOW_MARKER } from '../proxy/headers.js';
import { upstreamPath } from '../proxy/path.js';
import type { UpstreamPools } from '../upstream/pools.js';
import { speaksH2, type H2Sessions } from '../upstream/h2.js';
import { CallShapes } from './call-shapes.js';
import type { CopyAnswer, CopySender } from './clients.js';
import { H2Copies, type StreamedCopy } from './h2-copies.js';
import { captureOf, Session, type CopyPlan } from './session.js';
import { ThreadedCopies } from './threaded-copies.js';
import { ShadowThreads } from './threads.js';
import { ByteBudget } from './byte-budget.js';
import { LoadShedding, type LoadClock } from './load-shedding.js';
import { stripCredentials } from './credentials.js';
import type { BodyHash, CapturedResponse, MirroredPair, PairSink, ShadowResult, UncomparedPair } from '../diff/pair.js';
import { localHash } from './capture.js';

export interface MirrorSession {
  /** The primary's response head arrived; capture its body if comparing. */
  primaryResponse(response: IncomingMessage, started: number): void;
  /**
   * The primary's answer from an HTTP/2 upstream: its body streams past on
   * `body`; `trailers` reads them once it has ended (gRPC's grpc-status).
   */
  primaryAnswer(status: number, headers: IncomingHttpHeaders, body: AnswerBody, started: number, trailers: () => IncomingHttpHeaders | undefined): void;
  /** The gateway answered for the primary (502/504). */
  primaryFailed(status: number, started: number): void;
  /** The user's response is over (finished, or cut short). */
  clientClosed(completed: boolean): void;
  /** Calls back once every copy has an outcome: "completed", or one per target ("completed,timeout"). */
  whenSettled(callback: (outcomes: string) => void): void;
}

/** What a captured answer's body is read from: a response or an HTTP/2 stream. */
export interface AnswerBody {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  once(event: 'end', listener: () => void): unknown;
}

/** A request to mirror: an HTTP/1.1 request or an HTTP/2 one (its headers cleaned, pseudo-headers gone). */
export interface MirrorableRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly complete: boolean;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
  once(event: 'end' | 'close', listener: () => void): unknown;
}

export interface ShadowSettings {
  readonly limits: LimitsConfig;
  readonly timeouts: TimeoutsConfig;
  /** egress.dark is configured: the baseline's copy gets its own request id (BASELINE_ID_SUFFIX). */
  readonly darkEgress?: boolean;
}

export interface ShadowServiceOptions {
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  /** Where mirrored pairs go to be compared; none means no capture at all. */
  readonly sink?: PairSink;
  /** Limits and timeouts of the config in service. */
  readonly settings: () => ShadowSettings;
  /** Endpoint pools shared with primary traffic: one choice of endpoint, one view of health. */
  readonly pools: UpstreamPools;
  /** Pooled HTTP/2 sessions of the serving thread: copies to h2/h2c upstreams go on them. */
  readonly h2Sessions?: H2Sessions;
  /** The process's shadow threads, shared with comparison; without them the service starts (and closes) threads of its own. */
  readonly threads?: ShadowThreads;
  /** How the serving thread's load is read (tests); default its event loop. */
  readonly loadClock?: LoadClock;
}

/** limits.shadowShedAbove when a hand-built config leaves it out: the schema's default. */
const DEFAULT_SHED_ABOVE: number = defaultsAt('limits')['shadowShedAbove'];

/** Request headers a copy never carries as they are: the client frames the body itself. */
const COPY_DROP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'expect', 'upgrade']);

export class ShadowService {
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly sink: PairSink | undefined;
  private readonly settings: () => ShadowSettings;
  /** Sends the copies and reads their answers, in a shadow thread. */
  private readonly copies: CopySender;
  /** Threads this service made itself (none were given), closed with it. */
  private readonly ownThreads: ShadowThreads | undefined;
  /** Sends copies to HTTP/2 upstreams, from this thread (h2-copies.ts says why). */
  private readonly h2Copies: H2Copies | undefined;
  /** Which gRPC methods stream, from the routes' descriptor sets. */
  private readonly shapes = new CallShapes();
  private inflight = 0;
  private readonly bytes = new ByteBudget();
  /** Users first: copies shed while the serving thread is saturated. */
  private readonly shedding: LoadShedding;
  private drainWaiters: (() => void)[] = [];

  constructor(options: ShadowServiceOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.sink = options.sink;
    this.settings = options.settings;
    const byteLimit = () => this.settings().limits.shadowInflightBytes;
    this.ownThreads = options.threads ? undefined : new ShadowThreads({ count: () => 1, metrics: options.metrics, logger: options.logger });
    this.copies = new ThreadedCopies(options.threads ?? this.ownThreads!, options.pools, byteLimit);
    this.h2Copies = options.h2Sessions ? new H2Copies(options.h2Sessions, options.pools, this.bytes, byteLimit) : undefined;
    this.metrics.shadowInflightSource = () => this.inflight;
    this.shedding = new LoadShedding(options.loadClock, (shedding, utilization) => {
      const load = `event-loop utilization ${Math.round(utilization * 100)}%`;
      if (shedding) this.logger.warn('shadow.shedding', `the serving thread is saturated (${load}): shadow copies are shed, users first`);
      else this.logger.info('shadow.shedding.end', `shadow copies are sent again in full (${load})`);
    });
    this.metrics.shadowAdmittedSource = () => this.shedding.share;
  }

  /** Resolves once the threads the config in service needs have started (at once when none). */
  ready(): Promise<void> {
    return this.copies.ready();
  }

  get inFlight(): number {
    return this.inflight;
  }

  /**
   * Decides which of the route's shadow targets take this request and starts
   * teeing its body. Returns undefined (and costs nothing more) when none do.
   * Call after the request's headers were prepared for the upstream.
   */
  begin(
    req: MirrorableRequest,
    route: CompiledRoute,
    requestId: string,
    primary: CompiledUpstream,
    /** An HTTP/2 request: its cleaned headers, whether it has a body (it need not declare one), and whether it is a gRPC call. */
    h2?: { readonly headers: IncomingHttpHeaders; readonly hasBody: boolean; readonly grpc?: boolean },
  ): MirrorSession | undefined {
    const method = req.method ?? 'GET';
    // gRPC: only unary calls, unless a target opts in to streaming ones (session.ts).
    const grpc = h2?.grpc === true;
    const shape = grpc ? this.shapes.of(route, req.url ?? '/') : undefined;
    const streams = shape !== undefined && (shape.requestStream || shape.responseStream);
    let chosen: CompiledShadow[] | undefined;
    for (const shadow of route.shadows) {
      if (!shadow.methods.has(method) || !shadow.sampler.take()) continue;
      if (streams && !this.streams(shadow.upstream, shadow)) {
        this.count(route, shadow.upstream, 'skipped');
        continue;
      }
      (chosen ??= []).push(shadow);
    }
    if (!chosen) return undefined;
    const { limits, timeouts, darkEgress } = this.settings();
    if (!this.shedding.admit(limits.shadowShedAbove ?? DEFAULT_SHED_ABOVE)) {
      for (const s of chosen) this.count(route, s.upstream, 'dropped');
      return undefined;
    }

    // Bodies: a declared length over the limit is skipped before reading.
    const requestHeaders = h2?.headers ?? req.headers;
    const declared = requestHeaders['content-length'];
    const hasBody = h2 ? h2.hasBody : (declared !== undefined && declared !== '0') || requestHeaders['transfer-encoding'] !== undefined;
    if (declared !== undefined && Number(declared) > limits.shadowBodyBytes) {
      for (const s of chosen) this.count(route, s.upstream, 'skipped');
      return undefined;
    }
    // The in-flight budget: beyond it a copy is dropped, never queued.
    const admitted: CompiledShadow[] = [];
    for (const s of chosen) {
      if (this.inflight >= limits.shadowInflight) this.count(route, s.upstream, 'dropped');
      else {
        this.inflight++;
        admitted.push(s);
      }
    }
    if (admitted.length === 0) return undefined;

    // A call that streams, or may, goes streamed to the targets that take streams.
    const mayStream = grpc && (shape === undefined || streams);
    const plans: CopyPlan[] = admitted.map((s) => ({ upstream: s.upstream, target: s, mode: mayStream && this.streams(s.upstream, s) ? 'streamed' : 'whole' }));
    const comparing = this.sink !== undefined && route.diff.enabled;
    const baseline = comparing ? route.baseline : undefined;
    if (baseline) {
      // The baseline goes the way the compared copies go; a stream it cannot take, it does not get.
      const streamed = plans.some((p) => p.mode === 'streamed') && this.streams(baseline);
      if (streamed || !streams) plans.push({ upstream: baseline, target: undefined, mode: streamed ? 'streamed' : 'whole' });
    }
    const session = new Session(this, route, requestId, primary, plans, snapshotHeaders(requestHeaders), method, req.url ?? '/', {
      comparing,
      maxCaptureBytes: route.diff.maxBodyBytes,
      shadowTimeoutMs: timeouts.shadowMs,
      maxInflightBytes: limits.shadowInflightBytes,
      maxBodyBytes: limits.shadowBodyBytes,
      baselineRequestId: darkEgress ? requestId + BASELINE_ID_SUFFIX : undefined,
      grpc,
      findShape: grpc && shape === undefined,
      wholeOverH2: plans.some((p) => p.mode === 'whole' && this.overH2(p.upstream)),
    });
    if (!hasBody) {
      queueMicrotask(() => {
        session.openStreams();
        session.requestEnd();
      });
      return session;
    }
    // A declared body takes its bytes from the budget before it is read.
    if (declared !== undefined && !session.hold(Number(declared))) {
      session.abandon('dropped');
      return undefined;
    }
    session.openStreams();
    const onData = (chunk: Buffer) => {
      if (!session.requestChunk(chunk, declared !== undefined)) req.off('data', onData);
    };
    req.on('data', onData);
    req.once('end', () => session.requestEnd());
    req.once('close', () => {
      if (!req.complete) session.requestCut();
    });
    return session;
  }

  /** Streaming calls go to this upstream: the target opted in and it speaks HTTP/2 (a copy is a stream of its own). */
  private streams(upstream: CompiledUpstream, shadow?: CompiledShadow): boolean {
    return (shadow === undefined || shadow.config.streaming) && this.overH2(upstream);
  }

  /** The copy's request as a target's edits make it. */
  private copyRequest(shadow: CompiledShadow | undefined, path: string, headers: Record<string, string | string[]>): { headers: Record<string, string | string[]>; target: string } {
    // The shared copy already carries the marker; a target with its own
    // header edits gets a private copy of it.
    let copyHeaders = headers;
    let target = path;
    const edits = shadow?.config;
    if (edits?.credentials === 'strip') ({ headers: copyHeaders, target } = stripCredentials(headers, path));
    // Edits come after stripping, so a copy may be given a test credential of its own.
    if (edits && (edits.removeHeaders.length > 0 || edits.host || Object.keys(edits.setHeaders).length > 0)) {
      copyHeaders = { ...copyHeaders };
      for (const name of edits.removeHeaders) delete copyHeaders[name];
      for (const [name, value] of Object.entries(edits.setHeaders)) copyHeaders[name] = value;
      if (edits.host) copyHeaders['host'] = edits.host;
      copyHeaders[SHADOW_MARKER] = '1';
    }
    return { headers: copyHeaders, target };
  }

  /** @internal Copies to this upstream go over HTTP/2 from this thread (h2-copies.ts): they can stream, and be cancelled in flight. */
  overH2(upstream: CompiledUpstream): boolean {
    return this.h2Copies !== undefined && speaksH2(upstream);
  }

  /** @internal Sends one copy with its whole body; resolves with what happened, never rejects. */
  exchange(
    upstream: CompiledUpstream,
    shadow: CompiledShadow | undefined,
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    body: Buffer | undefined,
    timeoutMs: number,
    maxCaptureBytes: number | undefined,
    /** The body's last copy: its memory may be handed over rather than copied. */
    lastUse = false,
    /** Cancels a copy to an HTTP/2 upstream; other copies run to their end, their answer unused. */
    signal?: AbortSignal,
  ): Promise<ShadowResult> {
    const started = performance.now();
    const edited = this.copyRequest(shadow, path, headers);
    const copy = {
      method,
      path: upstreamPath(upstream.target, edited.target),
      headers: edited.headers,
      body: body && body.length > 0 ? body : undefined,
      timeoutMs,
      ...(lastUse ? { handOver: true } : {}),
    };
    const h2 = this.overH2(upstream) ? this.h2Copies : undefined;
    return resultOf(h2 ? h2.send(upstream, copy, maxCaptureBytes, signal) : this.copies.send(upstream, copy, maxCaptureBytes), started, timeoutMs);
  }

  /** @internal Opens a streamed copy (to an HTTP/2 upstream): its body is written as the request streams. */
  openStreamed(
    upstream: CompiledUpstream,
    shadow: CompiledShadow | undefined,
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    timeoutMs: number,
    maxCaptureBytes: number | undefined,
  ): { copy: StreamedCopy; result: Promise<ShadowResult> } {
    const started = performance.now();
    const edited = this.copyRequest(shadow, path, headers);
    const copy = this.h2Copies!.open(upstream, { method, path: upstreamPath(upstream.target, edited.target), headers: edited.headers, timeoutMs }, maxCaptureBytes);
    return { copy, result: resultOf(copy.answer, started, timeoutMs) };
  }

  /** Metric children per route and target, bound once per compiled route. */
  private readonly stats = new WeakMap<CompiledRoute, Map<CompiledUpstream, ShadowStats>>();

  /** @internal */
  count(route: CompiledRoute, upstream: CompiledUpstream, outcome: ShadowOutcome, seconds?: number): void {
    let byUpstream = this.stats.get(route);
    if (!byUpstream) this.stats.set(route, (byUpstream = new Map()));
    let stats = byUpstream.get(upstream);
    if (!stats) byUpstream.set(upstream, (stats = this.metrics.shadowStats(route.name, upstream.name)));
    stats.count(outcome, seconds);
  }

  /** @internal Takes bytes from the byte budget; false (nothing taken) when they do not fit. */
  reserve(bytes: number, limit: number): boolean {
    return this.bytes.take(bytes, limit);
  }

  /** @internal */
  release(bytes: number): void {
    this.bytes.give(bytes);
  }

  /** @internal */
  finished(copies: number): void {
    this.inflight -= copies;
    if (this.inflight === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** @internal Where a primary answer of `route` is hashed past its capture limit: on a shadow thread when the sink offers one. */
  bodyHash(route: string): BodyHash {
    try {
      return this.sink?.bodyHash?.(route) ?? localHash();
    } catch (err) {
      this.logger.error('shadow.compare', `handing a hash over failed: ${(err as Error).message}`, { route });
      return localHash();
    }
  }

  /** @internal */
  notCompared(pair: UncomparedPair): void {
    try {
      this.sink?.notCompared(pair);
    } catch (err) {
      this.logger.error('shadow.compare', `counting a pair not compared failed: ${(err as Error).message}`, { route: pair.route });
    }
  }

  /** @internal */
  submit(pair: MirroredPair): void {
    try {
      this.sink?.submit(pair);
    } catch (err) {
      this.logger.error('shadow.compare', `comparison failed: ${(err as Error).message}`, { route: pair.route });
    }
  }

  /** Resolves when no copy is in flight (or at the deadline). */
  drain(timeoutMs: number): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Closes pools of upstreams no longer shadowed. */
  retainOnly(upstreams: Iterable<CompiledUpstream>): void {
    this.copies.retainOnly(upstreams);
  }

  async close(): Promise<void> {
    await this.copies.close();
    await this.ownThreads?.close();
  }
}

/** A copy's answer as its result: completed with the captured answer, or why not. Never rejects. */
async function resultOf(answer: Promise<CopyAnswer & { readonly trailers?: IncomingHttpHeaders | undefined }>, started: number, timeoutMs: number): Promise<ShadowResult> {
  try {
    const got = await answer;
    // Measured where the copy was sent, like the primary's: no hop between threads in it.
    const latencyMs = got.latencyMs;
    const measured = got.capture && captureOf(got.status, got.headers, got.capture, latencyMs, got.trailers);
    const captured: CapturedResponse | undefined = measured && got.stalledMs ? { ...measured, stalledMs: got.stalledMs } : measured;
    return { outcome: 'completed', latencyMs, response: captured, status: got.status };
  } catch (err) {
    const timedOut = isTimeout(err);
    return {
      outcome: timedOut ? 'timeout' : 'error',
      latencyMs: performance.now() - started,
      error: describeError(err, timedOut, timeoutMs),
    };
  }
}

/** The headers as sent to the primary, frozen for the copies. */
function snapshotHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  out[SHADOW_MARKER] = '1';
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !COPY_DROP.has(name)) out[name] = value;
  }
  return out;
}

function isTimeout(err: unknown): boolean {
  const e = err as { name?: string; code?: string };
  return (
    e?.name === 'TimeoutError' ||
    e?.code === 'UND_ERR_HEADERS_TIMEOUT' ||
    e?.code === 'UND_ERR_BODY_TIMEOUT' ||
    e?.code === 'UND_ERR_CONNECT_TIMEOUT' ||
    e?.code === 'GW_SHADOW_TIMEOUT'
  );
}

function describeError(err: unknown, timedOut: boolean, timeoutMs: number): string {
  if (timedOut) return `timed out after ${timeoutMs}ms`;
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code;
  const message = e?.cause?.message ?? e?.message ?? String(err);
  return code ? `${code}: ${message}` : message;
}
