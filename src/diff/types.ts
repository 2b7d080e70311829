/**
 * The shapes comparison produces and the diff store serves. Everything here
 * is plain JSON, so a worker process can compare its own pairs and send the
 * results to the process that serves /diffs.
 */

import type { LogHistogram } from './stats.js';

/**
 * `latency`: an endpoint whose shadow is confidently slower than diff.latency.maxRatio × its primary;
 * `call`: a dependency call the dark version made differently, never made, or made extra (src/egress/).
 */
export type DifferenceKind = 'status' | 'header' | 'body' | 'error' | 'call' | 'latency';
export const DIFFERENCE_KINDS: readonly DifferenceKind[] = ['status', 'header', 'body', 'error', 'call', 'latency'];

/** Which evidence judged noise: a baseline, repeated requests to the primary, or none. */
export type Evidence = 'baseline' | 'repeat' | 'none';

/**
 * How two values differ: `value` same type, other value; `type` other JSON
 * types (or body formats); `missing` the shadow lacks what the primary has;
 * `extra` the other way round; `order` same elements, other order; `text`
 * and `binary` whole non-JSON bodies.
 */
export type ChangeKind = 'value' | 'type' | 'missing' | 'extra' | 'order' | 'text' | 'binary';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface Difference {
  readonly kind: DifferenceKind;
  /**
   * body: a JSON Pointer ("" is the whole body) or, for HTML, a node path
   * ("html > body > main > p.stock", "… > input@value"); header: the
   * lower-cased header name; status: "status"; error: "error"; latency: "latency".
   */
  readonly path: string;
  /** The endpoint template of the request ("/api/products/{id}"). */
  readonly endpoint?: string;
  /** The path with array indices and id-like keys as "*", for grouping. */
  readonly template: string;
  readonly change: ChangeKind;
  /** The primary's value (null when absent: see `change`), clipped and redacted. */
  readonly primary: JsonValue;
  readonly shadow: JsonValue;
  /** Set when a stored value was cut short or redacted. */
  readonly clipped?: true;
  readonly note?: string;
  /** kind `call`: the dependency call it is about (`path` is then the body's JSON Pointer, "?" the query, "" the whole call). */
  readonly call?: { readonly dependency: string; readonly method: string; readonly path: string };
}

export interface SideView {
  readonly upstream: string;
  /** null when the copy got no answer. */
  readonly status: number | null;
  readonly latencyMs: number;
  /** Body bytes received (before decoding). */
  readonly bytes?: number;
  readonly truncated?: true;
  readonly error?: string;
}

/** One mirrored request and one of its shadow targets, when they differ. */
export interface DiffEventBody {
  /** When the request arrived at the gateway (ISO 8601). */
  readonly time: string;
  readonly route: string;
  /** The endpoint template the request falls under. */
  readonly endpoint?: string;
  /** What noise was judged with: the baseline, repeated requests, or nothing. */
  readonly evidence?: Evidence;
  readonly method: string;
  /** Request path and query; secret-looking query values redacted. */
  readonly path: string;
  readonly requestId: string;
  readonly primary: SideView;
  readonly shadow: SideView;
  readonly baseline?: SideView;
  /** At most the listing limit, in document order. */
  readonly differences: readonly Difference[];
  /** All real differences found, listed or not. */
  readonly differenceCount: number;
  /** Differences masked as noise (seen between primary and baseline too). */
  readonly noise: number;
  /** A body was past diff.maxBodyBytes: both were compared by length and a SHA-256 of the whole body, never parsed. */
  readonly truncated: boolean;
  /** Set when comparison stopped at a bound: "nodes", "depth" or "bytes". */
  readonly limited?: string;
}

export interface DiffEvent extends DiffEventBody {
  /** `<boot>-<sequence>`: unique across restarts and replicas. */
  readonly id: string;
}

/** Counts for one (kind, template) path; additive. */
export interface PathCounts {
  readonly kind: DifferenceKind;
  readonly path: string;
  /** Compared pairs where this path really differed. */
  differing: number;
  /** Pairs where primary and baseline differed here (noise). */
  noise: number;
  /** Pairs where a primary/shadow difference here was masked as noise. */
  masked: number;
  /** Pairs where the shadow differed here at all, noise or not (for rate judgements). */
  raw?: number;
  /** Pairs where a number here moved farther than its noise ever did. */
  beyond?: number;
  /** Pairs where this difference came with a real status change (its likely cause). */
  withStatus?: number;
  /** Pairs judged with repeated requests' noise instead of a baseline's. */
  repeatNoise?: number;
  /** Numbers compared within a learned tolerance, arrays as learned sets. */
  tolerated?: number;
  reordered?: number;
  /** The largest relative size of this path's numeric noise. */
  maxRelative?: number;
  /** A request id where it really differed. */
  example?: string;
}

/** A status change and the differences that came with it, counted as one cause. */
export interface CauseCounts {
  /** "status 200 → 500", "error". */
  readonly cause: string;
  requests: number;
  example: string;
  /** Other differences seen with it ("body /error", "header etag"), a few. */
  readonly with: string[];
}

