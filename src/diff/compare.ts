/**
 * Comparing two lifted bodies: JSON structurally (one difference per
 * differing leaf, missing or extra member, type change or reordered array),
 * text by its differing region, binary by length and hash.
 *
 * Work is bounded: a node budget and a depth limit stop the walk (the
 * result says `limited`), and subtrees under ignored paths are never visited.
 * The raw values are returned as found; redaction and clipping happen when
 * a difference is stored (values.ts).
 */
import type { NumberTolerance } from '../config/types.js';
import { isMessage } from '../protobuf/wire.js';
import { compareHtml, NodeRules } from './html.js';
import { plain, resolve } from './json-bytes.js';
import type { Lifted } from './lift.js';
import { ANY, escapeSegment, isMapLike, PointerPatterns, type IgnoreRules, type RuleState } from './paths.js';
import type { ChangeKind } from './types.js';

export interface RawDifference {
  readonly pointer: string;
  readonly template: string;
  readonly change: ChangeKind;
  /** undefined: absent on that side. */
  readonly primary: unknown;
  readonly shadow: unknown;
  readonly note?: string;
}

export interface WalkLimits {
  /** JSON nodes visited per comparison. */
  readonly maxNodes: number;
  readonly maxDepth: number;
}

/**
 * How values are judged equal beyond strict equality: numbers within a
 * tolerance, arrays as multisets (configured, or learned from the noise).
 */
export interface ValueRules {
  readonly tolerance: PointerPatterns<NumberTolerance>;
  readonly unordered: PointerPatterns<true>;
  /** Array templates the noise only ever reorders on this endpoint. */
  readonly learnedUnordered?: ReadonlySet<string>;
  /** HTML node-path entries of ignorePaths. */
  readonly nodes: NodeRules;
}

const ruleCache = new WeakMap<object, ValueRules>();

/** Compiled once per route diff settings. */
export function valueRulesFor(diff: {
  readonly tolerance: readonly NumberTolerance[];
  readonly unordered: readonly string[];
  readonly ignorePaths: readonly string[];
}): ValueRules {
  let rules = ruleCache.get(diff);
  if (!rules) {
    rules = {
      tolerance: new PointerPatterns(diff.tolerance.map((t) => [t.path, t] as const)),
      unordered: new PointerPatterns(diff.unordered.map((u) => [u, true] as const)),
      nodes: new NodeRules(diff.ignorePaths),
    };
    ruleCache.set(diff, rules);
  }
  return rules;
}

export const NO_VALUE_RULES: ValueRules = {
  tolerance: new PointerPatterns<NumberTolerance>([]),
  unordered: new PointerPatterns<true>([]),
  nodes: new NodeRules([]),
};

export function withinTolerance(a: number, b: number, t: NumberTolerance): boolean {
  const gap = Math.abs(a - b);
  return t.mode === 'absolute' ? gap <= t.value : gap <= t.value * Math.max(Math.abs(a), Math.abs(b));
}

export interface BodyComparison {
  readonly differences: RawDifference[];
  readonly nodes: number;
  readonly limited?: 'nodes' | 'depth';
}

type JsonType = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

function jsonType(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v as JsonType;
}

/** JSON with object keys sorted: equal for equal values whatever the key order. */
function canonical(value: unknown): string {
  const v = resolve(value);
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  const obj = v as Record<string, unknown>;
  return (
    '{' +
    Object.keys(obj)
      .sort()
      .map((k) => JSON.stringify(k) + ':' + canonical(obj[k]))
      .join(',') +
    '}'
  );
}

function sameElements(a: readonly unknown[], b: readonly unknown[]): boolean {
  const left = a.map(canonical).sort();
  const right = b.map(canonical).sort();
  for (let i = 0; i < left.length; i++) if (left[i] !== right[i]) return false;
  return true;
}

/** Arrays longer than this are compared by index only, never as reordered. */
const ORDER_CHECK_MAX = 256;
/** Unordered arrays longer than this are compared by index. */
const MULTISET_MAX = 4096;

