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
 * over the bytes (depth and strings only), which also notes those of the
 * large containers inside it; runs of small children are parsed together
 * by JSON.parse as `[run]` or `{run}`, and a child that is itself large is
 * split the same way, a few levels down at most. The other answer's
 * children are found by a walk against the first's split instead: where
 * the bytes are the same, one comparison of memory stands for the scan
 * (`Splitter.walk`). A 150 KB export with one value changed, both sides
 * parsed: 0.63-0.73 ms against 1.25-1.35 before both.
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

/** 1 for the bytes that may not stand as they are inside a JSON string: the quote, the backslash, control characters. One load per byte instead of three comparisons. */
const STRING_STOP = new Uint8Array(256);
STRING_STOP.fill(1, 0, 0x20);
STRING_STOP[QUOTE] = 1;
STRING_STOP[BACKSLASH] = 1;

/** 1 for the bytes that shape a container's top level: brackets, braces, the comma, and the quote that starts a string. */
const SHAPE = new Uint8Array(256);
for (const c of [QUOTE, OPEN_ARRAY, CLOSE_ARRAY, OPEN_OBJECT, CLOSE_OBJECT, COMMA]) SHAPE[c] = 1;

/** The index after the JSON string whose quote is at `i`, or -1 when it is not one (a control character, a bad escape, no end before `end`). */
function afterJsonString(bytes: Buffer, i: number, end: number): number {
  for (i++; i < end; i++) {
    const c = bytes[i]!;
    if (STRING_STOP[c] === 0) continue;
    if (c === QUOTE) return i + 1;
    if (c !== BACKSLASH) return -1;
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

/**
 * The index of the quote that closes the string opened at `i`, before
 * `end` (NotSplit when there is none): its end only, what is inside
 * unchecked. Finding the children needs no more; each child's bytes are
 * checked where they are parsed or scanned (isJsonValue), or were on the
 * other side of a share.
 */
function closingQuote(bytes: Buffer, i: number, end: number): number {
  for (i++; i < end; i++) {
    const c = bytes[i]!;
    if (STRING_STOP[c] === 0) continue;
    if (c === QUOTE) return i;
    if (c === BACKSLASH) i++;
  }
  throw new NotSplit();
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

/** The index after the literal (true, false, null) at `i` (before `end`), or -1. */
function afterLiteral(bytes: Buffer, i: number, end: number): number {
  const c = bytes[i];
  const word = c === 0x74 ? LITERALS[0] : c === 0x66 ? LITERALS[1] : c === 0x6e ? LITERALS[2] : undefined;
  if (!word || i + word.length > end || bytes.compare(word, 0, word.length, i, i + word.length) !== 0) return -1;
  return i + word.length;
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
    else i = afterLiteral(bytes, i, to);
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
  /** Its own children, when a walk against the other answer found them (`Splitter.walk`): its split need not scan it again. */
  walked: Child[] | undefined = undefined;
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

class Splitter {
  /** Child records made so far (MAX_CHILDREN). */
  private made = 0;
  /** The children of large containers found while scanning their parent, by the index of their opening bracket. */
  private readonly nested = new Map<number, Child[]>();
  /** The places of commas seen in the containers open during a scan (`children`). */
  private marks = new Int32Array(1024);
  private marked = 0;

  constructor(
    private readonly bytes: Buffer,
    /** Small children are checked and left unparsed (the header says why). */
    private readonly defer: boolean,
  ) {}

  private text(start: number, end: number): string {
    return this.bytes.toString('utf8', start, end);
  }

  /**
   * The value in [start, end), whitespace around it allowed; `reference` is
   * the other body's split of the same place, `walked` its children if a
   * walk against the reference found them already.
   */
  value(start: number, end: number, depth: number, reference: Layout | undefined, walked?: Child[]): ParsedJson {
    const bytes = this.bytes;
    while (start < end && isSpace(bytes[start])) start++;
    while (end > start && isSpace(bytes[end - 1])) end--;
    const open = bytes[start];
    if (end - start <= PIECE_MAX || (open !== OPEN_ARRAY && open !== OPEN_OBJECT)) return { value: JSON.parse(this.text(start, end)) };
    if (depth >= MAX_SPLIT_DEPTH) throw new NotSplit();
    const array = open === OPEN_ARRAY;
    const close = array ? CLOSE_ARRAY : CLOSE_OBJECT;
    const like = reference?.array === array ? reference : undefined;
    // Children found by the scan when deferring were checked to be JSON on the way (`checkedScan`); a walk's (there is a `like` whenever there was a walk) were not.
    const checked = this.defer && !like;
    const children = walked ?? (like ? this.walkWhole(start, end, like, depth) : this.children(start, end, close));
    const layout: Layout = { bytes, array, children };
    let runFrom = -1;
    const flush = (upTo: number) => {
      if (runFrom >= 0) this.parseRun(layout, runFrom, upTo);
      runFrom = -1;
    };
    for (let i = 0; i < children.length; i++) {
      const child = children[i]!;
      const theirs = like?.children[i];
      if (theirs && child.value !== UNKNOWN) {
        // The walk found it the same as theirs, byte for byte.
        flush(i);
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
        this.deferred(layout, i, checked);
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
    const parsed = this.value(from, child.to, depth + 1, reference, child.walked);
    child.value = parsed.value;
    if (parsed.layout) child.layout = parsed.layout;
  }

  /** A small child, checked (unless the scan that found it did) and left to be parsed when asked for. */
  private deferred(layout: Layout, index: number, checked: boolean): void {
    const child = layout.children[index]!;
    const from = layout.array ? child.from : this.memberValue(child);
    if (!checked && !isJsonValue(this.bytes, from, child.to)) throw new NotSplit();
    child.value = new Unparsed(layout, index, from, child.to);
  }

  /**
   * The direct children of the container in [start, end) found by a walk
   * against `like`, checked to end where the container does.
   */
  private walkWhole(start: number, end: number, like: Layout, depth: number): Child[] {
    const walked = this.walk(start, end, like, depth);
    if (walked.close !== end - 1) throw new NotSplit();
    return walked.children;
  }

  /**
   * The direct children of the container whose bracket is at `open`, found
   * against `like` (the other answer's split of the same place), and the
   * index of its closing bracket; nothing past `limit` is read.
   *
   * A shadow's answer is mostly the primary's, byte for byte, so where the
   * other answer's child k has bytes the same as this one's from `pos`, and
   * a comma or the closing bracket follows them, that is this container's
   * child k: the same value (the other side parsed or checked those bytes)
   * and the same end. It is one comparison of memory, where a scan reads
   * every byte in JavaScript. A child that differs is scanned for its end;
   * one that is split on the other side is walked in turn, so a container
   * is never scanned once by its parent and again by its own split. Where
   * nothing is the same (another layout, an item inserted) every child is
   * scanned, which costs what `children` does and a failed comparison each.
   */
  private walk(open: number, limit: number, like: Layout, depth: number): { children: Child[]; close: number } {
    const bytes = this.bytes;
    const theirBytes = like.bytes;
    const close = like.array ? CLOSE_ARRAY : CLOSE_OBJECT;
    const children: Child[] = [];
    let pos = open + 1;
    if (like.children.length === 0) throw new NotSplit();
    for (let k = 0; ; k++) {
      if (++this.made > MAX_CHILDREN) throw new NotSplit();
      const theirs = like.children[k];
      let child: Child | undefined;
      if (theirs && theirs.value !== UNKNOWN) {
        const after = pos + (theirs.to - theirs.from);
        if (after < limit && (bytes[after] === COMMA || bytes[after] === close) && theirBytes.compare(bytes, pos, after, theirs.from, theirs.to) === 0) {
          child = new Child(pos, after);
          child.value = theirs.value;
        }
      }
      child ??= this.differingChild(pos, limit, close, like.array, theirs?.layout, depth);
      children.push(child);
      if (bytes[child.to] === close) return { children, close: child.to };
      pos = child.to + 1;
    }
  }

  /** A child from `pos` that is not the other side's: walked if the other side split it (and this one opens the same way), else scanned for its end. */
  private differingChild(pos: number, limit: number, close: number, array: boolean, split: Layout | undefined, depth: number): Child {
    const bytes = this.bytes;
    if (split && depth + 1 < MAX_SPLIT_DEPTH) {
      let at = pos;
      if (!array) {
        at = afterMemberKey(bytes, pos, limit);
        if (at < 0) throw new NotSplit();
      }
      at = afterSpace(bytes, at, limit);
      if (bytes[at] === (split.array ? OPEN_ARRAY : OPEN_OBJECT)) {
        const inner = this.walk(at, limit, split, depth + 1);
        const end = afterSpace(bytes, inner.close + 1, limit);
        if (end >= limit || (bytes[end] !== COMMA && bytes[end] !== close)) throw new NotSplit();
        const child = new Child(pos, end);
        child.walked = inner.children;
        return child;
      }
    }
    return new Child(pos, this.childEnd(pos, limit));
  }

  /** The index of the comma or closing bracket that ends the child starting at `pos` (brackets balanced within it). */
  private childEnd(pos: number, limit: number): number {
    const bytes = this.bytes;
    let depth = 0;
    for (let i = pos; i < limit; i++) {
      const c = bytes[i]!;
      if (SHAPE[c] === 0) continue;
      if (c === QUOTE) i = closingQuote(bytes, i, limit);
      else if (c === OPEN_ARRAY || c === OPEN_OBJECT) depth++;
      else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        if (depth-- === 0) return i;
      } else if (depth === 0) return i;
    }
    throw new NotSplit();
  }

  /**
   * The direct children's ranges of the container in [start, end)
   * (brackets included), checking that its brackets balance.
   *
   * One pass finds those of the large containers inside it too, which are
   * split next: each comma's place is noted while its container is open,
   * and kept as that container's children if it closes past PIECE_MAX
   * (forgotten if not). Scanning each level on its own read a 150 KB
   * export twice: its top level, then its array of items.
   */
  private children(start: number, end: number, close: number): Child[] {
    const bytes = this.bytes;
    if (bytes[end - 1] !== close) throw new NotSplit();
    const found = this.nested.get(start);
    if (found) return found;
    if (this.defer) return this.checkedScan(start, end);
    const last = end - 1;
    // The containers open inside this one: each one's bracket, and where its commas' places start.
    const open: number[] = [];
    this.marked = 0;
    for (let i = start + 1; i < last; i++) {
      const c = bytes[i]!;
      if (SHAPE[c] === 0) continue;
      if (c === QUOTE) i = closingQuote(bytes, i, last);
      else if (c === OPEN_ARRAY || c === OPEN_OBJECT) open.push(i, this.marked);
      else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        const from = open.pop();
        const bracket = open.pop();
        // "]" is "[" + 2, and "}" is "{" + 2: a bracket closed by the other kind is not JSON.
        if (from === undefined || bracket === undefined || c - bytes[bracket]! !== 2) throw new NotSplit();
        this.closed(bracket, i, from);
      } else this.note(i);
    }
    if (open.length !== 0) throw new NotSplit();
    return this.noted(start, last, 0);
  }

  /**
   * `children` when deferring: the same pass, made as isJsonValue's, so it
   * also checks that the whole is JSON. The small children it finds need no
   * scan of their own before they are deferred: a 150 KB export's parts
   * were read twice, once to find them and once to check them.
   */
  private checkedScan(start: number, end: number): Child[] {
    const bytes = this.bytes;
    // The containers open: each one's closing byte, and its bracket's index and where its commas' places start.
    const closers: number[] = [];
    const open: number[] = [];
    let outermost: Child[] = [];
    this.marked = 0;
    let i = start;
    for (;;) {
      i = afterSpace(bytes, i, end);
      if (i >= end) throw new NotSplit();
      const c = bytes[i]!;
      if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        const close = c === OPEN_ARRAY ? CLOSE_ARRAY : CLOSE_OBJECT;
        const bracket = i;
        i = afterSpace(bytes, i + 1, end);
        if (i < end && bytes[i] === close) i++;
        else {
          closers.push(close);
          open.push(bracket, this.marked);
          if (close === CLOSE_OBJECT && (i = afterMemberKey(bytes, i, end)) < 0) throw new NotSplit();
          continue;
        }
      } else if (c === QUOTE) i = afterJsonString(bytes, i, end);
      else if (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9)) i = afterJsonNumber(bytes, i, end);
      else i = afterLiteral(bytes, i, end);
      if (i < 0) throw new NotSplit();
      for (;;) {
        i = afterSpace(bytes, i, end);
        const close = closers[closers.length - 1];
        if (close === undefined) {
          if (i !== end) throw new NotSplit();
          return outermost;
        }
        if (i >= end) throw new NotSplit();
        const next = bytes[i]!;
        if (next === close) {
          closers.pop();
          const from = open.pop()!;
          const bracket = open.pop()!;
          if (closers.length === 0) outermost = this.noted(bracket, i, from);
          else this.closed(bracket, i, from);
          i++;
          continue;
        }
        if (next !== COMMA) throw new NotSplit();
        this.note(i++);
        if (close === CLOSE_OBJECT && (i = afterMemberKey(bytes, i, end)) < 0) throw new NotSplit();
        break;
      }
    }
  }

  /** A comma's place, in the innermost container open. */
  private note(comma: number): void {
    if (this.marked === this.marks.length) this.growMarks();
    this.marks[this.marked++] = comma;
  }

  /** A container inside the one scanned closed: its children are kept if it is large, and its commas forgotten. */
  private closed(bracket: number, closing: number, from: number): void {
    if (closing + 1 - bracket > PIECE_MAX) this.nested.set(bracket, this.noted(bracket, closing, from));
    this.marked = from;
  }

  /** The children of the container from `bracket` to `closing`, from the commas noted since `from`. */
  private noted(bracket: number, closing: number, from: number): Child[] {
    const bytes = this.bytes;
    const children: Child[] = [];
    let at = bracket + 1;
    for (let k = from; k < this.marked; k++) {
      if (++this.made > MAX_CHILDREN) throw new NotSplit();
      const comma = this.marks[k]!;
      children.push(new Child(at, comma));
      at = comma + 1;
    }
    let rest = at;
    while (rest < closing && isSpace(bytes[rest])) rest++;
    // [] and {} have no child; after a comma an empty child is an error JSON.parse reports.
    if (rest < closing || children.length > 0) children.push(new Child(at, closing));
    return children;
  }

  /** Room for more commas' places, up to what MAX_CHILDREN lets be children (and a small container's own, while it is open). */
  private growMarks(): void {
    if (this.marks.length >= MAX_CHILDREN + PIECE_MAX) throw new NotSplit();
    const more = new Int32Array(this.marks.length * 2);
    more.set(this.marks);
    this.marks = more;
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
