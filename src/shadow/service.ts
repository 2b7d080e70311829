/**
 * Shadow copies for dark launches.
 *
 * A route's shadow targets each take a share of its matching requests
 * (counter-sampled, see PercentSampler). The request body is teed while it
 * streams to the primary, never delaying it; the copy leaves once its body is
 * complete, on its own connection pool, with its own timeout, marked
 * `x-shadow-request: 1` and carrying the primary's `x-request-id`.
 *
 * Nothing here can reach the user: copies beyond the in-flight budget are
 * dropped and counted, never queued; bodies over the limit are skipped;
 * every failure is caught and counted. Both responses of a mirrored pair are
 * captured, bounded, and handed to the comparison sink off the user's path.
 * The copies themselves are sent, and their answers read and captured, in a
 * copying thread (copy-threads.ts): the serving thread never reads a
 * shadow's bytes; it captures only the primary's, which it serves anyway.
 *
 * The in-flight budget is a count (limits.shadowInflight) and a number of
 * bytes (limits.shadowInflightBytes): request copies and captured answers
 * held until their pair is complete. A hung shadow holds both until its
 * timeout; without the byte bound, a thousand 1 MB copies held a gigabyte.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { CompiledRoute, CompiledShadow, CompiledUpstream } from '../config/compile.js';
import type { LimitsConfig, TimeoutsConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics, ShadowOutcome, ShadowStats } from '../metrics/registry.js';
import { BASELINE_ID_SUFFIX, REQUEST_ID, SHADOW_MARKER } from '../proxy/headers.js';
import { upstreamPath } from '../proxy/path.js';
import { BodyCapture, type Captured } from './capture.js';
import type { UpstreamPools } from '../upstream/pools.js';
import type { H2Sessions } from '../upstream/h2.js';
import type { CopySender } from './clients.js';
import { H2Copies } from './h2-copies.js';
import { ThreadedCopies } from './copy-threads.js';
import { stripCredentials } from './credentials.js';
import type { CapturedResponse, MirroredPair, PairSink, ShadowResult } from '../diff/pair.js';

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
}

/** Request headers a copy never carries as they are: the client frames the body itself. */
const COPY_DROP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'expect', 'upgrade']);

export class ShadowService {
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly sink: PairSink | undefined;
  private readonly settings: () => ShadowSettings;
  /** Sends the copies and reads their answers, in a thread of its own. */
  private readonly copies: CopySender;
  /** Sends copies to HTTP/2 upstreams, from this thread (h2-copies.ts says why). */
  private readonly h2Copies: H2Copies | undefined;
  private inflight = 0;
  private inflightBytes = 0;
  private drainWaiters: (() => void)[] = [];

  constructor(options: ShadowServiceOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.sink = options.sink;
    this.settings = options.settings;
    this.copies = new ThreadedCopies(options.pools, options.metrics, options.logger);
    this.h2Copies = options.h2Sessions ? new H2Copies(options.h2Sessions, options.pools) : undefined;
    this.metrics.shadowInflightSource = () => this.inflight;
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
    /** An HTTP/2 request: its cleaned headers, and whether it has a body (it need not declare one). */
    h2?: { readonly headers: IncomingHttpHeaders; readonly hasBody: boolean },
  ): MirrorSession | undefined {
    const method = req.method ?? 'GET';
    let chosen: CompiledShadow[] | undefined;
    for (const shadow of route.shadows) {
      if (!shadow.methods.has(method) || !shadow.sampler.take()) continue;
      (chosen ??= []).push(shadow);
    }
    if (!chosen) return undefined;
    const { limits, timeouts, darkEgress } = this.settings();

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

    const comparing = this.sink !== undefined && route.diff.enabled;
    const session = new Session(this, route, requestId, primary, admitted, snapshotHeaders(requestHeaders), method, req.url ?? '/', {
      comparing,
      maxCaptureBytes: route.diff.maxBodyBytes,
      shadowTimeoutMs: timeouts.shadowMs,
      maxInflightBytes: limits.shadowInflightBytes,
      baselineRequestId: darkEgress ? requestId + BASELINE_ID_SUFFIX : undefined,
    });
    if (!hasBody) {
      queueMicrotask(() => session.send(undefined));
      return session;
    }
    // A declared body takes its bytes from the budget before it is read.
    if (declared !== undefined && !session.hold(Number(declared))) {
      session.abandon('dropped');
      return undefined;
    }
    const body = new BodyCapture(limits.shadowBodyBytes);
    const onData = (chunk: Buffer) => {
      if (declared === undefined && !session.hold(chunk.length)) {
        req.off('data', onData);
        session.abandon('dropped');
        return;
      }
      if (!body.push(chunk)) {
        req.off('data', onData);
      }
    };
    req.on('data', onData);
    req.once('end', () => {
      if (body.overflowed) session.abandon('skipped');
      else session.send(body.concat());
    });
    req.once('close', () => {
      if (!req.complete) session.abandon('skipped');
    });
    return session;
  }

