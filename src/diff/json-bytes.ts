/**
 * JSON.parse over a Buffer, in pieces small enough for V8's young
 * generation, sharing what another answer has byte for byte.
 *
 * Why pieces: V8 keeps every object over 128 KB (a one-byte string of
 * 128 K characters, a two-byte one of 64 K) in its large-object space, on
 * pages of its own that are mapped for it and unmapped when it dies.
 * Decoding a 150 KB answer into one string to parse it costs those pages'
 * faults each time: about 0.6 ms per answer on a virtual machine where a
 * fault is dear. Parsed in pieces of at most 16 KB, nothing large is
 * allocated.
 *
 * Why sharing: a shadow's answer is mostly the primary's, byte for byte.
 * Given the primary's parse, a child of a large container whose bytes are
 * the primary's child's at the same place takes the primary's parsed value
 * itself: it is not parsed again, and the comparison's walk, which starts
 * with `a === b`, passes over it at once. Parsed trees are never changed
 * after parsing, so sharing them is safe.
 *
 * How: the direct children of a large array or object are found by one pass
 * over the bytes (depth and strings only), runs of small children are
 * parsed together by JSON.parse as `[run]` or `{run}`, and a child that is
 * itself large is split the same way, a few levels down at most.
 *
 * Why the result is JSON.parse's: the pieces are contiguous slices of the
 * text cut at commas. If every piece parses, the original text is those
 * pieces' values joined by the same commas and brackets; JSON's grammar
 * gives a text one parse only, so that is it. (A shared child's bytes are
 * the same as a slice that parsed.) When a piece does not parse (the text
 * is not JSON, or the pass was misled by it), the whole text goes to
 * JSON.parse, which gives the same value or the same error as before.
 *
 * Why deferring: the primary's answer is parsed first, and most of it only
 * to be found equal to the shadow's. With `defer`, the small children of
 * its split containers are checked to be JSON by a scan of their bytes
 * (isJsonValue: nothing allocated) and left `Unparsed`; the shadow's parse
 * shares those whose bytes are the same, and the comparison parses a
 * deferred child only when it differs (`resolve`). A 150 KB array with one
 * value in a thousand items changed: the primary's parse 0.63 against 1.32
 * ms, the shadow's 0.4 ms either way, and the shadow thread's CPU per pair
 * 0.85x in the heavy-shadow bench. A pair that shares nothing (the same
 * JSON laid out otherwise) costs 1.10x: the scan comes on top of the
 * parse. A tree with deferred children is read through `resolve` (one
 * level) or `plain` (all of it), as compare.ts and values.ts do.
 */

/**
 * Bodies up to this size are parsed whole: below V8's large-object size
 * even as two-byte text. Splitting smaller ones pays when the other side
 * shares most of its bytes (a 60 KB pair with one difference: 0.73× the
 * CPU) but not when it shares none (the same pair serialized with other
 * whitespace: 1.4×).
 */
const WHOLE_MAX = 60 * 1024;
/** Children are parsed together in runs of up to this many bytes (as two-byte text, still far below 128 KB). */
const PIECE_MAX = 16 * 1024;
/** Large children are split this many levels down; deeper ones are parsed whole. */
const MAX_SPLIT_DEPTH = 8;
/**
 * A body with more children than this in its split containers is parsed
 * whole: each child's record takes about 80 bytes, and a 4 MB array of
 * small numbers has two million children. (The comparison walks 50,000
 * nodes at most anyway.)
 */
const MAX_CHILDREN = 50_000;

const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;

const isSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const MINUS = 0x2d;

/** For each byte: 1 if it may follow a backslash in a JSON string ("u" is 2: four hex digits follow), 4 if a hex digit. */
const ESCAPE = 1;
const UNICODE_ESCAPE = 2;
const HEX = 4;
const BYTE_CLASS = new Uint8Array(256);
for (const c of '"\\/bfnrt') BYTE_CLASS[c.charCodeAt(0)]! |= ESCAPE;
BYTE_CLASS[0x75] = UNICODE_ESCAPE;
for (const c of '0123456789abcdefABCDEF') BYTE_CLASS[c.charCodeAt(0)]! |= HEX;

