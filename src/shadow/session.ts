/**
 * One mirrored request: its copies (one per shadow target, and the
 * baseline's when comparing), the primary's captured answer, and the pair
 * they make for comparison.
 *
 * A copy travels one of two ways:
 *
 *   whole     its body is teed while it streams to the primary and the copy
 *             leaves once the body is complete (HTTP/1.1, unary gRPC);
 *   streamed  the copy opens with the primary and the request's chunks are
 *             written to it as they arrive (streaming gRPC calls, on targets
 *             with `shadow[].streaming`).
 *
 * gRPC calls are mirrored whole only when unary. When the route's
 * descriptor set does not say (the ShadowService decides it up front when
 * it does), the call's shape is found as it flows: a request is unary when
 * its body ends as exactly one whole message; it streams when a second
 * message begins, when the primary answers before the request ended
 * (bidi), or when the request has not ended within the shadow timeout (a
 * bound every gRPC call's whole copies keep, descriptor set or not). The
 * answer streams when the primary's has more than one message. A whole copy
 * of a call found to stream is not sent, or, when found only from the
 * answer, cancelled and left out of the comparison: outcome "skipped".
 *
 * Bounds: nothing here ever pauses the user's request or answer. A whole
 * copy holds its body (within limits.shadowBodyBytes) from the byte budget;
 * a streamed copy holds only the chunks its stream has not taken yet, and is
 * cancelled when that would pass the budget ("dropped") or when the request
 * passes limits.shadowBodyBytes ("skipped"). Captured answers stop at
 * diff.maxBodyBytes (then hashed). Every copy ends by its timeout. A
 * streamed copy is cancelled when the user cancels the call: a reset
 * HTTP/2 request still emits 'end', which would only half-close it.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { CompiledRoute, CompiledShadow, CompiledUpstream } from '../config/compile.js';
import type { ShadowOutcome } from '../metrics/registry.js';
import { FrameCounter } from '../protobuf/frames.js';
import { REQUEST_ID } from '../proxy/headers.js';
import type { CapturedResponse, ShadowResult } from '../diff/pair.js';
import { BodyCapture, type Captured } from './capture.js';
import type { StreamedCopy } from './h2-copies.js';
import type { AnswerBody, MirrorSession, ShadowService } from './service.js';

export type CopyMode = 'whole' | 'streamed';

/** One copy of the request: to a shadow target, or to the baseline (no target). */
export interface CopyPlan {
  readonly upstream: CompiledUpstream;
  readonly target: CompiledShadow | undefined;
  readonly mode: CopyMode;
}

/**
 * One copy's state, every field set when it is made. A copy record that
 * took its outcome, result and flags as new properties later changed its
 * hidden class up to four times, and the serving thread's scavenges then
 * promoted four to five times as much of the shadow path's garbage
 * (bench/README.md, "Young-generation survival").
 */
class Copy implements CopyPlan {
  /** Set once: what became of the copy. */
  outcome: ShadowOutcome | undefined = undefined;
  /** The answer or failure, when the copy was sent and not given up. */
  result: ShadowResult | undefined = undefined;
  /** A whole copy's result, held until the call is known to be unary. */
  waiting: ShadowResult | undefined = undefined;
  /** A whole copy has left (or is leaving): it no longer takes the request. */
  sent = false;
  /** Cancels a whole copy in flight; only copies to HTTP/2 upstreams can be (see exchange()). */
  abort: AbortController | undefined = undefined;
  streamed: StreamedCopy | undefined = undefined;
  /** A streamed copy's request bytes so far, and those written but not yet taken by its stream (held from the budget). */
  teed = 0;
  queued = 0;

  constructor(
    readonly upstream: CompiledUpstream,
    readonly target: CompiledShadow | undefined,
    readonly mode: CopyMode,
  ) {}
}