type Container = readonly [Record<string, unknown>, Record<string, unknown>];
/** Marks an array level on the path: its index is "*" in the template. */
const ARRAY_LEVEL = null;

class JsonWalk {
  readonly differences: RawDifference[] = [];
  nodes = 0;
  limited: 'nodes' | 'depth' | undefined;
  /**
   * The path walked so far: each level's key or index, and the two objects
   * it was taken from (null for arrays). Pointers and templates are built
   * only when a difference is recorded, so equal subtrees cost no strings.
   */
  private readonly keys: (string | number)[] = [];
  private readonly containers: (Container | null)[] = [];
  private readonly mapLike = new Map<Container, boolean>();

  constructor(
    private readonly rules: IgnoreRules,
    private readonly limits: WalkLimits,
    private readonly values: ValueRules = NO_VALUE_RULES,
  ) {}

  private template(): string {
    let template = '';
    for (let i = 0; i < this.keys.length; i++) template += this.wild(i) ? '/' + ANY : '/' + escapeSegment(String(this.keys[i]));
    return template;
  }

  /** The array at the current path is a set: configured, or learned from the noise. */
  private unordered(): boolean {
    if (this.values.unordered.size > 0 && this.values.unordered.match(this.keys)) return true;
    return this.values.learnedUnordered !== undefined && this.values.learnedUnordered.has(this.template());
  }

  /** Whether a level's key is "*" in the template: array indices, and keys of map-like objects. */
  private wild(level: number): boolean {
    const container = this.containers[level]!;
    if (container === ARRAY_LEVEL) return true;
    let map = this.mapLike.get(container);
    if (map === undefined) {
      const [a, b] = container;
      const keysA = Object.keys(a);
      const keysB = Object.keys(b);
      // Decoded protobuf messages are keyed by field names or numbers, never by data.
      map = !isMessage(a) && (isMapLike(keysA) || (keysB.length !== keysA.length && isMapLike(keysB)));
      this.mapLike.set(container, map);
    }
    return map;
  }

  private record(change: ChangeKind, primary: unknown, shadow: unknown): void {
    let pointer = '';
    let template = '';
    for (let i = 0; i < this.keys.length; i++) {
      const escaped = '/' + escapeSegment(String(this.keys[i]));
      pointer += escaped;
      template += this.wild(i) ? '/' + ANY : escaped;
    }
    this.differences.push({ pointer, template, change, primary: plain(primary), shadow: plain(shadow) });
  }

  /** The node budget is spent: stop walking. */
  private get stopped(): boolean {
    return this.limited === 'nodes';
  }

  private spend(): boolean {
    if (this.stopped) return false;
    if (++this.nodes > this.limits.maxNodes) {
      this.limited = 'nodes';
      return false;
    }
    return true;
  }

  walk(a: unknown, b: unknown, state: RuleState, depth: number): void {
    if (!this.spend() || a === b) return;
    // A part of the primary left unparsed (json-bytes.ts) is parsed once it differs.
    a = resolve(a);
    b = resolve(b);
    if (a === b) return;
    const ta = jsonType(a);
    if (ta !== jsonType(b)) return this.record('type', a, b);
    if (ta === 'object') return this.objects(a as Record<string, unknown>, b as Record<string, unknown>, state, depth);
    if (ta === 'array') return this.arrays(a as unknown[], b as unknown[], state, depth);
    if (ta === 'number' && this.values.tolerance.size > 0) {
      const t = this.values.tolerance.match(this.keys);
      if (t && withinTolerance(a as number, b as number, t)) return;
    }
    this.record('value', a, b);
  }

  private deeper(depth: number): boolean {
    if (depth < this.limits.maxDepth) return true;
    this.limited ??= 'depth';
    return false;
  }

  /** The rule state one segment down; undefined when that subtree is ignored. */
  private below(state: RuleState, segment: string | number): RuleState | undefined {
    if (state.length === 0) return state;
    const next = this.rules.step(state, String(segment));
    return next.length > 0 && this.rules.ignored(next) ? undefined : next;
  }

