/**
 * Example pairs: a differing pair's two answers in full (bounded), so a
 * person can look at one side by side. Made in the compare step (possibly in
 * a worker, hence plain JSON) and kept by the store for the most recent
 * events and for the latest event of each finding (route, shadow target,
 * kind, template path), within fixed bounds.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CapturedResponse } from './pair.js';
import type { Lifted } from './lift.js';
import type { IgnoreRules } from './paths.js';
import { isSecretHeader, REDACTED } from './secrets.js';
import { round } from './stats.js';
import type { DiffEvent, ExampleBody, ExampleMark, ExampleSide, PackedExample, PairExample } from './types.js';
import { clipString, keepValue } from './values.js';

export interface ExampleLimits {
  /** JSON or text characters kept per body. */
  readonly maxBodyChars: number;
  readonly maxHeaders: number;
  readonly maxHeaderChars: number;
  /** Differing and noise marks kept, each. */
  readonly maxMarks: number;
}

export const DEFAULT_EXAMPLE_LIMITS: ExampleLimits = { maxBodyChars: 32 * 1024, maxHeaders: 64, maxHeaderChars: 1024, maxMarks: 256 };

function headersOf(headers: IncomingHttpHeaders, limits: ExampleLimits): { headers: Record<string, string>; clipped: boolean } {
  const out: Record<string, string> = {};
  let clipped = false;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Object.keys(out).length >= limits.maxHeaders) {
      clipped = true;
      break;
    }
    const text = Array.isArray(value) ? value.join(', ') : String(value);
    // Cookies a service sets are credentials too.
    const secret = isSecretHeader(name) || name === 'set-cookie';
    const kept = secret ? REDACTED : clipString(text, limits.maxHeaderChars);
    clipped ||= kept.length > text.length || (!secret && kept !== text);
    out[name] = kept;
  }
  return { headers: out, clipped };
}

function bodyOf(lifted: Lifted, rules: IgnoreRules, limits: ExampleLimits): { body: ExampleBody; clipped: boolean } {
  switch (lifted.format) {
    case 'empty':
      return { body: { format: 'empty' }, clipped: false };
    case 'json': {
      const kept = keepValue(lifted.value, '', rules, limits.maxBodyChars);
      return kept.clipped ? { body: { format: 'text', text: String(kept.value) }, clipped: true } : { body: { format: 'json', value: kept.value }, clipped: false };
    }
    // A tree is shown as the markup it was parsed from.
    case 'html':
    case 'text': {
      const text = clipString(lifted.text, limits.maxBodyChars);
      return { body: { format: 'text', text }, clipped: text !== lifted.text };
    }
    case 'binary':
      return { body: { format: 'binary', bytes: lifted.bytes, sha256: lifted.sha256 }, clipped: false };
  }
}

/** One side of an example: an answer, or why there was none. */
export function exampleSide(
  upstream: string,
  answer: { response: CapturedResponse; lifted: Lifted } | { error: string; latencyMs: number },
  rules: IgnoreRules,
  limits: ExampleLimits = DEFAULT_EXAMPLE_LIMITS,
): ExampleSide {
  if ('error' in answer) {
    return { upstream, status: null, latencyMs: round(answer.latencyMs, 1), headers: {}, body: { format: 'none', error: answer.error } };
  }
  const headers = headersOf(answer.response.headers, limits);
  const body = bodyOf(answer.lifted, rules, limits);
  const clipped = headers.clipped || body.clipped || answer.response.truncated;
  return {
    upstream,
    status: answer.response.status,
    latencyMs: round(answer.response.latencyMs, 1),
    headers: headers.headers,
    body: body.body,
    ...(clipped ? { clipped: true as const } : {}),
    ...(answer.lifted.note !== undefined ? { note: answer.lifted.note } : {}),
  };
}

