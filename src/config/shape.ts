/**
 * Walks a parsed YAML document against the declared spec (schema.ts) and
 * turns it into plain values, reporting every shape problem at the line and
 * column of the node that has it. Durations, sizes and addresses come out
 * parsed (milliseconds, bytes, {host, port}).
 */
import { isAlias, isMap, isScalar, isSeq, visit, type Document, type LineCounter, type Node } from 'yaml';
import { didYouMean, type Diagnostic } from './diagnostics.js';
import { MAX_ALIASES, MAX_NESTING } from './load.js';
import type { ObjectSpec, Spec } from './schema.js';
import { parseAddress, parseDuration, parseSize } from './units.js';

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
  const diagnostics: Diagnostic[] = [];
  const positions = new Map<string, Position>();
  let aliases = 0;
  let nodes = 0;
  let aborted = false;

  const position = (node: Node | null | undefined): Position => {
    const offset = node?.range?.[0] ?? 0;
    const pos = lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  const report = (node: Node | null | undefined, path: string, code: string, message: string, at?: Position) => {
    const pos = at ?? position(node);
    diagnostics.push({ severity: 'error', code, message, path, file, line: pos.line, column: pos.column });
  };

  const describe = (node: Node | null | undefined): string => {
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
  };

  const expect = (node: Node | null | undefined, path: string, what: string, hint = '') => {
    report(node, path, 'type', `${path || 'config'}: expected ${what}, got ${describe(node)}${hint}`);
    return INVALID;
  };

  function walk(input: Node | null | undefined, spec: Spec, path: string, depth: number, at?: Position): Shaped {
    if (aborted) return INVALID;
    if (++nodes > MAX_NODES) {
      aborted = true;
      report(input, path, 'too-large', `config has more than ${MAX_NODES} nodes (alias expansion counted)`);
      return INVALID;
    }
    if (depth > MAX_NESTING) {
      aborted = true;
      report(input, path, 'too-deep', `nesting deeper than ${MAX_NESTING} levels`);
      return INVALID;
    }
    let node = input;
    if (isAlias(node)) {
      if (++aliases > MAX_ALIASES) {
        aborted = true;
        report(node, path, 'aliases', `more than ${MAX_ALIASES} alias references; refusing to expand (alias bomb?)`);
        return INVALID;
      }
      const target = node.resolve(doc);
      if (!target) {
        report(node, path, 'yaml', `unresolved alias *${node.source}`);
        return INVALID;
      }
      node = target as Node;
    }
    positions.set(path, at ?? position(node));

    switch (spec.type) {
      case 'union': {
        const numeric = isScalar(node) && typeof node.value === 'number';
        const branch = isMap(node) ? spec.map : isSeq(node) ? spec.seq : numeric && spec.number ? spec.number : spec.scalar;
        if (!branch) {
          const kinds = [spec.scalar && 'a value', spec.map && 'a mapping', spec.seq && 'a list'].filter(Boolean);
          return expect(node, path, kinds.join(' or '));
        }
        return walk(node, branch, path, depth, at);
      }
      case 'object':
        return walkObject(node, spec, path, depth);
      case 'map': {
        if (!isMap(node)) return expect(node, path, 'a mapping of names to values');
        const out: Record<string, Shaped> = Object.create(null);
        const pattern = spec.keyPattern ? new RegExp(spec.keyPattern) : undefined;
        for (const pair of node.items) {
          const keyNode = pair.key as Node | null;
          const key = isScalar(keyNode) ? keyNode.value : undefined;
          if (typeof key !== 'string' && typeof key !== 'number') {
            report(keyNode, path, 'type', `${path}: keys must be plain names`);
            continue;
          }
          const keyText = String(key);
          const keyPath = childPath(path, keyText);
          if (pattern && !pattern.test(keyText)) {
            report(keyNode, keyPath, 'name', `${keyPath}: "${keyText}" is not a valid ${spec.keyDescription ?? 'key'}`);
            continue;
          }
          const value = walk(pair.value as Node | null, spec.values, keyPath, depth + 1, pair.value ? undefined : position(keyNode));
          if (value !== INVALID) out[keyText] = value;
        }
        return out;
      }
      case 'array': {
        if (!isSeq(node)) return expect(node, path, 'a list');
        if (spec.minItems !== undefined && node.items.length < spec.minItems) {
          report(node, path, 'range', `${path}: needs at least ${spec.minItems} item${spec.minItems === 1 ? '' : 's'}`);
        }
        if (spec.maxItems !== undefined && node.items.length > spec.maxItems) {
          report(node, path, 'range', `${path}: at most ${spec.maxItems} items allowed`);
        }
        const out: Shaped[] = [];
        node.items.forEach((item, i) => {
          out.push(walk(item as Node | null, spec.items, childPath(path, i), depth + 1));
        });
        return out;
      }
      case 'string': {
        if (!isScalar(node) || typeof node.value !== 'string') {
          const hint = isScalar(node) && (typeof node.value === 'number' || typeof node.value === 'boolean')
            ? `; quote it: "${String(node.value)}"` : '';
          return expect(node, path, 'a string', hint);
        }
        const text = node.value;
        if (spec.enum && !spec.enum.includes(text)) {
          report(node, path, 'enum', `${path}: "${text}" is not one of ${spec.enum.join(', ')}${didYouMean(text, spec.enum)}`);
          return INVALID;
        }
        if (spec.minLength !== undefined && text.length < spec.minLength) {
          report(node, path, 'range', `${path}: must be at least ${spec.minLength} characters long`);
          return INVALID;
        }
        if (spec.maxLength !== undefined && text.length > spec.maxLength) {
          report(node, path, 'range', `${path}: must be at most ${spec.maxLength} characters long`);
          return INVALID;
        }
        if (spec.pattern && !new RegExp(spec.pattern).test(text)) {
          report(node, path, 'format', `${path}: "${text}" is not ${spec.patternHint ?? `of the form ${spec.pattern}`}`);
          return INVALID;
        }
        return text;
      }
      case 'integer':
      case 'number': {
        if (!isScalar(node) || typeof node.value !== 'number' || !Number.isFinite(node.value)) {
          return expect(node, path, spec.type === 'integer' ? 'a whole number' : 'a number');
        }
        const n = node.value;
        if (spec.type === 'integer' && !Number.isInteger(n)) return expect(node, path, 'a whole number');
        if (spec.minimum !== undefined && n < spec.minimum) {
          report(node, path, 'range', `${path}: ${n} is below the minimum ${spec.minimum}`);
          return INVALID;
        }
        if (spec.maximum !== undefined && n > spec.maximum) {
          report(node, path, 'range', `${path}: ${n} is above the maximum ${spec.maximum}`);
          return INVALID;
        }
        if (spec.type === 'number' && spec.exclusiveMinimum !== undefined && n <= spec.exclusiveMinimum) {
          report(node, path, 'range', `${path}: must be more than ${spec.exclusiveMinimum}`);
          return INVALID;
        }
        return n;
      }
      case 'boolean': {
        if (!isScalar(node) || typeof node.value !== 'boolean') return expect(node, path, 'true or false');
        return node.value;
      }
      case 'duration': {
        const raw = isScalar(node) ? node.value : undefined;
        const parsed = parseDuration(raw);
        if (!parsed.ok) {
          report(node, path, 'duration', `${path}: ${parsed.error}`);
          return INVALID;
        }
        return parsed.value;
      }
      case 'size': {
        const raw = isScalar(node) ? node.value : undefined;
        const parsed = parseSize(raw);
        if (!parsed.ok) {
          report(node, path, 'size', `${path}: ${parsed.error}`);
          return INVALID;
        }
        if (spec.minimum !== undefined && parsed.value < spec.minimum) {
          report(node, path, 'range', `${path}: must be at least ${spec.minimum} bytes`);
          return INVALID;
        }
        if (spec.maximum !== undefined && parsed.value > spec.maximum) {
          report(node, path, 'range', `${path}: must be at most ${spec.maximum} bytes`);
          return INVALID;
        }
        return parsed.value;
      }
      case 'address': {
        const raw = isScalar(node) ? node.value : undefined;
        const parsed = parseAddress(raw, '');
        if (!parsed.ok) {
          report(node, path, 'address', `${path}: ${parsed.error}`);
          return INVALID;
        }
        return parsed.value;
      }
    }
  }

  function walkObject(node: Node | null | undefined, spec: ObjectSpec, path: string, depth: number): Shaped {
    if (!isMap(node)) return expect(node, path, 'a mapping');
    const out: Record<string, Shaped> = Object.create(null);
    const known = Object.keys(spec.properties);
    const seen = new Set<string>();
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== 'string') {
        report(keyNode, path, 'type', `${path || 'config'}: keys must be plain names, got ${describe(keyNode)}`);
        continue;
      }
      const keyPath = childPath(path, key);
      const propertySpec = spec.properties[key];
      if (!propertySpec) {
        const hint = key === '<<' ? ' (YAML merge keys are not supported; repeat the values or use an anchor on a whole value)' : didYouMean(key, known);
        report(keyNode, keyPath, 'unknown-key', `${path ? path + ': ' : ''}unknown key "${key}"${hint}`);
        continue;
      }
      seen.add(key);
      const value = walk(pair.value as Node | null, propertySpec, keyPath, depth + 1, pair.value ? undefined : position(keyNode));
      if (value !== INVALID) out[key] = value;
    }
    for (const required of spec.required ?? []) {
      if (!seen.has(required)) {
        report(node, childPath(path, required), 'required', `${path || 'config'}: missing required key "${required}"`);
      }
    }
    if (spec.exactlyOne) {
      const present = spec.exactlyOne.filter((k) => seen.has(k));
      if (present.length !== 1) {
        const options = spec.exactlyOne.map((k) => `"${k}"`).join(' or ');
        report(node, path, 'one-of', `${path}: needs exactly one of ${options}${present.length ? `, not ${present.length}` : ''}`);
        return INVALID;
      }
    }
    return out;
  }

  const contents = doc.contents as Node | null;
  if (contents == null || (isScalar(contents) && contents.value == null)) {
    diagnostics.push({
      severity: 'error',
      code: 'empty',
      message: 'config is empty; it needs at least "upstreams" and "routes"',
      path: '',
      file,
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
    report(first, '', 'aliases', `aliases expand too far (${(err as Error).message.split('.')[0]}); refusing the document`);
    return { value: INVALID, diagnostics, positions };
  }
  const value = walk(contents, spec, '', 0);
  return { value, diagnostics, positions };
}