const LITERALS = [Buffer.from('true'), Buffer.from('false'), Buffer.from('null')] as const;

/** The index after the JSON string whose quote is at `i`, or -1 when it is not one (a control character, a bad escape, no end before `end`). */
function afterJsonString(bytes: Buffer, i: number, end: number): number {
  for (i++; i < end; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) return i + 1;
    if (c < 0x20) return -1;
    if (c !== BACKSLASH) continue;
    if (++i >= end) return -1;
    const kind = BYTE_CLASS[bytes[i]!]!;
    if (kind === UNICODE_ESCAPE) {
      if (i + 4 >= end) return -1;
      if (!(BYTE_CLASS[bytes[i + 1]!]! & BYTE_CLASS[bytes[i + 2]!]! & BYTE_CLASS[bytes[i + 3]!]! & BYTE_CLASS[bytes[i + 4]!]! & HEX)) return -1;
      i += 4;
    } else if (!(kind & ESCAPE)) return -1;
  }
  return -1;
}

/** The index after the digits from `i` (before `end`). */
function afterDigits(bytes: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = bytes[i]!;
    if (c < DIGIT_0 || c > DIGIT_9) break;
    i++;
  }
  return i;
}

/** The index after the JSON number at `i` (before `end`), or -1. */
function afterJsonNumber(bytes: Buffer, i: number, end: number): number {
  if (bytes[i] === MINUS) i++;
  if (i >= end) return -1;
  const first = bytes[i]!;
  if (first === DIGIT_0) i++;
  else if (first > DIGIT_0 && first <= DIGIT_9) i = afterDigits(bytes, i + 1, end);
  else return -1;
  if (i < end && bytes[i] === 0x2e /* . */) {
    const from = ++i;
    i = afterDigits(bytes, i, end);
    if (i === from) return -1;
  }
  if (i < end && (bytes[i]! | 0x20) === 0x65 /* e E */) {
    i++;
    if (i < end && (bytes[i] === 0x2b || bytes[i] === MINUS)) i++;
    const from = i;
    i = afterDigits(bytes, i, end);
    if (i === from) return -1;
  }
  return i;
}

function afterSpace(bytes: Buffer, i: number, end: number): number {
  while (i < end && isSpace(bytes[i])) i++;
  return i;
}

/** The index after `"key" :` at i (space before it allowed), or -1. */
function afterMemberKey(bytes: Buffer, i: number, end: number): number {
  i = afterSpace(bytes, i, end);
  if (i >= end || bytes[i] !== QUOTE) return -1;
  i = afterJsonString(bytes, i, end);
  if (i < 0) return -1;
  i = afterSpace(bytes, i, end);
  return i < end && bytes[i] === COLON ? i + 1 : -1;
}

/**
 * Whether bytes[from, to) hold exactly one JSON value, whitespace around it
 * allowed: what JSON.parse accepts of text known to be UTF-8, checked
 * without making anything (one pass, its nesting on a stack of brackets).
 */
export function isJsonValue(bytes: Buffer, from: number, to: number): boolean {
  const closers: number[] = [];
  let i = from;
  // Each turn reads one value, then what follows it up to the next value.
  for (;;) {
    i = afterSpace(bytes, i, to);
    if (i >= to) return false;
    const c = bytes[i]!;
    if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      const close = c === OPEN_ARRAY ? CLOSE_ARRAY : CLOSE_OBJECT;
      i = afterSpace(bytes, i + 1, to);
      if (i < to && bytes[i] === close) i++;
      else {
        closers.push(close);
        if (close === CLOSE_OBJECT && (i = afterMemberKey(bytes, i, to)) < 0) return false;
        continue;
      }
    } else if (c === QUOTE) i = afterJsonString(bytes, i, to);
    else if (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9)) i = afterJsonNumber(bytes, i, to);
    else {
      const word = c === 0x74 ? LITERALS[0] : c === 0x66 ? LITERALS[1] : c === 0x6e ? LITERALS[2] : undefined;
      if (!word || i + word.length > to || bytes.compare(word, 0, word.length, i, i + word.length) !== 0) return false;
      i += word.length;
    }
    if (i < 0) return false;
    // After a value: closing brackets, then a comma before the next value, or the end.
    for (;;) {
      i = afterSpace(bytes, i, to);
      const close = closers[closers.length - 1];
      if (close === undefined) return i === to;
      if (i >= to) return false;
      const next = bytes[i]!;
      if (next === close) {
        closers.pop();
        i++;
        continue;
      }
      if (next !== COMMA) return false;
      i++;
      if (close === CLOSE_OBJECT && (i = afterMemberKey(bytes, i, to)) < 0) return false;
      break;
    }
  }
}

