/**
 * Mirrored pairs across the thread boundary. Captured bodies own their
 * memory (see shadow/capture.ts), so they are transferred, not copied: the
 * serving thread gives them up. Structured cloning turns Buffers into plain
 * Uint8Arrays; the comparing side makes them Buffers again over the same
 * memory. Reports come back in the shadow thread's batches
 * (shadow/shadow-wire.ts), several a message: one message per report (three
 * a pair) cost the thread more time posting than comparing small answers,
 * and the serving thread one wake-up each. A turn's counts are added up
 * per route before they leave (ThreadComparisons).
 */
import type { CapturedResponse, MirroredPair, ShadowResult } from './pair.js';
import type { DiffEventBody, PackedExample, ShadowCounts } from './types.js';

/** The pairs handed over in one turn of the serving thread's loop: one message, one wake-up of the thread. */
export type ToComparing = { readonly type: 'pairs'; readonly pairs: readonly MirroredPair[] };

/**
 * What comparing reports in one turn of a thread's loop: each route's
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
  const add = (body: Uint8Array | undefined) => {
    const buffer = body?.buffer;
    // A slice of a shared buffer (Node's pool) is copied instead: moving it would take its neighbours too.
    if (buffer instanceof ArrayBuffer && body!.byteOffset === 0 && body!.byteLength === buffer.byteLength && buffer.byteLength > 0) out.add(buffer);
  };
  add(pair.primary.body);
  for (const s of pair.shadows) add(s.result.response?.body);
  add(pair.baseline?.result.response?.body);
  return [...out];
}

/** Bytes a pair holds while it waits for comparison. */
export function pairBytes(pair: MirroredPair): number {
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