  /** @internal Sends one copy; resolves with what happened, never rejects. */
  async exchange(
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
  ): Promise<ShadowResult> {
    const started = performance.now();
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
    try {
      const h2 = this.h2Copies && H2Copies.speaks(upstream) ? this.h2Copies : undefined;
      const answer = await (h2 ?? this.copies).send(
        upstream,
        {
          method,
          path: upstreamPath(upstream.target, target),
          headers: copyHeaders,
          body: body && body.length > 0 ? body : undefined,
          timeoutMs,
          ...(lastUse ? { handOver: true } : {}),
        },
        maxCaptureBytes,
      );
      // Measured where the copy was sent, like the primary's: no hop between threads in it.
      const latencyMs = answer.latencyMs;
      const trailers = 'trailers' in answer ? (answer.trailers as IncomingHttpHeaders | undefined) : undefined;
      const measured = answer.capture && captureOf(answer.status, answer.headers, answer.capture, latencyMs, trailers);
      const captured: CapturedResponse | undefined = measured && answer.stalledMs ? { ...measured, stalledMs: answer.stalledMs } : measured;
      return { outcome: 'completed', latencyMs, response: captured, status: answer.status };
    } catch (err) {
      const timedOut = isTimeout(err);
      return {
        outcome: timedOut ? 'timeout' : 'error',
        latencyMs: performance.now() - started,
        error: describeError(err, timedOut, timeoutMs),
      };
    }
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
    if (this.inflightBytes + bytes > limit) return false;
    this.inflightBytes += bytes;
    return true;
  }

  /** @internal */
  release(bytes: number): void {
    this.inflightBytes -= bytes;
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
  }
}

/** One mirrored request: its copies, and its pair when comparing. */
class Session implements MirrorSession {
  private primary: CapturedResponse | 'failed' | 'cut' | undefined;
  private results: (ShadowResult | undefined)[];
  private baseline: ShadowResult | undefined;
  private pending: number;
  private abandoned = false;
  private sent = false;
  /** Bytes this session holds from the budget; -1 once released for good. */
  private held = 0;
  /** False once a captured answer did not fit the byte budget: no comparison. */
  private comparable: boolean;
  private outcomes: string | undefined;
  private readonly outcomeOf: (ShadowOutcome | undefined)[];
  private onSettled: ((outcomes: string) => void) | undefined;

  constructor(
    private readonly service: ShadowService,
    private readonly route: CompiledRoute,
    private readonly requestId: string,
    private readonly primaryUpstream: CompiledUpstream,
    private readonly targets: CompiledShadow[],
    private readonly headers: Record<string, string | string[]>,
    private readonly method: string,
    private readonly path: string,
    private readonly options: {
      comparing: boolean;
      maxCaptureBytes: number;
      shadowTimeoutMs: number;
      maxInflightBytes: number;
      baselineRequestId: string | undefined;
    },
  ) {
    this.results = new Array(targets.length).fill(undefined);
    this.outcomeOf = new Array(targets.length).fill(undefined);
    this.pending = targets.length + (options.comparing && route.baseline ? 1 : 0);
    this.comparable = options.comparing;
  }

  /** Takes bytes from the service's byte budget for as long as this pair is in flight. */
  hold(bytes: number): boolean {
    if (this.held < 0 || !this.service.reserve(bytes, this.options.maxInflightBytes)) return false;
    this.held += bytes;
    return true;
  }

  /** Gives the bytes back once nothing more will be sent or compared. */
  private releaseBytes(): void {
    if (this.held < 0) return;
    const copiesDone = this.pending <= 0;
    const primaryDone = !this.comparable || this.primary !== undefined;
    if (!this.abandoned && !(copiesDone && primaryDone)) return;
    this.service.release(this.held);
    this.held = -1;
  }

  /** A captured answer that does not fit the budget ends the pair's comparison. */
  private keepCaptured(bytes: number): void {
    if (this.comparable && !this.hold(bytes)) this.comparable = false;
  }

  primaryResponse(response: IncomingMessage, started: number): void {
    this.primaryAnswer(response.statusCode ?? 0, response.headers, response, started, () => undefined);
  }