  private objects(a: Record<string, unknown>, b: Record<string, unknown>, state: RuleState, depth: number): void {
    if (!this.deeper(depth)) return;
    const container: Container = [a, b];
    const level = this.keys.length;
    this.containers.push(container);
    this.keys.push('');
    for (const k in a) {
      const next = this.below(state, k);
      if (next === undefined) continue;
      this.keys[level] = k;
      if (Object.hasOwn(b, k)) this.walk(a[k], b[k], next, depth + 1);
      else if (this.spend()) this.record('missing', a[k], undefined);
      if (this.stopped) break;
    }
    if (!this.stopped) {
      for (const k in b) {
        if (Object.hasOwn(a, k)) continue;
        if (this.below(state, k) === undefined) continue;
        this.keys[level] = k;
        if (this.spend()) this.record('extra', undefined, b[k]);
        if (this.stopped) break;
      }
    }
    this.keys.pop();
    this.containers.pop();
  }

  /** Elements of one side the other lacks (by canonical JSON, counting repeats). */
  private multiset(a: unknown[], b: unknown[], state: RuleState): void {
    const counts = new Map<string, number>();
    const keyB = b.map(canonical);
    for (const k of keyB) counts.set(k, (counts.get(k) ?? 0) + 1);
    const level = this.keys.length;
    this.containers.push(ARRAY_LEVEL);
    this.keys.push(0);
    for (let i = 0; i < a.length && !this.stopped; i++) {
      if (!this.spend()) break;
      const k = canonical(a[i]);
      const left = counts.get(k) ?? 0;
      if (left > 0) counts.set(k, left - 1);
      else if (this.below(state, i) !== undefined) {
        this.keys[level] = i;
        this.record('missing', a[i], undefined);
      }
    }
    for (let i = 0; i < b.length && !this.stopped; i++) {
      const k = keyB[i]!;
      const left = counts.get(k) ?? 0;
      if (left === 0) continue;
      counts.set(k, left - 1);
      if (this.below(state, i) !== undefined) {
        this.keys[level] = i;
        this.record('extra', undefined, b[i]);
      }
    }
    this.keys.pop();
    this.containers.pop();
  }

  private arrays(a: unknown[], b: unknown[], state: RuleState, depth: number): void {
    if (!this.deeper(depth)) return;
    if (a.length + b.length <= MULTISET_MAX && (this.values.unordered.size > 0 || this.values.learnedUnordered) && this.unordered()) {
      return this.multiset(a, b, state);
    }
    const mark = this.differences.length;
    const common = Math.min(a.length, b.length);
    const level = this.keys.length;
    this.containers.push(ARRAY_LEVEL);
    this.keys.push(0);
    for (let i = 0; i < a.length || i < b.length; i++) {
      const next = this.below(state, i);
      if (next === undefined) continue;
      this.keys[level] = i;
      if (i < common) this.walk(a[i], b[i], next, depth + 1);
      else if (this.spend()) {
        if (i < a.length) this.record('missing', a[i], undefined);
        else this.record('extra', undefined, b[i]);
      }
      if (this.stopped) break;
    }
    this.keys.pop();
    this.containers.pop();
    if (this.stopped) return;
    if (a.length === b.length && a.length <= ORDER_CHECK_MAX && this.differences.length > mark + 1 && sameElements(a, b)) {
      this.differences.length = mark;
      this.record('order', a, b);
    }
  }
}

export function compareJson(a: unknown, b: unknown, rules: IgnoreRules, limits: WalkLimits, values: ValueRules = NO_VALUE_RULES): BodyComparison {
  // The walk checks the rules one segment down, never at the root itself.
  if (rules.ignoresAll) return { differences: [], nodes: 0 };
  const walk = new JsonWalk(rules, limits, values);
  walk.walk(a, b, rules.start, 0);
  const { differences, nodes, limited } = walk;
  return limited ? { differences, nodes, limited } : { differences, nodes };
}