/** The pass was misled (the text is not JSON, or nests too deep): parse it whole instead. */
class NotSplit extends Error {}

/** Sets a parsed member as JSON.parse does: an own "__proto__" is a key like any other. */
function setMember(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}

/** A child whose value is not known on its own (a run of object members with a repeated key): never shared. */
const UNKNOWN = Symbol('unknown');

const PENDING = Symbol('pending');

/**
 * A deferred child: bytes already known to be one JSON value, parsed when
 * first asked for. Shared by both sides of a pair when their bytes are the
 * same, so the comparison passes over it by identity.
 */
export class Unparsed {
  private parsed: unknown = PENDING;
  /** Taken as its own by another answer's parse: its neighbours are not parsed with it (it is seldom asked for). */
  shared = false;
  constructor(
    private readonly layout: Layout,
    private readonly index: number,
    private readonly from: number,
    private readonly to: number,
  ) {}

  /** JSON.parse of its bytes (once). */
  value(): unknown {
    if (this.parsed === PENDING) this.parse();
    return this.parsed;
  }

  /** JSON.stringify of a tree holding it writes its value. */
  toJSON(): unknown {
    return this.value();
  }

  /**
   * Parses it, and the deferred parts after it that no other answer shares,
   * together as the eager parse would (up to PIECE_MAX bytes): when little
   * is shared, the walk asks for them next, and one JSON.parse per part
   * would cost a pair with nothing shared 1.2x.
   */
  private parse(): void {
    const { bytes, array, children } = this.layout;
    const run: Unparsed[] = [this];
    const first = children[this.index]!;
    let last = first;
    for (let i = this.index + 1; i < children.length; i++) {
      const next = children[i]!;
      const part = next.value;
      if (!(part instanceof Unparsed) || part.parsed !== PENDING || part.shared || next.to - first.from > PIECE_MAX) break;
      run.push(part);
      last = next;
    }
    if (run.length > 1) {
      const text = bytes.toString('utf8', first.from, last.to);
      if (array) {
        const values = JSON.parse('[' + text + ']') as unknown[];
        run.forEach((part, k) => (part.parsed = values[k]));
        return;
      }
      const members = JSON.parse('{' + text + '}') as Record<string, unknown>;
      // A key repeated within the run: its members' values are not known one by one.
      if (Object.keys(members).length === run.length) {
        for (const part of run) part.parsed = members[children[part.index]!.key!];
        return;
      }
    }
    this.parsed = JSON.parse(bytes.toString('utf8', this.from, this.to));
  }
}

/** Containers made from split children: the only values that may hold an `Unparsed`. */
const assembled = new WeakSet<object>();

/** `value` with a deferred child parsed (one level: its members may still be deferred). */
export const resolve = (value: unknown): unknown => (value instanceof Unparsed ? value.value() : value);

/** `value` with nothing deferred left in it, at any depth: what leaves the comparison. */
export function plain(value: unknown): unknown {
  if (value instanceof Unparsed) return value.value();
  if (value === null || typeof value !== 'object' || !assembled.has(value)) return value;
  if (Array.isArray(value)) return value.map(plain);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) setMember(out, key, plain((value as Record<string, unknown>)[key]));
  return out;
}

/**
 * One direct child of a split container. A class, not an object literal:
 * V8 tracks where literals are allocated and, seeing a site's objects
 * survive scavenges (these live as long as the pair's comparison), starts
 * allocating them in the old generation, which then needs a mark-compact
 * every few pairs. Measured: 73-75 mark-compacts in 13 s of 150 KB pairs
 * with literals, 3 with pretenuring off.
 */
