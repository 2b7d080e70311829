/**
 * Walks a parsed YAML document against the declared spec (schema.ts) and
 * turns it into plain values, reporting every shape problem at the line and
 * column of the node that has it. Durations, sizes and addresses come out
 * parsed (milliseconds, bytes, {host, port}).
 */
import { isAlias, isMap, isScalar, isSeq, visit, type Document, type LineCounter, type Node } from 'yaml';
import { didYouMean, type Diagnostic } from './diagnostics.js';
import { MAX_ALIASES, MAX_NESTING } from './load.js';
import type { ArraySpec, IntegerSpec, MapSpec, NumberSpec, ObjectSpec, Spec, StringSpec, UnionSpec } from './schema.js';
import { parseAddress, parseDuration, parseSize, type Parsed } from './units.js';

/** Marks a value that failed its checks; parents skip it. */
export const INVALID: unique symbol = Symbol('invalid');
export type Shaped = unknown;

export interface Position {
  readonly line: number;
  readonly column: number;
}

export interface ShapeResult {
  readonly value: Shaped;
  readonly diagnostics: Diagnostic[];
  /** Position of the value at each config path. */
  readonly positions: ReadonlyMap<string, Position>;
}

/** Stops pathological documents: nodes visited, counting alias expansion. */
const MAX_NODES = 200_000;

export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  const plain = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key);
  if (parent === '') return plain ? key : `[${JSON.stringify(key)}]`;
  return plain ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

export function shapeDocument(doc: Document.Parsed, lines: LineCounter, spec: Spec, file: string): ShapeResult {
  return new Shaper(doc, lines, file).shape(spec);
}

/** One walk over one document: each kind of spec has its method. */
class Shaper {
  private readonly diagnostics: Diagnostic[] = [];
  private readonly positions = new Map<string, Position>();
  private aliases = 0;
  private nodes = 0;
  private aborted = false;

  constructor(
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
    private readonly file: string,
  ) {}

  shape(spec: Spec): ShapeResult {
    const { doc, diagnostics, positions } = this;
    const contents = doc.contents as Node | null;
    if (contents == null || (isScalar(contents) && contents.value == null)) {
      diagnostics.push({
        severity: 'error',
        code: 'empty',
        message: 'config is empty; it needs at least "upstreams" and "routes"',
        path: '',
        file: this.file,
        line: 1,
        column: 1,
      });
      return { value: INVALID, diagnostics, positions };
    }
    // Alias bombs: a cheap expansion count before anything walks the tree.
    try {
      doc.toJS({ maxAliasCount: MAX_ALIASES });
    } catch (err) {
      let first: Node | undefined;
      visit(doc, { Alias: (_key, node) => { first = node; return visit.BREAK; } });
      this.report(first, '', 'aliases', `aliases expand too far (${(err as Error).message.split('.')[0]}); refusing the document`);
      return { value: INVALID, diagnostics, positions };
    }
    const value = this.walk(contents, spec, '', 0);
    return { value, diagnostics, positions };
  }

  private position(node: Node | null | undefined): Position {
    const offset = node?.range?.[0] ?? 0;
    const pos = this.lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  }

  private report(node: Node | null | undefined, path: string, code: string, message: string): void {
    const pos = this.position(node);
    this.diagnostics.push({ severity: 'error', code, message, path, file: this.file, line: pos.line, column: pos.column });
  }

  /** Reports a value of the wrong kind; the value is dropped. */
  private expect(node: Node | null | undefined, path: string, what: string, hint = ''): typeof INVALID {
    this.report(node, path, 'type', `${path || 'config'}: expected ${what}, got ${describe(node)}${hint}`);
    return INVALID;
  }

  /** Reports a problem with the value; the value is dropped. */
  private refuse(node: Node | null | undefined, path: string, code: string, message: string): typeof INVALID {
    this.report(node, path, code, message);
    return INVALID;
  }

  /** Stops the whole walk: the document is too large, too deep or an alias bomb. */
  private abort(node: Node | null | undefined, path: string, code: string, message: string): typeof INVALID {
    this.aborted = true;
    return this.refuse(node, path, code, message);
  }

