/**
 * What the shadow path hands to comparison: both sides of a mirrored request,
 * captured and bounded.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { DiffConfig } from '../config/types.js';
import type { PairCalls } from '../egress/call-diff.js';
import type { ShadowOutcome } from '../metrics/registry.js';

export interface CapturedResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** At most the capture limit; `truncated` says when there was more. */
  readonly body: Buffer;
  readonly truncated: boolean;
  readonly bodyBytes: number;
  /** SHA-256 (hex) of the whole body, computed while it streamed: set when `truncated`. */
  readonly sha256?: string;
  /**
   * Instead of `sha256`: the body is being hashed on the thread that
   * compares the pair, under this job (PairSink.bodyHash), which fills in
   * `sha256` before comparing.
   */
  readonly sha256Job?: number;
  readonly latencyMs: number;
  /**
   * The longest the thread that measured `latencyMs` was kept from running
   * while the answer was in flight, ms: a latency taken across a long stall
   * is the gateway's, not the upstream's.
   */
  readonly stalledMs?: number;
  /** HTTP/2 trailers, when the answer had any (gRPC's grpc-status, grpc-message). */
  readonly trailers?: IncomingHttpHeaders;
}

export interface ShadowResult {
  readonly outcome: Exclude<ShadowOutcome, 'dropped' | 'skipped'>;
  readonly latencyMs: number;
  readonly status?: number;
  /** Present when the pair is being compared and the copy got an answer. */
  readonly response?: CapturedResponse;
  readonly error?: string;
}

export interface MirroredPair {
  readonly route: string;
  readonly diff: DiffConfig;
  readonly method: string;
  readonly path: string;
  readonly requestId: string;
  readonly time: Date;
  readonly primaryUpstream: string;
  readonly primary: CapturedResponse;
  readonly shadows: readonly { readonly upstream: string; readonly result: ShadowResult }[];
  readonly baseline: { readonly upstream: string; readonly result: ShadowResult } | undefined;
  /** The dependency calls both sides made through the egress, when it runs. */
  readonly calls?: PairCalls;
}

/** Which pair could not be compared: its route and targets, for the counts. */
export interface UncomparedPair {
  readonly route: string;
  readonly shadows: readonly { readonly upstream: string }[];
  readonly baseline: { readonly upstream: string } | undefined;
}

export interface PairSink {
  /** Must return at once; comparison happens later, off the user's path. */
  submit(pair: MirroredPair): void;
  /** A pair whose answers did not fit the in-flight byte budget: counted as dropped, as if the queue had been full. */
  notCompared(pair: UncomparedPair): void;
  /**
   * Where the primary answer of `route` is hashed past its capture limit,
   * when not on the calling thread: undefined to hash it there.
   */
  bodyHash?(route: string): BodyHash | undefined;
}

/** A whole body's SHA-256, fed as the body streams. */
export interface BodyHash {
  update(chunk: Buffer): void;
  /** The body has ended: its digest (hex), the job computing it elsewhere (CapturedResponse.sha256Job), or undefined when it was given up. */
  finish(): { readonly sha256: string } | { readonly sha256Job: number } | undefined;
  /** The digest will not be used. */
  abandon(): void;
}
