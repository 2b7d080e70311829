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
import { BodyCapture } from './capture.js';
import type { UpstreamPools } from '../upstream/pools.js';
import { ShadowClients } from './clients.js';
import { stripCredentials } from './credentials.js';
import type { CapturedResponse, MirroredPair, PairSink, ShadowResult } from './pair.js';

export interface MirrorSession {
  /** The primary's response head arrived; capture its body if comparing. */
  primaryResponse(response: IncomingMessage, started: number): void;
  /** The gateway answered for the primary (502/504). */
  primaryFailed(status: number, started: number): void;
  /** The user's response is over (finished, or cut short). */
  clientClosed(completed: boolean): void;
  /** Calls back once every copy has an outcome: "completed", or one per target ("completed,timeout"). */
  whenSettled(callback: (outcomes: string) => void): void;
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
}

/** Request headers a copy never carries as they are: undici frames the body itself. */
const COPY_DROP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'expect', 'upgrade']);

export class ShadowService {
  private readonly metrics: GatewayMetrics;
  private readonly logger: Logger;
  private readonly sink: PairSink | undefined;
  private readonly settings: () => ShadowSettings;
  readonly clients: ShadowClients;
  private inflight = 0;
  private inflightBytes = 0;
  private drainWaiters: (() => void)[] = [];

  constructor(options: ShadowServiceOptions) {
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.sink = options.sink;
    this.settings = options.settings;
    this.clients = new ShadowClients(options.pools);
    this.metrics.shadowInflightSource = () => this.inflight;
  }

  get inFlight(): number {
    return this.inflight;
  }

  /**
   * Decides which of the route's shadow targets take this request and starts
   * teeing its body. Returns undefined (and costs nothing more) when none do.
   * Call after the request's headers were prepared for the upstream.
   */
  begin(req: IncomingMessage, route: CompiledRoute, requestId: string, primary: CompiledUpstream): MirrorSession | undefined {
    const method = req.method ?? 'GET';
    let chosen: CompiledShadow[] | undefined;
    for (const shadow of route.shadows) {
      if (!shadow.methods.has(method) || !shadow.sampler.take()) continue;
      (chosen ??= []).push(shadow);
    }
    if (!chosen) return undefined;
    const { limits, timeouts, darkEgress } = this.settings();

    // Bodies: a declared length over the limit is skipped before reading.
    const declared = req.headers['content-length'];
    const hasBody = (declared !== undefined && declared !== '0') || req.headers['transfer-encoding'] !== undefined;
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
    const session = new Session(this, route, requestId, primary, admitted, snapshotHeaders(req.headers), method, req.url ?? '/', {
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
      const answer = await this.clients.send(
        upstream,
        {
          method,
          path: upstreamPath(upstream.target, target),
          headers: copyHeaders,
          body: body && body.length > 0 ? body : undefined,
          timeoutMs,
        },
        maxCaptureBytes,
      );
      const latencyMs = performance.now() - started;
      const captured: CapturedResponse | undefined = answer.capture && {
        status: answer.status,
        headers: answer.headers,
        body: answer.capture.concat(),
        truncated: answer.capture.overflowed,
        bodyBytes: answer.capture.total,
        latencyMs,
      };
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
    this.clients.retainOnly(upstreams);
  }

  async close(): Promise<void> {
    await this.clients.close();
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
    if (!this.comparable || this.abandoned) return;
    const capture = new BodyCapture(this.options.maxCaptureBytes);
    response.on('data', (chunk: Buffer) => {
      if (!this.comparable || capture.overflowed) return;
      const before = capture.total;
      capture.push(chunk);
      this.keepCaptured(Math.min(capture.total, this.options.maxCaptureBytes) - Math.min(before, this.options.maxCaptureBytes));
    });
    response.once('end', () => {
      this.primary = {
        status: response.statusCode ?? 0,
        headers: response.headers,
        body: capture.concat(),
        truncated: capture.overflowed,
        bodyBytes: capture.total,
        latencyMs: performance.now() - started,
      };
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
    this.targets.forEach((target, i) => {
      void this.service
        .exchange(target.upstream, target, this.method, this.path, this.headers, body, this.options.shadowTimeoutMs, capture)
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
    const baseline = this.route.baseline;
    if (this.options.comparing && baseline) {
      void this.service
        .exchange(baseline, undefined, this.method, this.path, this.baselineHeaders(), body, this.options.shadowTimeoutMs, capture)
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