  private walk(input: Node | null | undefined, spec: Spec, path: string, depth: number, at?: Position): Shaped {
    if (this.aborted) return INVALID;
    if (++this.nodes > MAX_NODES) return this.abort(input, path, 'too-large', `config has more than ${MAX_NODES} nodes (alias expansion counted)`);
    if (depth > MAX_NESTING) return this.abort(input, path, 'too-deep', `nesting deeper than ${MAX_NESTING} levels`);
    let node = input;
    if (isAlias(node)) {
      if (++this.aliases > MAX_ALIASES) {
        return this.abort(node, path, 'aliases', `more than ${MAX_ALIASES} alias references; refusing to expand (alias bomb?)`);
      }
      const target = node.resolve(this.doc);
      if (!target) return this.refuse(node, path, 'yaml', `unresolved alias *${node.source}`);
      node = target as Node;
    }
    this.positions.set(path, at ?? this.position(node));

    switch (spec.type) {
      case 'union':
        return this.walkUnion(node, spec, path, depth, at);
      case 'object':
        return this.walkObject(node, spec, path, depth);
      case 'map':
        return this.walkMap(node, spec, path, depth);
      case 'array':
        return this.walkArray(node, spec, path, depth);
      case 'string':
        return this.walkString(node, spec, path);
      case 'integer':
      case 'number':
        return this.walkNumber(node, spec, path);
      case 'boolean':
        return isScalar(node) && typeof node.value === 'boolean' ? node.value : this.expect(node, path, 'true or false');
      case 'duration':
        return this.walkParsed(node, path, 'duration', parseDuration);
      case 'size': {
        const size = this.walkParsed(node, path, 'size', parseSize);
        if (size !== INVALID && spec.minimum !== undefined && (size as number) < spec.minimum) {
          return this.refuse(node, path, 'range', `${path}: must be at least ${spec.minimum} bytes`);
        }
        return size;
      }
      case 'address':
        return this.walkParsed(node, path, 'address', (raw) => parseAddress(raw, ''));
    }
  }

  private walkUnion(node: Node | null | undefined, spec: UnionSpec, path: string, depth: number, at: Position | undefined): Shaped {
    const numeric = isScalar(node) && typeof node.value === 'number';
    const branch = isMap(node) ? spec.map : isSeq(node) ? spec.seq : numeric && spec.number ? spec.number : spec.scalar;
    if (!branch) {
      const kinds = [spec.scalar && 'a value', spec.map && 'a mapping', spec.seq && 'a list'].filter(Boolean);
      return this.expect(node, path, kinds.join(' or '));
    }
    return this.walk(node, branch, path, depth, at);
  }