/** Marks, deduplicated and bounded. */
export class MarkList {
  readonly marks: ExampleMark[] = [];
  private readonly seen = new Set<string>();
  constructor(private readonly max = DEFAULT_EXAMPLE_LIMITS.maxMarks) {}
  add(mark: ExampleMark): void {
    const key = mark.kind + '\u0000' + mark.path;
    if (this.marks.length >= this.max || this.seen.has(key)) return;
    this.seen.add(key);
    this.marks.push(mark);
  }
}

export interface ExampleStoreOptions {
  /** Examples kept for the most recent events. */
  readonly recent?: number;
  /** Findings whose latest example is kept. */
  readonly findings?: number;
  /** Bytes of examples kept at most (their JSON as UTF-8). */
  readonly maxBytes?: number;
}

/** About a hundred examples of large bodies (two clipped at 32 K characters), thousands of small ones. */
const DEFAULT_EXAMPLE_BYTES = 8 * 1024 * 1024;

export interface StoredExample {
  readonly event: DiffEvent;
  readonly example: PairExample;
}

export function packExample(example: PairExample): PackedExample {
  return { differing: example.differing, noise: example.noise, json: JSON.stringify(example) };
}

/** The example from its JSON, as it travels (a string) or as the store keeps it (UTF-8 bytes). */
export function unpackExample(packed: { readonly json: string | Buffer }): PairExample {
  return JSON.parse(packed.json.toString()) as PairExample;
}

export const findingKey = (route: string, shadow: string, kind: string, template: string) => [route, shadow, kind, template].join('\u0000');

export interface ExampleSamplerOptions {
  /** Examples a second for recent events, beyond findings' first and renewed ones. */
  readonly perSecond?: number;
  /** A finding's example is renewed at most this often. */
  readonly refreshMs?: number;
  /** Findings remembered (the oldest are forgotten first). */
  readonly maxFindings?: number;
}

/**
 * Which differing pairs get an example made. Making one (both bodies kept,
 * clipped and serialized) costs the shadow thread, and above all the
 * serving thread that receives and keeps it: examples for each of 100
 * differing pairs a second (100 KB JSON answers) took the process's peak
 * RSS from 207 to 313 MB and its heap from 32 to 119 MB. What the store
 * keeps is read by people, a few a second at most. So a finding never seen
 * gets an example at once, a finding's example is renewed at most every
 * `refreshMs`, and recent events get at most `perSecond` more.
 */
export class ExampleSampler {
  private readonly perSecond: number;
  private readonly refreshMs: number;
  private readonly maxFindings: number;
  /** Finding key → when its example was last made; oldest first. */
  private readonly lastMade = new Map<string, number>();
  private tokens: number;
  private refilledAt = 0;

  constructor(options: ExampleSamplerOptions = {}) {
    this.perSecond = options.perSecond ?? 4;
    this.refreshMs = options.refreshMs ?? 10_000;
    this.maxFindings = options.maxFindings ?? 4096;
    this.tokens = this.perSecond;
  }

  /** Whether to make this pair's example; counts it as made when so. */
  wants(route: string, shadow: string, marks: readonly ExampleMark[], now: number): boolean {
    // Loops, not callbacks made per call (bench/README.md, "Closures made per call").
    const keys: string[] = [];
    let due = false;
    for (const m of marks) {
      const key = findingKey(route, shadow, m.kind, m.template);
      keys.push(key);
      const last = this.lastMade.get(key);
      if (last === undefined || now - last >= this.refreshMs) due = true;
    }
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
    if (!due) {
      if (this.tokens < 1) return false;
      this.tokens -= 1;
    }
    for (const key of keys) {
      this.lastMade.delete(key);
      this.lastMade.set(key, now);
    }
    while (this.lastMade.size > this.maxFindings) this.lastMade.delete(this.lastMade.keys().next().value!);
    return true;
  }
}

/** An example as the store keeps it: its JSON as UTF-8 bytes, outside V8's heap. */
interface KeptExample {
  readonly event: DiffEvent;
  readonly differing: readonly ExampleMark[];
  readonly noise: readonly ExampleMark[];
  readonly json: Buffer;
  refs: number;
}

