/**
 * Mirrored pairs across the thread boundary. Captured bodies own their
 * memory (see shadow/capture.ts), so they are transferred, not copied: the
 * serving thread gives them up. Structured cloning turns Buffers into plain
 * Uint8Arrays; the comparing side makes them Buffers again over the same
 * memory. Reports come back in the shadow thread's batches
 * (shadow/shadow-wire.ts), several a message: one message per report (three
 * a pair) cost the thread more time posting than comparing small answers,
 * and the serving thread one wake-up each. The counts are added up per
 * route before they leave (ThreadComparisons), at most every 50 ms
 * (shadow/shadow-thread.ts, REPORT_WINDOW_MS).
 */
import type { DiffConfig } from '../config/types.js';
import type { CapturedResponse, MirroredPair, ShadowResult } from './pair.js';
import type { DiffEventBody, PackedExample, ShadowCounts } from './types.js';

/** A pair on its way to a thread: its route's diff settings by id (DiffConfigsSent). */
export type WirePair = Omit<MirroredPair, 'diff'> & { readonly diffId: number };

/**
 * The pairs handed over in one turn of the serving thread's loop: one
 * message, one wake-up of the thread. With them, the diff settings the
 * thread has not been sent yet, and the ids it may forget.
 */
export interface ToComparing {
  readonly type: 'pairs';
  readonly pairs: readonly WirePair[];
  readonly configs: readonly (readonly [number, DiffConfig])[];
  readonly forget: readonly number[];
}

/** Diff settings a thread keeps, at most: past it the oldest are forgotten (and sent again when needed). */
const KEPT_CONFIGS = 256;

let nextDiffId = 1;
const diffIds = new WeakMap<DiffConfig, number>();

/**
 * What one thread has been sent of the routes' diff settings (serving
 * side). A route's settings cross once, then only their id: sent with
 * every pair, they cost about 10 µs to serialise here, and in the thread
 * 7 µs to read back and 45 µs to compile again (ignore rules, endpoint
 * templates, tolerances: cached per settings object, which a clone never
 * is) for a route with a few of each.
 */
export class DiffConfigsSent {
  /** Ids the thread holds, oldest first: it applies the same additions and forgets in the same order. */
  private readonly held = new Set<number>();

  /** The message for `pairs`, and what to note once it is posted (not before: a post that throws sent nothing). */
  wire(pairs: readonly MirroredPair[]): { readonly message: ToComparing; readonly posted: () => void } {
    const configs: [number, DiffConfig][] = [];
    const used = new Set<number>();
    const wired: WirePair[] = [];
    for (const { diff, ...pair } of pairs) {
      let diffId = diffIds.get(diff);
      if (diffId === undefined) diffIds.set(diff, (diffId = nextDiffId++));
      if (!this.held.has(diffId) && !used.has(diffId)) configs.push([diffId, diff]);
      used.add(diffId);
      // The rest is already a new object: the id goes onto it rather than into another copy.
      wired.push(Object.assign(pair, { diffId }));
    }
    const forget: number[] = [];
    let over = this.held.size + configs.length - KEPT_CONFIGS;
    for (const id of this.held) {
      if (over <= 0) break;
      if (used.has(id)) continue;
      forget.push(id);
      over--;
    }
    const posted = () => {
      for (const id of forget) this.held.delete(id);
      for (const [id] of configs) this.held.add(id);
    };
    return { message: { type: 'pairs', pairs: wired, configs, forget }, posted };
  }
}

/** The diff settings a thread was sent (thread side): applies a message's forgets and additions, then finds each pair's. */
export class DiffConfigsReceived {
  private readonly configs = new Map<number, DiffConfig>();

  /** The message's pairs with their settings; one whose settings are unknown (a bug) is left out and counted in `unknown`. */
  pairs(message: ToComparing): { readonly pairs: MirroredPair[]; readonly unknown: number } {
    for (const id of message.forget) this.configs.delete(id);
    for (const [id, diff] of message.configs) this.configs.set(id, diff);
    const pairs: MirroredPair[] = [];
    let unknown = 0;
    for (const { diffId, ...pair } of message.pairs) {
      const diff = this.configs.get(diffId);
      if (diff) pairs.push({ ...pair, diff });
      else unknown++;
    }
    return { pairs, unknown };
  }
}

/**
 * What comparing reports in one message (at most every 50 ms): each route's
 * counts added up, each event apart, a route's latency ratio, and how many
 * pairs are done.
 */
export type Reported =
  | { readonly type: 'counts'; readonly counts: ShadowCounts }
  | { readonly type: 'event'; readonly event: DiffEventBody; readonly example?: PackedExample }
  | { readonly type: 'latency'; readonly route: string; readonly shadow: string; readonly ratio: number }
  | { readonly type: 'done'; readonly pairs: number };

/** The memory of a pair's bodies that can move with it: each body's own whole buffer, once. */
export function transferables(pair: MirroredPair): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  addOwnBuffer(out, pair.primary.body);
  for (const s of pair.shadows) addOwnBuffer(out, s.result.response?.body);
  addOwnBuffer(out, pair.baseline?.result.response?.body);
  return [...out];
}

function addOwnBuffer(out: Set<ArrayBuffer>, body: Uint8Array | undefined): void {
  const buffer = body?.buffer;
  // A slice of a shared buffer (Node's pool) is copied instead: moving it would take its neighbours too.
  if (buffer instanceof ArrayBuffer && body!.byteOffset === 0 && body!.byteLength === buffer.byteLength && buffer.byteLength > 0) out.add(buffer);
}

/** Bytes a pair holds while it waits for comparison. */
export function pairBytes(pair: Pick<MirroredPair, 'primary' | 'shadows' | 'baseline'>): number {
  let bytes = pair.primary.body.length + (pair.baseline?.result.response?.body.length ?? 0);
  for (const s of pair.shadows) bytes += s.result.response?.body.length ?? 0;
  return bytes;
}

const asBuffer = (bytes: Uint8Array): Buffer => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));

const response = (r: CapturedResponse): CapturedResponse => ({ ...r, body: asBuffer(r.body) });
const result = (r: ShadowResult): ShadowResult => (r.response ? { ...r, response: response(r.response) } : r);

interface Bodied {
  readonly body: Uint8Array;
  readonly response?: { readonly body: Uint8Array };
}
const call = <T extends Bodied>(c: T): T => ({ ...c, body: asBuffer(c.body), ...(c.response ? { response: { ...c.response, body: asBuffer(c.response.body) } } : {}) });

/** A pair as it arrives on the shadow thread, with Buffers again. */
export function fromThread(pair: MirroredPair): MirroredPair {
  const calls = pair.calls;
  return {
    ...pair,
    primary: response(pair.primary),
    shadows: pair.shadows.map((s) => ({ ...s, result: result(s.result) })),
    baseline: pair.baseline && { ...pair.baseline, result: result(pair.baseline.result) },
    ...(calls ? { calls: { ...calls, live: calls.live.map(call), dark: calls.dark.map(call), baseline: calls.baseline.map(call) } } : {}),
  };
}