class Child {
  /** An object member's key. */
  key: string | undefined = undefined;
  value: unknown = UNKNOWN;
  /** Members parsed together whose values are not known one by one (a key repeated among them), on the first of them. */
  merged: Record<string, unknown> | undefined = undefined;
  /** Set when the child was large enough to be split in turn. */
  layout: Layout | undefined = undefined;
  constructor(
    readonly from: number,
    readonly to: number,
  ) {}
}

/** How a large container was split: its children's byte ranges and parsed values. */
export interface Layout {
  readonly bytes: Buffer;
  readonly array: boolean;
  readonly children: readonly Child[];
}

/** A parsed JSON body, and (when it was large enough to be split) how it was split. */
export interface ParsedJson {
  readonly value: unknown;
  readonly layout?: Layout;
}

const sameBytes = (a: Buffer, aFrom: number, aTo: number, b: Buffer, bFrom: number, bTo: number) =>
  aTo - aFrom === bTo - bFrom && a.compare(b, bFrom, bTo, aFrom, aTo) === 0;

class Splitter {
  /** Child records made so far (MAX_CHILDREN). */
  private made = 0;

  constructor(
    private readonly bytes: Buffer,
    /** Small children are checked and left unparsed (the header says why). */
    private readonly defer: boolean,
  ) {}

  private text(start: number, end: number): string {
    return this.bytes.toString('utf8', start, end);
  }

  /** The value in [start, end), whitespace around it allowed; `reference` is the other body's split of the same place. */
  value(start: number, end: number, depth: number, reference: Layout | undefined): ParsedJson {
    const bytes = this.bytes;
    while (start < end && isSpace(bytes[start])) start++;
    while (end > start && isSpace(bytes[end - 1])) end--;
    const open = bytes[start];
    if (end - start <= PIECE_MAX || (open !== OPEN_ARRAY && open !== OPEN_OBJECT)) return { value: JSON.parse(this.text(start, end)) };
    if (depth >= MAX_SPLIT_DEPTH) throw new NotSplit();
    const array = open === OPEN_ARRAY;
    const children = this.children(start, end, array ? CLOSE_ARRAY : CLOSE_OBJECT);
    const layout: Layout = { bytes, array, children };
    const like = reference?.array === array ? reference : undefined;
    let runFrom = -1;
    const flush = (upTo: number) => {
      if (runFrom >= 0) this.parseRun(layout, runFrom, upTo);
      runFrom = -1;
    };
    for (let i = 0; i < children.length; i++) {
      const child = children[i]!;
      const theirs = like?.children[i];
      if (theirs && theirs.value !== UNKNOWN && sameBytes(bytes, child.from, child.to, like.bytes, theirs.from, theirs.to)) {
        flush(i);
        child.value = theirs.value;
        if (theirs.value instanceof Unparsed) theirs.value.shared = true;
        if (!array) child.key = theirs.key!;
        continue;
      }
      if (child.to - child.from > PIECE_MAX) {
        flush(i);
        this.large(child, array, depth, theirs?.layout);
        continue;
      }
      if (this.defer) {
        this.deferred(layout, i);
        continue;
      }
      if (runFrom >= 0 && child.to - children[runFrom]!.from > PIECE_MAX) flush(i);
      if (runFrom < 0) runFrom = i;
    }
    flush(children.length);
    return { value: assemble(layout), layout };
  }

  /** Parses children [first, end) of the container together. */
  private parseRun(layout: Layout, first: number, end: number): void {
    const children = layout.children as Child[];
    const text = this.text(children[first]!.from, children[end - 1]!.to);
    if (layout.array) {
      const part = JSON.parse('[' + text + ']') as unknown[];
      if (part.length !== end - first) throw new NotSplit();
      for (let i = first; i < end; i++) children[i]!.value = part[i - first];
      return;
    }
    const part = JSON.parse('{' + text + '}') as Record<string, unknown>;
    const keys = Object.keys(part);
    if (keys.length !== end - first) {
      // A key repeated within the run: its members' values are not known one by one.
      children[first]!.merged = part;
      return;
    }
    for (let i = first; i < end; i++) {
      const key = keys[i - first]!;
      children[i]!.key = key;
      children[i]!.value = part[key];
    }
  }