/**
 * Holds at most `recent + findings` examples, and at most `maxBytes` of
 * them: each kept example is referenced by the recent list, by findings,
 * or both, and dropped when nothing refers to it any more.
 *
 * Kept as UTF-8 bytes, not as the JSON string they arrive as: an example
 * of two clipped bodies is a string of about 80 K characters, two bytes
 * each once the clipping's "…" is in it, so each took 160 KB of the
 * serving thread's heap, on pages of their own (V8's large objects). As
 * bytes they take half that, outside the heap. Without a byte bound, 320
 * examples of large bodies could hold 50 MB; past `maxBytes` the oldest
 * recent examples go first, then the oldest findings' (renewed when the
 * finding is next sampled), never the one just kept.
 */
export class ExampleStore {
  private readonly byId = new Map<string, KeptExample>();
  private readonly recentIds: string[] = [];
  private readonly latest = new Map<string, { id: string; noise: boolean }>();
  private readonly maxRecent: number;
  private readonly maxFindings: number;
  private readonly maxBytes: number;
  private heldBytes = 0;

  constructor(options: ExampleStoreOptions = {}) {
    this.maxRecent = options.recent ?? 64;
    this.maxFindings = options.findings ?? 256;
    this.maxBytes = options.maxBytes ?? DEFAULT_EXAMPLE_BYTES;
  }

  get size(): number {
    return this.byId.size;
  }

  /** Bytes of the examples kept. */
  get bytes(): number {
    return this.heldBytes;
  }

  keep(event: DiffEvent, example: PackedExample): void {
    // Event ids are unique per store; one kept twice would count its bytes twice.
    if (this.byId.has(event.id)) return;
    const entry: KeptExample = { event, differing: example.differing, noise: example.noise, json: Buffer.from(example.json, 'utf8'), refs: 0 };
    this.byId.set(event.id, entry);
    this.heldBytes += entry.json.length;
    this.recentIds.push(event.id);
    entry.refs++;
    if (this.recentIds.length > this.maxRecent) this.release(this.recentIds.shift()!);
    // A finding is shown where it really differed; one seen only as noise,
    // where it was masked.
    const pin = (mark: ExampleMark, asNoise: boolean): void => {
      const key = findingKey(event.route, event.shadow.upstream, mark.kind, mark.template);
      const previous = this.latest.get(key);
      if (previous?.id === event.id || (asNoise && previous && !previous.noise)) return;
      if (previous === undefined && this.latest.size >= this.maxFindings) return;
      this.latest.set(key, { id: event.id, noise: asNoise });
      entry.refs++;
      if (previous !== undefined) this.release(previous.id);
    };
    for (const mark of example.differing) pin(mark, false);
    for (const mark of example.noise) pin(mark, true);
    this.shed(event.id);
  }

  /** Drops the oldest examples, recent ones first, until the kept bytes fit (`keep`: the one never dropped). */
  private shed(keep: string): void {
    while (this.heldBytes > this.maxBytes && this.recentIds.length > 1 && this.recentIds[0] !== keep) this.release(this.recentIds.shift()!);
    if (this.heldBytes <= this.maxBytes) return;
    for (const [key, latest] of this.latest) {
      if (this.heldBytes <= this.maxBytes) break;
      if (latest.id === keep) continue;
      this.latest.delete(key);
      this.release(latest.id);
    }
  }

  private release(id: string): void {
    const entry = this.byId.get(id);
    if (!entry || --entry.refs > 0) return;
    this.byId.delete(id);
    this.heldBytes -= entry.json.length;
  }

  get(id: string): StoredExample | undefined {
    const entry = this.byId.get(id);
    return entry && { event: entry.event, example: unpackExample(entry) };
  }

  /** The latest example of a finding, as `diff summary` names it. */
  forFinding(route: string, shadow: string, kind: string, template: string): StoredExample | undefined {
    const latest = this.latest.get(findingKey(route, shadow, kind, template));
    return latest === undefined ? undefined : this.get(latest.id);
  }
}
