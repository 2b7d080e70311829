/**
 * Shadow copies to HTTP/2 upstreams (`protocol: h2 | h2c`), gRPC's usual
 * transport. Sent from the serving thread, on the same pooled sessions as
 * the primary's HTTP/2 traffic (upstream/h2.ts): a copying thread would need
 * node:http2 sessions of its own per endpoint and a wire for trailers, and a
 * copy is one more stream on a session that is open anyway. A copy is only
 * ever a stream of its own: its reset, timeout or dead upstream never
 * touches the primary's stream.
 *
 * The answer is captured bounded (DATA frames up to the capture limit, then
 * hashed) with its trailers, as gRPC comparison needs them.
 */
import type { IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import { Readable } from 'node:stream';
import type { CompiledUpstream } from '../config/compile.js';
import { h2HeaderObject, openH2Stream, type H2Sessions } from '../upstream/h2.js';
import type { UpstreamPools } from '../upstream/pools.js';
import { BodyCapture } from './capture.js';
import { ShadowTimeoutError, type CopyAnswer, type CopyRequest } from './clients.js';

export interface H2CopyAnswer extends CopyAnswer {
  readonly trailers: IncomingHttpHeaders | undefined;
}

export class H2Copies {
  constructor(
    private readonly sessions: H2Sessions,
    private readonly pools: UpstreamPools,
  ) {}

  static speaks(upstream: CompiledUpstream): boolean {
    const protocol = upstream.config.protocol ?? 'http1';
    return protocol === 'h2' || protocol === 'h2c';
  }

  send(upstream: CompiledUpstream, copy: CopyRequest, captureBytes: number | undefined): Promise<H2CopyAnswer> {
    const started = performance.now();
    const pool = this.pools.poolFor(upstream);
    const endpoint = pool.pick();
    return new Promise((resolve, reject) => {
      let settled = false;
      let stream: http2.ClientHttp2Stream | undefined;
      const timer = setTimeout(() => {
        if (stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        settle(new ShadowTimeoutError(copy.timeoutMs));
      }, copy.timeoutMs);
      timer.unref();
      const settle = (err: Error | undefined, answer?: H2CopyAnswer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        pool.record(endpoint, err ? 'failure' : 'ok');
        if (err) reject(err);
        else resolve(answer!);
      };
      try {
        const host = copy.headers['host'];
        ({ stream } = openH2Stream(this.sessions, endpoint, {
          method: copy.method,
          path: copy.path,
          authority: typeof host === 'string' ? host : upstream.target.host,
          headers: copy.headers,
          trailers: true,
          body: copy.body ? Readable.from([copy.body]) : undefined,
        }));
      } catch (err) {
        return void settle(err as Error);
      }
      const opened = stream!;
      const capture = captureBytes === undefined ? undefined : new BodyCapture(captureBytes, true);
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
        if (!settled) settle(Object.assign(new Error(`shadow stream reset (${opened.rstCode})`), { code: 'ECONNRESET' }));
      });
    });
  }
}