/** The differing region of two texts, from the start of its first line. */
export function compareText(a: string, b: string): RawDifference | undefined {
  if (a === b) return undefined;
  const min = Math.min(a.length, b.length);
  let start = 0;
  while (start < min && a.charCodeAt(start) === b.charCodeAt(start)) start++;
  let tail = 0;
  while (tail < min - start && a.charCodeAt(a.length - 1 - tail) === b.charCodeAt(b.length - 1 - tail)) tail++;
  const lineStart = a.lastIndexOf('\n', start - 1) + 1;
  const endOf = (text: string) => {
    const nl = text.indexOf('\n', text.length - tail);
    return nl < 0 ? text.length : nl;
  };
  let line = 1;
  for (let i = a.indexOf('\n'); i >= 0 && i < lineStart; i = a.indexOf('\n', i + 1)) line++;
  return {
    pointer: '',
    template: '',
    change: 'text',
    primary: a.slice(lineStart, Math.max(endOf(a), lineStart)),
    shadow: b.slice(lineStart, Math.max(endOf(b), lineStart)),
    note: `text differs from line ${line}, column ${start - lineStart + 1}`,
  };
}

const FORMAT_NAME = { empty: 'empty', json: 'JSON', text: 'text', html: 'HTML', binary: 'binary' } as const;

function preview(body: Lifted): unknown {
  switch (body.format) {
    case 'empty':
      return undefined;
    case 'json':
      return plain(body.value);
    case 'text':
      return body.text;
    case 'html':
      return body.text;
    case 'binary':
      return describeBinary(body);
  }
}

function describeBinary(body: Extract<Lifted, { format: 'binary' }>): string {
  return `${body.bytes} bytes, sha256 ${body.sha256.slice(0, 16)}`;
}

function notes(a: Lifted, b: Lifted, extra?: string): string | undefined {
  const parts: string[] = [];
  if (extra) parts.push(extra);
  if (a.note) parts.push(`primary: ${a.note}`);
  if (b.note) parts.push(`shadow: ${b.note}`);
  return parts.length ? parts.join('; ') : undefined;
}

function withNote(d: RawDifference, note: string | undefined): RawDifference {
  return note === undefined ? d : { ...d, note };
}

/** Any two lifted bodies; JSON ignore rules apply to JSON pairs, and "" to any body. */
export function compareBodies(a: Lifted, b: Lifted, rules: IgnoreRules, limits: WalkLimits, values: ValueRules = NO_VALUE_RULES): BodyComparison {
  if (rules.ignoresAll) return { differences: [], nodes: 0 };
  if (a.format === 'json' && b.format === 'json') return compareJson(a.value, b.value, rules, limits, values);
  if (a.format === 'html' && b.format === 'html') return compareHtml(a.root, b.root, values.nodes, limits);
  if (a.format === 'empty' && b.format === 'empty') return { differences: [], nodes: 1 };
  if (a.format === 'text' && b.format === 'text') {
    const d = compareText(a.text, b.text);
    return { differences: d ? [withNote(d, notes(a, b, d.note))] : [], nodes: 1 };
  }
  if (a.format === 'binary' && b.format === 'binary') {
    if (a.bytes === b.bytes && a.sha256 === b.sha256) return { differences: [], nodes: 1 };
    const d: RawDifference = { pointer: '', template: '', change: 'binary', primary: describeBinary(a), shadow: describeBinary(b) };
    return { differences: [withNote(d, notes(a, b))], nodes: 1 };
  }
  const change: ChangeKind = a.format === 'empty' ? 'extra' : b.format === 'empty' ? 'missing' : 'type';
  const what = change === 'type' ? `primary body is ${FORMAT_NAME[a.format]}, shadow body is ${FORMAT_NAME[b.format]}` : undefined;
  const d: RawDifference = { pointer: '', template: '', change, primary: preview(a), shadow: preview(b) };
  return { differences: [withNote(d, notes(a, b, what))], nodes: 1 };
}
