/**
 * The shapes comparison produces and the diff store serves. Everything here
 * is plain JSON, so a worker process can compare its own pairs and send the
 * results to the process that serves /diffs.
 */

/** `call`: a dependency call the dark version made differently, never made, or made extra (src/egress/). */
export type DifferenceKind = 'status' | 'header' | 'body' | 'error' | 'call';
export const DIFFERENCE_KINDS: readonly DifferenceKind[] = ['status', 'header', 'body', 'error', 'call'];

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
   * body: a JSON Pointer ("" is the whole body); header: the lower-cased
   * header name; status: "status"; error: "error".
   */
  readonly path: string;
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
  /** A captured body was cut at diff.maxBodyBytes: only the prefix was compared. */
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
  /** Pairs not compared because comparison fell behind. */
  dropped: number;
  /** Differences masked as noise. */
  noiseMasked: number;
  /** Pairs with at least one real difference of each kind. */
  readonly kinds: Record<DifferenceKind, number>;
  readonly paths: PathCounts[];
  /** Paths not tracked separately once the per-target path limit was reached. */
  pathsOmitted: number;
  readonly latency: LatencyCounts;
}

/** What comparing one pair against one shadow target yields. */
export interface CompareOutcome {
  /** Present only when the pair really differs. */
  readonly event?: DiffEventBody;
  readonly counts: ShadowCounts;
}