/** Latency of one endpoint, additive: sparse log-scale histograms. */
export interface EndpointLatency {
  readonly ratio: LogHistogram;
  readonly baselineRatio: LogHistogram;
  readonly primary: LogHistogram;
  readonly shadow: LogHistogram;
  /** diff.latency.maxRatio in force. */
  maxRatio: number;
  /** One pair's latencies (a pair's own counts carry this instead of histograms: cheaper to add). */
  readonly sample?: LatencySample;
}

export interface LatencySample {
  readonly primaryMs: number;
  readonly shadowMs: number;
  readonly baselineMs?: number;
}

/** Everything counted for one endpoint of a (route, shadow target). */
export interface EndpointCounts {
  readonly endpoint: string;
  compared: number;
  differing: number;
  baselined: number;
  /** Pairs without a baseline whose request had been seen before (repeat evidence). */
  repeated: number;
  noiseMasked: number;
  /** Pairs whose only differences were noise. */
  noiseOnly: number;
  readonly kinds: Record<DifferenceKind, number>;
  readonly paths: PathCounts[];
  pathsOmitted: number;
  readonly causes: CauseCounts[];
  readonly latency: EndpointLatency;
}

/** Latency histogram, additive: counts per upper bound (the last is +Inf). */
export interface LatencyCounts {
  readonly primary: number[];
  readonly shadow: number[];
  primarySumMs: number;
  shadowSumMs: number;
}

/**
 * Everything counted for one (route, shadow target). A single compared pair
 * produces one of these with small numbers; the store adds them up; replicas
 * and workers merge by adding theirs.
 */
export interface ShadowCounts {
  readonly route: string;
  readonly shadow: string;
  /** The route's baseline upstream, when it has one. */
  baseline?: string;
  compared: number;
  /** Pairs with at least one real (unmasked) difference. */
  differing: number;
  /** Pairs that also had a baseline answer (or baseline failure). */
  baselined: number;
  /** Pairs not compared because comparison fell behind (its queue, or the in-flight byte budget, was full). */
  dropped: number;
  /** Differences masked as noise. */
  noiseMasked: number;
  /** Pairs with at least one real difference of each kind. */
  readonly kinds: Record<DifferenceKind, number>;
  readonly paths: PathCounts[];
  /** Paths not tracked separately once the per-target path limit was reached. */
  pathsOmitted: number;
  readonly latency: LatencyCounts;
  /** Per endpoint template (bounded; the rest under "(other)"). */
  readonly endpoints?: EndpointCounts[];
  /** Pairs whose only differences were noise. */
  noiseOnly?: number;
}

/** A body as an example shows it: ignored members removed, clipped. */
export type ExampleBody =
  | { readonly format: 'empty' }
  | { readonly format: 'json'; readonly value: JsonValue }
  | { readonly format: 'text'; readonly text: string }
  | { readonly format: 'binary'; readonly bytes: number; readonly sha256: string }
  /** No answer: the copy failed or timed out. */
  | { readonly format: 'none'; readonly error: string };

export interface ExampleSide {
  readonly upstream: string;
  readonly status: number | null;
  readonly latencyMs: number;
  /** Lower-cased names; secret-looking values redacted. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: ExampleBody;
  /** Set when the body (or a header) was cut short for the example. */
  readonly clipped?: true;
  readonly note?: string;
}

/** Where a pair differs, or differed only as noise. */
export interface ExampleMark {
  readonly kind: DifferenceKind;
  /** As in Difference: a JSON Pointer, a header name, "status" or "error". */
  readonly path: string;
  readonly template: string;
}

/**
 * One differing pair in full, for looking at side by side: both answers
 * (status, headers, body) and which nodes really differ or are noise.
 * Kept for recent events and for the latest of each finding.
 */
export interface PairExample {
  readonly primary: ExampleSide;
  readonly shadow: ExampleSide;
  readonly differing: readonly ExampleMark[];
  readonly noise: readonly ExampleMark[];
}

/** What comparing one pair against one shadow target yields. */
export interface CompareOutcome {
  /** Present only when the pair really differs. */
  readonly event?: DiffEventBody;
  /** With an event: the pair itself, bounded. */
  readonly example?: PackedExample;
  readonly counts: ShadowCounts;
}

/**
 * What the store (or a forwarder to it) takes: one pair's outcome, or what
 * a comparing thread reports for the pairs of one report window, each
 * route's counts added up (no event) and each event apart (no counts: they
 * are in the sum).
 */
export type ReportedOutcome = CompareOutcome | { readonly counts?: undefined; readonly event: DiffEventBody; readonly example?: PackedExample };

/**
 * An example as it travels from a comparing thread and is kept: its marks
 * (which findings it shows) in the open, the whole as JSON text, parsed only
 * when someone asks to see it. As object trees, the examples the store keeps
 * (two bodies of up to 32 KB each) made the serving thread's scavenges take
 * 10-20 ms under 100 differing pairs a second; a flat string has nothing in
 * it for the collector to trace or copy. The store keeps it as UTF-8 bytes
 * (examples.ts says why).
 */
export interface PackedExample {
  readonly differing: readonly ExampleMark[];
  readonly noise: readonly ExampleMark[];
  /** JSON of the PairExample. */
  readonly json: string;
}
