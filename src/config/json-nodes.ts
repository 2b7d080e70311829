/**
 * JSON read into the YAML library's node classes (its public Scalar,
 * YAMLMap, YAMLSeq and Pair), with each node's source range, so what reads
 * a config-like file by its nodes reads a JSON file the same way, with the
 * same line:col in every message.
 *
 * Why not the YAML parser, which reads JSON too: it keeps a concrete
 * syntax tree and a document of every token, about 43 bytes of heap and
 * 0.36 µs per byte of JSON (a 20 MB simulation: 7.4 s and 860 MB). This
 * makes one node per value, in a single pass: large recorded simulations
 * load in a second or two.
 *
 * Bounded like the config: nesting past `maxDepth`, a mapping or list past
 * `maxItems` entries, and a repeated key are errors at their position.
 */
import { LineCounter, Pair, Scalar, YAMLMap, YAMLSeq, type Node } from 'yaml';

export interface JsonNodesLimits {
  readonly maxDepth: number;
  readonly maxItems: number;
}

export type JsonNodes =
  | { readonly ok: true; readonly contents: Node; readonly lines: LineCounter }
  | { readonly ok: false; readonly message: string; readonly offset: number; readonly lines: LineCounter };

class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

const LITERALS = [
  ['true', true],
  ['false', false],
  ['null', null],
] as const;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
/** What JSON forbids unescaped in a string. */
const CONTROL = /[\u0000-\u001f]/;

export function parseJsonNodes(text: string, limits: JsonNodesLimits): JsonNodes {
  const lines = new LineCounter();
  lines.addNewLine(0);
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines.addNewLine(i + 1);
  try {
    const reader = new Reader(text, limits);
    const contents = reader.document();
    return { ok: true, contents, lines };
  } catch (err) {
    if (err instanceof JsonSyntaxError) return { ok: false, message: err.message, offset: err.offset, lines };
    throw err;
  }
}

class Reader {
  private at = 0;

  constructor(
    private readonly text: string,
    private readonly limits: JsonNodesLimits,
  ) {}

  document(): Node {
    const node = this.value(0);
    this.skipSpace();
    if (this.at < this.text.length) this.fail('unexpected text after the JSON value');
    return node;
  }

  private fail(message: string, offset = this.at): never {
    throw new JsonSyntaxError(message, Math.min(offset, this.text.length));
  }

  private skipSpace(): void {
    const { text } = this;
    for (;;) {
      const c = text.charCodeAt(this.at);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.at++;
    }
  }

  private value(depth: number): Node {
    this.skipSpace();
    if (depth > this.limits.maxDepth) this.fail(`nesting deeper than ${this.limits.maxDepth} levels`);
    const start = this.at;
    const c = this.text[start];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.scalar(this.string(), start);
    if (c === undefined) this.fail('unexpected end of JSON');
    for (const [word, value] of LITERALS) {
      if (this.text.startsWith(word, start)) {
        this.at += word.length;
        return this.scalar(value, start);
      }
    }
    NUMBER.lastIndex = start;
    const number = NUMBER.exec(this.text);
    if (!number) this.fail(`unexpected character ${JSON.stringify(c)}`);
    this.at += number[0].length;
    return this.scalar(Number(number[0]), start);
  }

  private scalar(value: unknown, start: number): Scalar {
    const node = new Scalar(value);
    node.range = [start, this.at, this.at];
    return node;
  }

  /** A string at `this.at` (its opening quote): its value. */
  private string(): string {
    const { text } = this;
    const start = this.at;
    let quote = text.indexOf('"', start + 1);
    for (;;) {
      if (quote < 0) this.fail('unterminated string', start);
      // A quote after an odd run of backslashes is escaped.
      let run = 0;
      while (text.charCodeAt(quote - 1 - run) === 0x5c) run++;
      if (run % 2 === 0) break;
      quote = text.indexOf('"', quote + 1);
    }
    this.at = quote + 1;
    const raw = text.slice(start, quote + 1);
    // JSON.parse decodes escapes and refuses unescaped control characters.
    if (!raw.includes('\\') && !CONTROL.test(raw)) return raw.slice(1, -1);
    try {
      return JSON.parse(raw) as string;
    } catch {
      return this.fail('invalid string (an unescaped control character or a bad escape)', start);
    }
  }

  private object(depth: number): YAMLMap {
    const start = this.at++;
    const map = new YAMLMap();
    // Most mappings have a few keys: a scan of them costs less than a Set each.
    let seen: Set<unknown> | undefined;
    this.skipSpace();
    if (this.text[this.at] === '}') {
      this.at++;
    } else {
      for (;;) {
        this.skipSpace();
        const keyStart = this.at;
        if (this.text[keyStart] !== '"') this.fail('expected a string key');
        const key = this.scalar(this.string(), keyStart);
        if (map.items.length >= 16) {
          seen ??= new Set(map.items.map((p) => (p.key as Scalar).value));
          if (seen.has(key.value)) this.fail('Map keys must be unique', keyStart);
          seen.add(key.value);
        } else if (map.items.some((p) => (p.key as Scalar).value === key.value)) this.fail('Map keys must be unique', keyStart);
        this.skipSpace();
        if (this.text[this.at] !== ':') this.fail('expected ":"');
        this.at++;
        map.items.push(new Pair(key, this.value(depth + 1)));
        if (this.entryEnds('mapping', map.items.length, start, '}')) break;
      }
    }
    map.range = [start, this.at, this.at];
    return map;
  }

  /** After a collection's `count`-th entry: true at its closing bracket, on past a comma, else an error. */
  private entryEnds(kind: string, count: number, start: number, close: string): boolean {
    if (count > this.limits.maxItems) this.fail(`a ${kind} of more than ${this.limits.maxItems} entries; the limit is ${this.limits.maxItems}`, start);
    this.skipSpace();
    const next = this.text[this.at++];
    if (next === close) return true;
    if (next !== ',') this.fail(next === undefined ? 'unexpected end of JSON' : `expected "," or "${close}"`, this.at - 1);
    return false;
  }

  private array(depth: number): YAMLSeq {
    const start = this.at++;
    const seq = new YAMLSeq();
    this.skipSpace();
    if (this.text[this.at] === ']') {
      this.at++;
    } else {
      for (;;) {
        seq.items.push(this.value(depth + 1));
        if (this.entryEnds('list', seq.items.length, start, ']')) break;
      }
    }
    seq.range = [start, this.at, this.at];
    return seq;
  }
}