  primaryAnswer(status: number, headers: IncomingHttpHeaders, response: AnswerBody, started: number, trailers: () => IncomingHttpHeaders | undefined): void {
    if (!this.comparable || this.abandoned) return;
    const capture = new BodyCapture(this.options.maxCaptureBytes, true);
    response.on('data', (chunk: Buffer) => {
      if (!this.comparable) return;
      const before = capture.keptBytes;
      // Past the limit the rest is only hashed: nothing more is held.
      capture.push(chunk);
      if (capture.keptBytes > before) this.keepCaptured(capture.keptBytes - before);
    });
    response.once('end', () => {
      this.primary = captureOf(status, headers, capture.result(), performance.now() - started, trailers());
      this.maybeCompare();
    });
  }

  primaryFailed(): void {
    this.primary = 'failed';
    this.maybeCompare();
  }

  clientClosed(completed: boolean): void {
    if (!completed && this.primary === undefined) {
      this.primary = 'cut';
      this.maybeCompare();
    }
  }

  /** The request body could not be mirrored: release every slot. */
  whenSettled(callback: (outcomes: string) => void): void {
    if (this.outcomes !== undefined) callback(this.outcomes);
    else this.onSettled = callback;
  }

  private settled(outcomes: string): void {
    this.outcomes = outcomes;
    const callback = this.onSettled;
    this.onSettled = undefined;
    callback?.(outcomes);
  }

  abandon(outcome: ShadowOutcome): void {
    if (this.sent || this.abandoned) return;
    this.abandoned = true;
    this.settled(this.targets.map(() => outcome).join(','));
    for (const t of this.targets) this.service.count(this.route, t.upstream, outcome);
    this.service.finished(this.targets.length);
    this.releaseBytes();
  }

  send(body: Buffer | undefined): void {
    if (this.sent || this.abandoned) return;
    this.sent = true;
    const capture = this.options.comparing ? this.options.maxCaptureBytes : undefined;
    const baseline = this.route.baseline;
    const withBaseline = this.options.comparing && baseline !== undefined;
    this.targets.forEach((target, i) => {
      const last = !withBaseline && i === this.targets.length - 1;
      void this.service
        .exchange(target.upstream, target, this.method, this.path, this.headers, body, this.options.shadowTimeoutMs, capture, last)
        .then((result) => {
          this.service.count(this.route, target.upstream, result.outcome, result.latencyMs / 1000);
          this.service.finished(1);
          if (result.response) this.keepCaptured(result.response.body.length);
          this.results[i] = result;
          this.outcomeOf[i] = result.outcome;
          if (this.outcomeOf.every((o) => o !== undefined)) this.settled(this.outcomeOf.join(','));
          this.pending--;
          this.maybeCompare();
        });
    });
    if (withBaseline) {
      void this.service
        .exchange(baseline, undefined, this.method, this.path, this.baselineHeaders(), body, this.options.shadowTimeoutMs, capture, true)
        .then((result) => {
          if (result.response) this.keepCaptured(result.response.body.length);
          this.baseline = result;
          this.pending--;
          this.maybeCompare();
        });
    }
  }

  private baselineHeaders(): Record<string, string | string[]> {
    const id = this.options.baselineRequestId;
    return id ? { ...this.headers, [REQUEST_ID]: id } : this.headers;
  }

  private maybeCompare(): void {
    this.compareOnce();
    this.releaseBytes();
  }

  private compareOnce(): void {
    if (!this.comparable || this.pending > 0 || this.primary === undefined || this.abandoned) return;
    const primary = this.primary;
    this.pending = -1; // compare once
    if (primary === 'failed' || primary === 'cut') return;
    this.service.submit({
      route: this.route.name,
      diff: this.route.diff,
      method: this.method,
      path: this.path,
      requestId: this.requestId,
      time: new Date(),
      primaryUpstream: this.primaryUpstream.name,
      primary,
      shadows: this.targets.map((t, i) => ({ upstream: t.upstream.name, result: this.results[i]! })),
      baseline: this.baseline && this.route.baseline ? { upstream: this.route.baseline.name, result: this.baseline } : undefined,
    });
  }
}

/** One side's answer as captured: its kept bytes, and past the limit the whole body's length and hash. */
function captureOf(status: number, headers: IncomingHttpHeaders, capture: Captured, latencyMs: number, trailers?: IncomingHttpHeaders): CapturedResponse {
  return {
    ...(trailers !== undefined ? { trailers } : {}),
    status,
    headers,
    body: capture.body,
    truncated: capture.truncated,
    bodyBytes: capture.total,
    latencyMs,
    ...(capture.sha256 !== undefined ? { sha256: capture.sha256 } : {}),
  };
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
