/**
 * Shadow copies to HTTP/2 upstreams (`protocol: h2 | h2c`), gRPC's usual
 * transport. Sent from the serving thread, on the same pooled sessions as
 * the primary's HTTP/2 traffic (upstream/h2.ts): a shadow thread would need
 * node:http2 sessions of its own per endpoint and a wire for trailers, and a
 * copy is one more stream on a session that is open anyway. A copy is only
 * ever a stream of its own: its reset, timeout or dead upstream never
 * touches the primary's stream.
 *
 * A copy either carries a whole body (send), or is opened before its body
 * and written as the request streams (open: streaming gRPC calls). The
 * answer is captured bounded (DATA frames up to the capture limit, then
 * hashed; while it arrives its kept bytes count against the serving
 * thread's byte budget, past which the capture is let go) with its
 * trailers, as gRPC comparison needs them. A copy may be
 * cancelled (its stream reset) when it is no longer wanted.
 */
import type { IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import { Readable } from 'node:stream';
import type { CompiledUpstream } from '../config/compile.js';
import { h2HeaderObject, openH2Stream, type H2Sessions } from '../upstream/h2.js';
import type { UpstreamPools } from '../upstream/pools.js';
import type { ByteBudget } from './byte-budget.js';
import { BodyCapture, BudgetedCapture } from './capture.js';
import { ShadowTimeoutError, type CopyAnswer, type CopyRequest } from './clients.js';

export interface H2CopyAnswer extends CopyAnswer {
  readonly trailers: IncomingHttpHeaders | undefined;
}

/** Why a copy's answer never came: it was cancelled on purpose. */
export class CopyCancelledError extends Error {
  readonly code = 'ECOPYCANCELLED';
  constructor() {
    super('shadow copy cancelled');
  }
}

/** A copy whose body is written as the request streams. */
export interface StreamedCopy {
  /** Queues a chunk for the copy's stream; `flushed` runs once it left the queue (sent, or the copy ended). */
  write(chunk: Buffer, flushed: () => void): void;
  /** The request's body ended. */
  end(): void;
  /** Resets the copy's stream; the answer rejects with CopyCancelledError. */
  cancel(): void;
  readonly answer: Promise<H2CopyAnswer>;
}

export class H2Copies {
  constructor(
    private readonly sessions: H2Sessions,
    private readonly pools: UpstreamPools,
    /** The serving thread's byte budget, which the captures of answers still arriving count against too. */
    private readonly budget: ByteBudget,
    private readonly budgetLimit: () => number,
  ) {}

  /** A copy with its whole body. `signal` cancels it. */
  send(upstream: CompiledUpstream, copy: CopyRequest, captureBytes: number | undefined, signal?: AbortSignal): Promise<H2CopyAnswer> {
    const opened = this.start(upstream, copy, copy.body ? Readable.from([copy.body]) : undefined, captureBytes);
    if (signal) {
      if (signal.aborted) opened.cancel();
      else signal.addEventListener('abort', opened.cancel, { once: true });
    }
    return opened.answer;
  }

  /** A copy opened before its body: the caller writes it and ends it. */
  open(upstream: CompiledUpstream, copy: Omit<CopyRequest, 'body'>, captureBytes: number | undefined): StreamedCopy {
    return this.start(upstream, copy, 'written', captureBytes);
  }

  private start(upstream: CompiledUpstream, copy: Omit<CopyRequest, 'body'>, body: Readable | 'written' | undefined, captureBytes: number | undefined): StreamedCopy {
    const started = performance.now();
    const pool = this.pools.poolFor(upstream);
    const endpoint = pool.pick();
    let stream: http2.ClientHttp2Stream | undefined;
    const capture = captureBytes === undefined ? undefined : new BudgetedCapture(new BodyCapture(captureBytes, 'hash'), this.budget, this.budgetLimit);
    let settle: (err: Error | undefined, answer?: H2CopyAnswer) => void = () => {};
    const close = () => {
      if (stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    };
    const answer = new Promise<H2CopyAnswer>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        close();
        settle(new ShadowTimeoutError(copy.timeoutMs));
      }, copy.timeoutMs);
      timer.unref();
      settle = (err, result) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // From here the answer (and its capture) is the session's to count.
        capture?.release();
        // A cancelled copy says nothing of the endpoint's health.
        if (!(err instanceof CopyCancelledError)) pool.record(endpoint, err ? 'failure' : 'ok');
        if (err) reject(err);
        else resolve(result!);
      };
      try {
        const host = copy.headers['host'];
        ({ stream } = openH2Stream(this.sessions, endpoint, {
          method: copy.method,
          path: copy.path,
          authority: typeof host === 'string' ? host : upstream.target.host,
          headers: copy.headers,
          trailers: true,
          body,
        }));
      } catch (err) {
        return void settle(err as Error);
      }
      const opened = stream!;
      let status = 0;
      let headers: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders | undefined;
      opened.on('error', (err) => settle(err));
      opened.once('response', (h) => {
        status = Number(h[':status'] ?? 0);
        headers = h2HeaderObject(h);
      });
      opened.once('trailers', (t) => {
        trailers = h2HeaderObject(t);
      });
      opened.on('data', (chunk: Buffer) => capture?.push(chunk));
      opened.once('end', () => settle(undefined, { status, headers, trailers, capture: capture?.result(), latencyMs: performance.now() - started }));
      opened.once('close', () => {
        if (!opened.readableEnded) settle(Object.assign(new Error(`shadow stream reset (${opened.rstCode})`), { code: 'ECONNRESET' }));
      });
    });
    return {
      answer,
      write: (chunk, flushed) => {
        if (!stream || stream.destroyed || stream.writableEnded) return flushed();
        // Called once the chunk left the stream's queue, or with an error when the stream went first.
        stream.write(chunk, () => flushed());
      },
      end: () => {
        if (stream && !stream.destroyed && !stream.writableEnded) stream.end();
      },
      cancel: () => {
        settle(new CopyCancelledError());
        close();
      },
    };
  }
}