export interface SessionOptions {
  readonly comparing: boolean;
  readonly maxCaptureBytes: number;
  readonly shadowTimeoutMs: number;
  readonly maxInflightBytes: number;
  readonly maxBodyBytes: number;
  readonly baselineRequestId: string | undefined;
  /** A gRPC call: its whole copies wait for its body no longer than the copy's timeout. */
  readonly grpc: boolean;
  /** A gRPC call whose shape no descriptor set told: its whole copies wait to see it is unary. */
  readonly findShape: boolean;
  /** The whole copies include one to an HTTP/2 upstream (sent from this thread, reading the body as it goes). */
  readonly wholeOverH2: boolean;
}

export class Session implements MirrorSession {
  private primary: CapturedResponse | 'failed' | 'cut' | undefined;
  /** The primary answer's capture, until its pair is handed over or given up (its hash may be held on a shadow thread). */
  private primaryCapture: BodyCapture | undefined;
  private readonly copies: Copy[];
  private compared = false;
  /** Bytes this session holds from the budget (whole bodies, captures); -1 once released for good. */
  private held = 0;
  /** False once a captured answer did not fit the byte budget: no comparison. */
  private comparable: boolean;
  private outcomes: string | undefined;
  private onSettled: ((outcomes: string) => void) | undefined;
  private requestEnded = false;
  /** The primary's answer is over, or known to stream: whole copies' results may be counted. */
  private answerKnown: boolean;
  private readonly requestFrames: FrameCounter | undefined;
  /** The body the whole copies will carry; let go once they left (or gave up), as the budget no longer counts it. */
  private wholeBody: BodyCapture | undefined;
  private shapeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly service: ShadowService,
    private readonly route: CompiledRoute,
    private readonly requestId: string,
    private readonly primaryUpstream: CompiledUpstream,
    plans: readonly CopyPlan[],
    private readonly headers: Record<string, string | string[]>,
    private readonly method: string,
    private readonly path: string,
    private readonly options: SessionOptions,
  ) {
    this.copies = plans.map((p) => new Copy(p.upstream, p.target, p.mode));
    this.comparable = options.comparing;
    this.answerKnown = !options.findShape;
    const whole = this.copies.some((c) => c.mode === 'whole');
    this.requestFrames = options.findShape && whole ? new FrameCounter() : undefined;
    this.wholeBody = whole ? new BodyCapture(options.maxBodyBytes) : undefined;
    if (options.grpc && whole) {
      // A request still open after the copy's whole time is not a unary call's (nor one worth its slot).
      this.shapeTimer = setTimeout(() => this.giveUpWhole('skipped'), options.shadowTimeoutMs);
      this.shapeTimer.unref();
    }
  }

  private get targets(): Copy[] {
    return this.copies.filter((c) => c.target !== undefined);
  }

  /** Copies still taking the request: streamed ones not ended, whole ones not sent. */
  private live(mode: CopyMode): Copy[] {
    return this.copies.filter((c) => c.mode === mode && c.outcome === undefined && !c.sent);
  }

  /** Takes bytes from the service's byte budget for as long as this pair is in flight. */
  hold(bytes: number): boolean {
    if (this.held < 0 || !this.service.reserve(bytes, this.options.maxInflightBytes)) return false;
    this.held += bytes;
    return true;
  }

  /** Streamed copies start with the primary. */
  openStreams(): void {
    for (const copy of this.live('streamed')) {
      const opened = this.service.openStreamed(copy.upstream, copy.target, this.method, this.path, this.copyHeaders(copy), this.options.shadowTimeoutMs, this.capture());
      copy.streamed = opened.copy;
      void opened.result.then((result) => this.settle(copy, result.outcome, result));
    }
  }

  /**
   * A chunk of the request body: written to the streamed copies, kept for
   * the whole ones. Returns false once no copy wants more.
   */
  requestChunk(chunk: Buffer, declared: boolean): boolean {
    for (const copy of this.live('streamed')) {
      copy.teed += chunk.length;
      if (copy.teed > this.options.maxBodyBytes) {
        this.cancel(copy, 'skipped');
        continue;
      }
      if (!this.service.reserve(chunk.length, this.options.maxInflightBytes)) {
        this.cancel(copy, 'dropped');
        continue;
      }
      copy.queued += chunk.length;
      copy.streamed!.write(chunk, () => {
        // After the copy settled, what it still held was given back at once.
        if (copy.queued < chunk.length) return;
        copy.queued -= chunk.length;
        this.service.release(chunk.length);
      });
    }
    if (this.live('whole').length > 0) {
      this.requestFrames?.push(chunk);
      if (this.requestFrames && this.requestFrames.begun > 1) this.giveUpWhole('skipped');
      else if (!declared && !this.hold(chunk.length)) this.giveUpWhole('dropped');
      else if (!this.wholeBody?.push(chunk)) this.giveUpWhole('skipped');
    }
    return this.live('whole').length > 0 || this.live('streamed').length > 0;
  }

  /** The request's body is complete. */
  requestEnd(): void {
    this.requestEnded = true;
    this.clearShapeTimer();
    for (const copy of this.live('streamed')) copy.streamed!.end();
    if (this.live('whole').length === 0) return;
    if (this.requestFrames && !this.requestFrames.single) return this.giveUpWhole('skipped');
    const body = this.wholeBody && this.wholeBody.total > 0 ? this.wholeBody.concat() : undefined;
    this.wholeBody = undefined;
    this.sendWhole(body);
  }

  /** The request ended before its body was complete (the client went away): no copy makes sense. */
  requestCut(): void {
    this.clearShapeTimer();
    for (const copy of [...this.live('whole'), ...this.live('streamed')]) this.cancel(copy, 'skipped');
    this.wholeBody = undefined;
  }

  /** Ends every copy not yet sent with `outcome` (the request could not be mirrored). */
  abandon(outcome: ShadowOutcome): void {
    this.clearShapeTimer();
    for (const copy of this.copies) if (copy.outcome === undefined) this.cancel(copy, outcome);
  }

  private sendWhole(body: Buffer | undefined): void {
    const whole = this.live('whole');
    // The last copy may hand the body's memory to the shadow thread, unless an HTTP/2 copy still reads it here.
    const handOver = !this.options.wholeOverH2;
    for (let i = 0; i < whole.length; i++) {
      const copy = whole[i]!;
      copy.sent = true;
      // An AbortController per copy cost the serving thread microseconds a request; only HTTP/2 copies read it.
      if (this.service.overH2(copy.upstream)) copy.abort = new AbortController();
      void this.exchangeWhole(copy, body, handOver && i === whole.length - 1);
    }
  }

  // Awaited in a method, not in a callback made per copy (clients.ts says why).
  private async exchangeWhole(copy: Copy, body: Buffer | undefined, last: boolean): Promise<void> {
    const result = await this.service.exchange(copy.upstream, copy.target, this.method, this.path, this.copyHeaders(copy), body, this.options.shadowTimeoutMs, this.capture(), last, copy.abort?.signal);
    if (copy.outcome !== undefined) return;
    if (!this.answerKnown) copy.waiting = result;
    else this.settle(copy, result.outcome, result);
  }

  /** The call streams: its whole copies are not sent, or cancelled and left out. */
  private giveUpWhole(outcome: ShadowOutcome): void {
    this.clearShapeTimer();
    for (const copy of this.copies) if (copy.mode === 'whole' && copy.outcome === undefined) this.cancel(copy, outcome);
    this.wholeBody = undefined;
  }

  private cancel(copy: Copy, outcome: ShadowOutcome): void {
    if (copy.outcome !== undefined) return;
    copy.abort?.abort();
    copy.streamed?.cancel();
    this.settle(copy, outcome, undefined);
  }

  /** A copy's outcome, once: counted, its slot and queued bytes given back. */
  private settle(copy: Copy, outcome: ShadowOutcome, result: ShadowResult | undefined): void {
    if (copy.outcome !== undefined) return;
    copy.outcome = outcome;
    copy.waiting = undefined;
    if (result && outcome !== 'skipped' && outcome !== 'dropped') copy.result = result;
    if (copy.queued > 0) {
      this.service.release(copy.queued);
      copy.queued = 0;
    }
    if (copy.target) {
      this.service.count(this.route, copy.upstream, outcome, copy.result ? copy.result.latencyMs / 1000 : undefined);
      this.service.finished(1);
    }
    if (copy.result?.response) this.keepCaptured(copy.result.response.body.length);
    // Asked for and not captured: the captures of answers in flight were at the byte budget.
    else if (copy.result?.outcome === 'completed' && this.options.comparing) this.notComparable();
    const targets = this.targets;
    if (this.outcomes === undefined && targets.every((c) => c.outcome !== undefined)) {
      this.outcomes = targets.map((c) => c.outcome).join(',');
      const callback = this.onSettled;
      this.onSettled = undefined;
      callback?.(this.outcomes);
    }
    this.maybeCompare();
  }

  /** The answer's shape is known: whole copies' held results count now. */
  private answerSettled(streams: boolean): void {
    if (this.answerKnown) return;
    this.answerKnown = true;
    if (streams) return this.giveUpWhole('skipped');
    for (const copy of this.copies) if (copy.waiting) this.settle(copy, copy.waiting.outcome, copy.waiting);
  }

  private clearShapeTimer(): void {
    if (this.shapeTimer) clearTimeout(this.shapeTimer);
    this.shapeTimer = undefined;
  }

  private capture(): number | undefined {
    return this.options.comparing ? this.options.maxCaptureBytes : undefined;
  }

  private copyHeaders(copy: Copy): Record<string, string | string[]> {
    const id = this.options.baselineRequestId;
    return copy.target === undefined && id ? { ...this.headers, [REQUEST_ID]: id } : this.headers;
  }

  /** Gives the bytes back once nothing more will be sent or compared. */
  private releaseBytes(): void {
    if (this.held < 0) return;
    const copiesDone = this.copies.every((c) => c.outcome !== undefined);
    const primaryDone = !this.comparable || this.primary !== undefined;
    if (!(copiesDone && primaryDone)) return;
    this.service.release(this.held);
    this.held = -1;
  }

  /** Bytes this session held and no longer needs, back to the budget before the pair ends. */
  private giveBack(bytes: number): void {
    if (this.held < bytes) return;
    this.held -= bytes;
    this.service.release(bytes);
  }

  /** A captured answer that does not fit the budget ends the pair's comparison. */
  private keepCaptured(bytes: number): void {
    if (this.comparable && !this.hold(bytes)) this.notComparable();
  }

  /** The pair will not be compared for want of bytes: counted once, as a pair the comparison dropped. */
  private notComparable(): void {
    if (!this.comparable) return;
    this.comparable = false;
    const baseline = this.copies.find((c) => c.target === undefined);
    this.service.notCompared({ route: this.route.name, shadows: this.targets.map((c) => ({ upstream: c.upstream.name })), baseline: baseline && { upstream: baseline.upstream.name } });
  }

  primaryResponse(response: IncomingMessage, started: number): void {
    this.primaryAnswer(response.statusCode ?? 0, response.headers, response, started, () => undefined);
  }

  primaryAnswer(status: number, headers: IncomingHttpHeaders, response: AnswerBody, started: number, trailers: () => IncomingHttpHeaders | undefined): void {
    const sent = this.copies.some((c) => c.outcome === undefined || c.result !== undefined);
    // Past the limit only a gRPC answer's prefix is read (its whole messages before the cut).
    // Past the limit the whole body is hashed on the shadow thread that will compare the pair: this thread only copies it over.
    const capture = this.comparable && sent ? new BodyCapture(this.options.maxCaptureBytes, this.options.grpc ? 'hash' : 'hash-only', () => this.service.bodyHash(this.route.name)) : undefined;
    this.primaryCapture = capture;
    capture?.declare(headers['content-length']);
    const frames = this.answerKnown ? undefined : new FrameCounter();
    if (capture || frames || this.requestFrames) response.on('data', (chunk: Buffer) => {
      // An answer before the request ended: the client streams (bidi).
      if (this.requestFrames && !this.requestEnded) this.giveUpWhole('skipped');
      if (frames) {
        frames.push(chunk);
        if (frames.begun > 1) this.answerSettled(true);
      }
      if (!capture || !this.comparable) return;
      const before = capture.keptBytes;
      // Past the limit the rest is only hashed: nothing more is held, and (but for gRPC) the prefix is let go.
      capture.push(chunk);
      if (capture.keptBytes > before) this.keepCaptured(capture.keptBytes - before);
      else if (capture.keptBytes < before) this.giveBack(before - capture.keptBytes);
    });
    response.once('end', () => {
      this.answerSettled(false);
      const captured = capture?.result();
      // Its hash was given up (the byte budget): it cannot be compared.
      if (captured?.unhashed) this.notComparable();
      // Without a capture there is nothing to compare: as if the answer had failed.
      this.primary = captured ? captureOf(status, headers, captured, performance.now() - started, trailers()) : 'failed';
      this.maybeCompare();
    });
  }

  primaryFailed(): void {
    this.primary = 'failed';
    this.answerSettled(false);
    this.maybeCompare();
  }

  clientClosed(completed: boolean): void {
    // The user cancelled: a streamed copy would only be half-closed (an HTTP/2 request that is reset still ends), so it is cancelled too.
    if (!completed) for (const copy of this.copies) if (copy.mode === 'streamed') this.cancel(copy, 'skipped');
    if (!completed && this.primary === undefined) {
      this.primary = 'cut';
      this.answerSettled(false);
      this.maybeCompare();
    }
  }

  whenSettled(callback: (outcomes: string) => void): void {
    if (this.outcomes !== undefined) callback(this.outcomes);
    else this.onSettled = callback;
  }

  private maybeCompare(): void {
    this.compareOnce();
    this.releaseBytes();
  }

  /** The primary's pair will not be handed over: a hash held for it on a shadow thread is let go. */
  private dropPrimaryHash(): void {
    this.primaryCapture?.abandon();
    this.primaryCapture = undefined;
  }

  private compareOnce(): void {
    if (this.compared || this.primary === undefined) return;
    if (!this.comparable) return this.dropPrimaryHash();
    if (!this.copies.every((c) => c.outcome !== undefined)) return;
    this.compared = true;
    const primary = this.primary;
    if (primary === 'failed' || primary === 'cut') return this.dropPrimaryHash();
    // Copies not sent, or given up, are left out: they say nothing of the version under test.
    const shadows: { upstream: string; result: ShadowResult }[] = [];
    for (const c of this.targets) if (c.result !== undefined) shadows.push({ upstream: c.upstream.name, result: c.result });
    if (shadows.length === 0) return this.dropPrimaryHash();
    // Handed over: the pair takes its hash job along.
    this.primaryCapture = undefined;
    const baseline = this.copies.find((c) => c.target === undefined);
    this.service.submit({
      route: this.route.name,
      diff: this.route.diff,
      method: this.method,
      path: this.path,
      requestId: this.requestId,
      time: new Date(),
      primaryUpstream: this.primaryUpstream.name,
      primary,
      shadows,
      baseline: baseline?.result ? { upstream: baseline.upstream.name, result: baseline.result } : undefined,
    });
  }
}

/** One side's answer as captured: its kept bytes, and past the limit the whole body's length and hash (or the job computing it). */
export function captureOf(status: number, headers: IncomingHttpHeaders, capture: Captured, latencyMs: number, trailers?: IncomingHttpHeaders): CapturedResponse {
  return {
    ...(trailers !== undefined ? { trailers } : {}),
    status,
    headers,
    body: capture.body,
    truncated: capture.truncated,
    bodyBytes: capture.total,
    latencyMs,
    ...(capture.sha256 !== undefined ? { sha256: capture.sha256 } : {}),
    ...(capture.sha256Job !== undefined ? { sha256Job: capture.sha256Job } : {}),
  };
}