  /** Where an object member's value starts, its key set on the child (parsed, so checked). */
  private memberValue(child: Child): number {
    const bytes = this.bytes;
    const from = afterSpace(bytes, child.from, child.to);
    if (bytes[from] !== QUOTE) throw new NotSplit();
    const keyEnd = afterJsonString(bytes, from, child.to);
    if (keyEnd < 0) throw new NotSplit();
    const colon = afterSpace(bytes, keyEnd, child.to);
    if (bytes[colon] !== COLON) throw new NotSplit();
    child.key = JSON.parse(this.text(from, keyEnd)) as string;
    return colon + 1;
  }

  /** A child too large to parse with others: split in turn. */
  private large(child: Child, array: boolean, depth: number, reference: Layout | undefined): void {
    const from = array ? child.from : this.memberValue(child);
    const parsed = this.value(from, child.to, depth + 1, reference);
    child.value = parsed.value;
    if (parsed.layout) child.layout = parsed.layout;
  }

  /** A small child, checked and left to be parsed when asked for. */
  private deferred(layout: Layout, index: number): void {
    const child = layout.children[index]!;
    const from = layout.array ? child.from : this.memberValue(child);
    if (!isJsonValue(this.bytes, from, child.to)) throw new NotSplit();
    child.value = new Unparsed(layout, index, from, child.to);
  }

  /** The direct children's ranges of the container in [start, end) (brackets included), checking that its brackets balance. */
  private children(start: number, end: number, close: number): Child[] {
    const bytes = this.bytes;
    if (bytes[end - 1] !== close) throw new NotSplit();
    const last = end - 1;
    const children: Child[] = [];
    let depth = 0;
    let from = start + 1;
    for (let i = start + 1; i < last; i++) {
      const c = bytes[i];
      if (c === QUOTE) {
        const after = afterJsonString(bytes, i, last);
        if (after < 0) throw new NotSplit();
        i = after - 1;
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) depth++;
      else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        if (--depth < 0) throw new NotSplit();
      } else if (c === COMMA && depth === 0) {
        if (++this.made > MAX_CHILDREN) throw new NotSplit();
        children.push(new Child(from, i));
        from = i + 1;
      }
    }
    if (depth !== 0) throw new NotSplit();
    let rest = from;
    while (rest < last && isSpace(bytes[rest])) rest++;
    // [] and {} have no child; after a comma an empty child is an error JSON.parse reports.
    if (rest < last || children.length > 0) children.push(new Child(from, last));
    return children;
  }
}

/** The container's value from its children's. */
function assemble(layout: Layout): unknown {
  if (layout.array) {
    const out = layout.children.map((child) => child.value);
    assembled.add(out);
    return out;
  }
  const out: Record<string, unknown> = {};
  assembled.add(out);
  for (const child of layout.children) {
    if (child.merged) for (const key of Object.keys(child.merged)) setMember(out, key, child.merged[key]);
    else if (child.value !== UNKNOWN) setMember(out, child.key!, child.value);
  }
  return out;
}

const BOM = [0xef, 0xbb, 0xbf] as const;

/**
 * JSON.parse of UTF-8 bytes (a leading byte-order mark skipped): the same
 * value, or the same SyntaxError. The caller has checked the bytes are UTF-8.
 * With `reference` (another body's parse), children with the same bytes at
 * the same place share its values. With `defer`, a large body's small
 * children are left `Unparsed` (read the value through `plain`/`resolve`).
 */
export function parseJsonBytes(bytes: Buffer, reference?: ParsedJson, defer = false): ParsedJson {
  const start = bytes[0] === BOM[0] && bytes[1] === BOM[1] && bytes[2] === BOM[2] ? 3 : 0;
  const size = bytes.length - start;
  if (size <= WHOLE_MAX) return { value: JSON.parse(bytes.toString('utf8', start)) };
  try {
    return new Splitter(bytes, defer).value(start, bytes.length, 0, reference?.layout);
  } catch {
    // Not JSON, or not splittable: JSON.parse of the whole says which, with its own message.
    return { value: JSON.parse(bytes.toString('utf8', start)) };
  }
}