  private walkMap(node: Node | null | undefined, spec: MapSpec, path: string, depth: number): Shaped {
    if (!isMap(node)) return this.expect(node, path, 'a mapping of names to values');
    const out: Record<string, Shaped> = Object.create(null);
    const pattern = spec.keyPattern ? new RegExp(spec.keyPattern) : undefined;
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== 'string' && typeof key !== 'number') {
        this.report(keyNode, path, 'type', `${path}: keys must be plain names`);
        continue;
      }
      const keyText = String(key);
      const keyPath = childPath(path, keyText);
      if (pattern && !pattern.test(keyText)) {
        this.report(keyNode, keyPath, 'name', `${keyPath}: "${keyText}" is not a valid ${spec.keyDescription ?? 'key'}`);
        continue;
      }
      const value = this.walk(pair.value as Node | null, spec.values, keyPath, depth + 1, pair.value ? undefined : this.position(keyNode));
      if (value !== INVALID) out[keyText] = value;
    }
    return out;
  }

  private walkArray(node: Node | null | undefined, spec: ArraySpec, path: string, depth: number): Shaped {
    if (!isSeq(node)) return this.expect(node, path, 'a list');
    if (spec.minItems !== undefined && node.items.length < spec.minItems) {
      this.report(node, path, 'range', `${path}: needs at least ${spec.minItems} item${spec.minItems === 1 ? '' : 's'}`);
    }
    if (spec.maxItems !== undefined && node.items.length > spec.maxItems) {
      this.report(node, path, 'range', `${path}: at most ${spec.maxItems} items allowed`);
    }
    return node.items.map((item, i) => this.walk(item as Node | null, spec.items, childPath(path, i), depth + 1));
  }

  private walkString(node: Node | null | undefined, spec: StringSpec, path: string): Shaped {
    if (!isScalar(node) || typeof node.value !== 'string') {
      const hint = isScalar(node) && (typeof node.value === 'number' || typeof node.value === 'boolean')
        ? `; quote it: "${String(node.value)}"` : '';
      return this.expect(node, path, 'a string', hint);
    }
    const text = node.value;
    if (spec.enum && !spec.enum.includes(text)) {
      return this.refuse(node, path, 'enum', `${path}: "${text}" is not one of ${spec.enum.join(', ')}${didYouMean(text, spec.enum)}`);
    }
    if (spec.minLength !== undefined && text.length < spec.minLength) {
      return this.refuse(node, path, 'range', `${path}: must be at least ${spec.minLength} characters long`);
    }
    if (spec.maxLength !== undefined && text.length > spec.maxLength) {
      return this.refuse(node, path, 'range', `${path}: must be at most ${spec.maxLength} characters long`);
    }
    if (spec.pattern && !new RegExp(spec.pattern).test(text)) {
      return this.refuse(node, path, 'format', `${path}: "${text}" is not ${spec.patternHint ?? `of the form ${spec.pattern}`}`);
    }
    return text;
  }

  private walkNumber(node: Node | null | undefined, spec: IntegerSpec | NumberSpec, path: string): Shaped {
    if (!isScalar(node) || typeof node.value !== 'number' || !Number.isFinite(node.value)) {
      return this.expect(node, path, spec.type === 'integer' ? 'a whole number' : 'a number');
    }
    const n = node.value;
    if (spec.type === 'integer' && !Number.isInteger(n)) return this.expect(node, path, 'a whole number');
    if (spec.minimum !== undefined && n < spec.minimum) return this.refuse(node, path, 'range', `${path}: ${n} is below the minimum ${spec.minimum}`);
    if (spec.maximum !== undefined && n > spec.maximum) return this.refuse(node, path, 'range', `${path}: ${n} is above the maximum ${spec.maximum}`);
    if (spec.type === 'number' && spec.exclusiveMinimum !== undefined && n <= spec.exclusiveMinimum) {
      return this.refuse(node, path, 'range', `${path}: must be more than ${spec.exclusiveMinimum}`);
    }
    return n;
  }

  /** A scalar written in units (a duration, a size, an address), parsed. */
  private walkParsed<T>(node: Node | null | undefined, path: string, code: string, parse: (raw: unknown) => Parsed<T>): Shaped {
    const parsed = parse(isScalar(node) ? node.value : undefined);
    return parsed.ok ? parsed.value : this.refuse(node, path, code, `${path}: ${parsed.error}`);
  }

  private walkObject(node: Node | null | undefined, spec: ObjectSpec, path: string, depth: number): Shaped {
    if (!isMap(node)) return this.expect(node, path, 'a mapping');
    const out: Record<string, Shaped> = Object.create(null);
    const known = Object.keys(spec.properties);
    const seen = new Set<string>();
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== 'string') {
        this.report(keyNode, path, 'type', `${path || 'config'}: keys must be plain names, got ${describe(keyNode)}`);
        continue;
      }
      const keyPath = childPath(path, key);
      const propertySpec = spec.properties[key];
      if (!propertySpec) {
        const hint = key === '<<' ? ' (YAML merge keys are not supported; repeat the values or use an anchor on a whole value)' : didYouMean(key, known);
        this.report(keyNode, keyPath, 'unknown-key', `${path ? path + ': ' : ''}unknown key "${key}"${hint}`);
        continue;
      }
      seen.add(key);
      const value = this.walk(pair.value as Node | null, propertySpec, keyPath, depth + 1, pair.value ? undefined : this.position(keyNode));
      if (value !== INVALID) out[key] = value;
    }
    for (const required of spec.required ?? []) {
      if (!seen.has(required)) {
        this.report(node, childPath(path, required), 'required', `${path || 'config'}: missing required key "${required}"`);
      }
    }
    if (spec.exactlyOne) {
      const present = spec.exactlyOne.filter((k) => seen.has(k));
      if (present.length !== 1) {
        const options = spec.exactlyOne.map((k) => `"${k}"`).join(' or ');
        return this.refuse(node, path, 'one-of', `${path}: needs exactly one of ${options}${present.length ? `, not ${present.length}` : ''}`);
      }
    }
    return out;
  }
}

/** What a node is, for "expected X, got Y". */
function describe(node: Node | null | undefined): string {
  if (node == null) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'nothing (null)';
    if (typeof v === 'number') return `a number (${v})`;
    if (typeof v === 'boolean') return `a boolean (${v})`;
    if (typeof v === 'string') return `a string ("${v.length > 40 ? v.slice(0, 37) + '...' : v}")`;
  }
  return 'an unsupported value';
}
