/**
 * Hoverfly simulations, schema v5: reading a file into plain pairs (every
 * problem reported at its line:col) and matching a dark call against them.
 * Live recordings are written out in the same format by export.ts.
 *
 * Matching follows Hoverfly's own definitions: `exact` (string equality),
 * `glob` (`*` matches any run of characters), `regex` (unanchored search),
 * `json` (equal JSON values) and `jsonPartial` (the value is contained in
 * some node of the body); matcher names are case-insensitive; query and
 * header values are joined with ";" before matching; the pair with the
 * strongest match wins (an exact matcher scores 2, any other 1), the first
 * of equals. Anything a file asks for that is not implemented (templating,
 * state, delays, other matchers, matcher chaining) is an error, never
 * silently ignored.
 */
import { resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { isMap, isScalar, isSeq, type LineCounter, type Node } from 'yaml';
import type { Diagnostic } from '../config/diagnostics.js';
import { parseJsonNodes } from '../config/json-nodes.js';
import { MAX_COLLECTION_ITEMS, MAX_CONFIG_BYTES, MAX_NESTING, parseConfigText, readConfigFile, SIMULATION_LIMITS, type ConfigSource } from '../config/load.js';
import type { FieldMatcher, SimulationConfig, SimulationPair } from '../config/types.js';
import { jsonContains, jsonEqual, jsonNesting, MAX_MATCHER_NESTING } from './json.js';

export const SUPPORTED_MATCHERS = ['exact', 'glob', 'regex', 'json', 'jsonpartial'] as const;
const FIELDS = ['method', 'path', 'destination', 'scheme', 'body'] as const;
const MAPPED_FIELDS = ['query', 'headers'] as const;
const UNSUPPORTED_REQUEST = ['requiresState'];
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const UNSUPPORTED_RESPONSE = ['bodyFile', 'logNormalDelay', 'transitionsState', 'removesState', 'postServeAction'];

export interface SimulationLoad {
  readonly simulation: SimulationConfig | undefined;
  readonly diagnostics: Diagnostic[];
}

/** Reads and checks a simulation file; `shown` is the name used in messages. */
export function loadSimulation(path: string, shown: string): SimulationLoad {
  let source: ConfigSource;
  try {
    source = readConfigFile(path, SIMULATION_LIMITS);
  } catch (err) {
    return { simulation: undefined, diagnostics: [at(shown, 1, 1, 'simulation', (err as Error).message.replace(path, shown))] };
  }
  return parseSimulation({ ...source, file: shown }, resolve(path));
}

/** Checks simulation text; the result holds every problem found. */
export function parseSimulation(source: ConfigSource, absolute: string): SimulationLoad {
  const parsed = readSyntax(source);
  if ('diagnostics' in parsed) return { simulation: undefined, diagnostics: parsed.diagnostics };
  const reader = new SimulationReader(source.file, parsed.lines);
  const pairs = reader.read(parsed.contents);
  if (reader.diagnostics.length > 0 || !pairs) return { simulation: undefined, diagnostics: reader.diagnostics };
  return { simulation: { file: absolute, pairs }, diagnostics: [] };
}

function readSyntax(source: ConfigSource): { readonly contents: Node | null; readonly lines: LineCounter } | { readonly diagnostics: Diagnostic[] } {
  const size = source.oversize ?? Buffer.byteLength(source.text);
  const refuse = (message: string) => ({ diagnostics: [at(source.file, 1, 1, '', message)] });
  if (size > SIMULATION_LIMITS.maxBytes) return refuse(`simulation is ${size} bytes; the limit is ${SIMULATION_LIMITS.maxBytes} (is this the right file?)`);
  if (/^\s*\{/.test(source.text.slice(0, 1024))) {
    const parsed = parseJsonNodes(source.text, { maxDepth: MAX_NESTING, maxItems: SIMULATION_LIMITS.maxItems });
    if (parsed.ok) return parsed;
    const pos = parsed.lines.linePos(parsed.offset);
    return { diagnostics: [at(source.file, pos.line, pos.col, '', `cannot parse JSON: ${parsed.message}`)] };
  }
  // YAML syntax: the config's parser and bounds (it gives positions and refuses hostile input).
  if (size > MAX_CONFIG_BYTES) {
    return refuse(`simulation is ${size} bytes; in YAML syntax the limit is ${MAX_CONFIG_BYTES} (in JSON, as Hoverfly writes it, ${SIMULATION_LIMITS.maxBytes})`);
  }
  const parsed = parseConfigText(source, { what: 'simulation', maxBytes: MAX_CONFIG_BYTES, maxItems: MAX_COLLECTION_ITEMS });
  const errors = parsed.diagnostics.filter((d) => d.severity === 'error').map((d) => ({ ...d, code: 'simulation' }));
  if (!parsed.doc || errors.length > 0) return { diagnostics: errors };
  return { contents: parsed.doc.contents, lines: parsed.lines };
}

/** A null written in the file (the parser gives it as a node): the field asks for nothing. */
const isNull = (node: unknown): boolean => node === null || (isScalar(node) && node.value === null);

function at(file: string, line: number, column: number, path: string, message: string): Diagnostic {
  return { severity: 'error', code: 'simulation', message, path, file, line, column };
}

class SimulationReader {
  readonly diagnostics: Diagnostic[] = [];
  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  private error(node: Node | null | undefined, path: string, message: string): void {
    const offset = node?.range?.[0] ?? 0;
    const pos = this.lines.linePos(offset);
    this.diagnostics.push(at(this.file, pos.line, pos.col, path, `${path}: ${message}`));
  }

  private entries(node: unknown, path: string): [string, Node | null][] | undefined {
    if (!isMap(node)) {
      this.error(node as Node, path, 'must be an object');
      return undefined;
    }
    const out: [string, Node | null][] = [];
    for (const item of node.items) {
      const key = isScalar(item.key) ? String(item.key.value) : String(item.key);
      out.push([key, (item.value as Node | null) ?? null]);
    }
    return out;
  }

  private field(node: unknown, key: string): Node | null | undefined {
    if (!isMap(node)) return undefined;
    const pair = node.items.find((i) => isScalar(i.key) && i.key.value === key);
    return pair ? ((pair.value as Node | null) ?? null) : undefined;
  }

  /** `root`: the document's top node. */
  read(root: Node | null): SimulationPair[] | undefined {
    if (!this.entries(root, 'simulation')) return undefined;
    const meta = this.field(root, 'meta');
    const version = this.field(meta, 'schemaVersion');
    if (meta === undefined) this.error(root, 'meta', 'missing: a Hoverfly simulation has meta.schemaVersion');
    else if (!isScalar(version) || typeof version.value !== 'string') this.error(meta, 'meta.schemaVersion', 'missing: expected "v5" or later v5.x');
    else if (!/^v5(\.\d+)*$/.test(version.value)) {
      this.error(version, 'meta.schemaVersion', `"${version.value}" is not supported; only schema v5 simulations are read`);
    }
    const data = this.field(root, 'data');
    if (data === undefined) {
      this.error(root, 'data', 'missing: a Hoverfly simulation has data.pairs');
      return undefined;
    }
    for (const [key, value] of this.entries(data, 'data') ?? []) {
      const path = `data.${key}`;
      if (key === 'pairs') continue;
      if (key === 'globalActions') {
        for (const [k, v] of this.entries(value, path) ?? []) {
          if (!isSeq(v) || v.items.length > 0) this.error(v, `${path}.${k}`, 'delays are not supported');
        }
      } else if (key === 'literals' || key === 'variables') {
        if (!isSeq(value) || value.items.length > 0) this.error(value, path, 'templating is not supported');
      } else this.error(value, path, 'unknown field');
    }
    const pairs = this.field(data, 'pairs');
    if (!isSeq(pairs)) {
      this.error(pairs ?? data, 'data.pairs', 'must be an array of request/response pairs');
      return undefined;
    }
    const out: SimulationPair[] = [];
    pairs.items.forEach((item, i) => {
      const pair = this.pair(item as Node, `data.pairs[${i}]`);
      if (pair) out.push(pair);
    });
    return out;
  }

  private pair(node: Node, path: string): SimulationPair | undefined {
    let request: SimulationPair['request'] | undefined;
    let response: SimulationPair['response'] | undefined;
    for (const [key, value] of this.entries(node, path) ?? []) {
      if (key === 'request') request = this.request(value, `${path}.request`);
      else if (key === 'response') response = this.response(value, `${path}.response`);
      else if (key !== 'labels') this.error(value, `${path}.${key}`, 'unknown field');
    }
    if (!this.field(node, 'request')) this.error(node, `${path}.request`, 'missing');
    if (!this.field(node, 'response')) this.error(node, `${path}.response`, 'missing');
    return request && response ? { request, response } : undefined;
  }

  private request(node: Node | null, path: string): SimulationPair['request'] | undefined {
    const out: Record<string, unknown> = {};
    let ok = true;
    for (const [key, value] of this.entries(node, path) ?? (ok = false, [])) {
      const at = `${path}.${key}`;
      if ((FIELDS as readonly string[]).includes(key)) {
        const matchers = this.matchers(value, at);
        if (matchers) out[key] = matchers;
        else ok = false;
      } else if ((MAPPED_FIELDS as readonly string[]).includes(key)) {
        if (isNull(value)) continue;
        // Names are the file's: a header or parameter named __proto__ is one like any other.
        const map: Record<string, readonly FieldMatcher[]> = Object.create(null);
        for (const [name, list] of this.entries(value, at) ?? (ok = false, [])) {
          const matchers = this.matchers(list, `${at}.${name}`);
          if (matchers) map[name] = matchers;
          else ok = false;
        }
        out[key] = map;
      } else if (UNSUPPORTED_REQUEST.includes(key)) {
        if (isNull(value)) continue;
        ok = false;
        this.error(value, at, 'state is not supported');
      } else {
        ok = false;
        this.error(value, at, `unknown request field; matched are ${[...FIELDS, ...MAPPED_FIELDS].join(', ')}`);
      }
    }
    return ok ? (out as SimulationPair['request']) : undefined;
  }

  private matchers(node: Node | null, path: string): FieldMatcher[] | undefined {
    if (isNull(node)) return [];
    if (!isSeq(node)) {
      this.error(node, path, 'must be an array of {matcher, value}');
      return undefined;
    }
    const out: FieldMatcher[] = [];
    let ok = true;
    node.items.forEach((item, i) => {
      const at = `${path}[${i}]`;
      const matcher = this.field(item, 'matcher');
      const value = this.field(item, 'value');
      for (const [key, v] of this.entries(item, at) ?? (ok = false, [])) {
        if (key === 'doMatch' || key === 'config') {
          if (!isNull(v)) {
            ok = false;
            this.error(v, `${at}.${key}`, key === 'doMatch' ? 'matcher chaining is not supported' : 'matcher config is not supported');
          }
        } else if (key !== 'matcher' && key !== 'value') {
          ok = false;
          this.error(v, `${at}.${key}`, 'unknown field');
        }
      }
      const name = isScalar(matcher) && typeof matcher.value === 'string' ? matcher.value.toLowerCase() : undefined;
      if (name === undefined) {
        ok = false;
        const what = matcher === undefined || isNull(matcher) ? 'missing' : 'must be a name';
        this.error(matcher ?? (item as Node), `${at}.matcher`, `${what}: one of exact, glob, regex, json, jsonPartial`);
        return;
      }
      if (!(SUPPORTED_MATCHERS as readonly string[]).includes(name)) {
        ok = false;
        this.error(matcher, `${at}.matcher`, `matcher "${String(matcher!.toJSON())}" is not supported; use exact, glob, regex, json or jsonPartial`);
        return;
      }
      if (!isScalar(value) || typeof value.value !== 'string') {
        ok = false;
        this.error(value ?? (item as Node), `${at}.value`, 'must be a string');
        return;
      }
      const problem = checkMatcherValue(name, value.value);
      if (problem) {
        ok = false;
        this.error(value, `${at}.value`, problem);
        return;
      }
      out.push({ matcher: name, value: value.value });
    });
    return ok ? out : undefined;
  }

  private response(node: Node | null, path: string): SimulationPair['response'] | undefined {
    let status = 200;
    let body = '';
    let encodedBody = false;
    const headers: Record<string, string[]> = Object.create(null);
    let ok = true;
    for (const [key, value] of this.entries(node, path) ?? (ok = false, [])) {
      const at = `${path}.${key}`;
      const scalar = isScalar(value) ? value.value : undefined;
      if (key === 'status') {
        // A 1xx is not a final answer: sent as one it leaves the client waiting for the real one.
        if (typeof scalar === 'number' && Number.isInteger(scalar) && scalar >= 200 && scalar <= 599) status = scalar;
        else (ok = false), this.error(value, at, 'must be a final HTTP status, 200-599');
      } else if (key === 'body') {
        if (typeof scalar === 'string') body = scalar;
        else (ok = false), this.error(value, at, 'must be a string');
      } else if (key === 'encodedBody') {
        if (typeof scalar === 'boolean') encodedBody = scalar;
        else (ok = false), this.error(value, at, 'must be true or false');
      } else if (key === 'templated') {
        if (scalar === true) (ok = false), this.error(value, at, 'templating is not supported; set templated: false');
        else if (scalar !== false) (ok = false), this.error(value, at, 'must be true or false');
      } else if (key === 'fixedDelay') {
        if (scalar !== 0 && !isNull(value)) (ok = false), this.error(value, at, 'delays are not supported');
      } else if (key === 'headers') {
        for (const [name, list] of this.entries(value, at) ?? (ok = false, [])) {
          if (!isSeq(list) || !list.items.every((v) => isScalar(v) && typeof v.value === 'string')) {
            ok = false;
            this.error(list, `${at}.${name}`, 'must be an array of strings');
            continue;
          }
          if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
            ok = false;
            this.error(list, `${at}.${name}`, 'not a valid header name');
            continue;
          }
          // Node refuses to send such a value, and the dark call would see its connection dropped.
          const bad = list.items.findIndex((v) => !HEADER_VALUE.test(String((v as { value: unknown }).value)));
          if (bad >= 0) {
            ok = false;
            this.error(list.items[bad] as Node, `${at}.${name}[${bad}]`, 'not a valid header value (control characters, or characters beyond Latin-1)');
            continue;
          }
          headers[name] = list.items.map((v) => String((v as { value: unknown }).value));
        }
      } else if (UNSUPPORTED_RESPONSE.includes(key)) {
        if (isNull(value)) continue;
        ok = false;
        this.error(value, at, 'not supported');
      } else {
        ok = false;
        this.error(value, at, 'unknown field');
      }
    }
    // Padded, as Go's StdEncoding writes it: Buffer.from would quietly drop a partial last group.
    if (ok && encodedBody && !BASE64.test(body.replace(/\s+/g, ''))) {
      ok = false;
      this.error(this.field(node, 'body'), `${path}.body`, 'encodedBody is true but the body is not base64');
    }
    return ok ? { status, body, encodedBody, headers } : undefined;
  }
}

/** Why a matcher value cannot be used, or undefined when it can. */
function checkMatcherValue(matcher: string, value: string): string | undefined {
  if (matcher === 'regex') {
    try {
      compileRegex(value);
    } catch (err) {
      return (err as Error).message;
    }
  }
  if (matcher === 'json' || matcher === 'jsonpartial') {
    try {
      const parsed: unknown = JSON.parse(value);
      if (matcher === 'jsonpartial' && (parsed === null || typeof parsed !== 'object')) return 'jsonPartial needs a JSON object or array';
      if (jsonNesting(parsed) > MAX_MATCHER_NESTING) return `JSON nested deeper than ${MAX_MATCHER_NESTING} levels`;
    } catch {
      return 'not valid JSON';
    }
  }
  return undefined;
}

const regexCache = new Map<string, RegExp>();

/**
 * Hoverfly's expressions are Go's (RE2): no backtracking blow-ups. Here
 * they run on a backtracking engine, so what RE2 lacks anyway
 * (back-references, look-around) and quantified groups holding quantifiers
 * (the shape of catastrophic backtracking) are refused. Not every such
 * shape can be told from the source ((a|aa)+ is one), so a match that
 * backtracks past V8's bound is finished on V8's linear-time engine, which
 * takes every expression left after those refusals: a dark call's path or
 * body cannot stall the process.
 */
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

export function compileRegex(source: string): RegExp {
  const cached = regexCache.get(source);
  if (cached) return cached;
  if (source.length > 1000) throw new Error('regular expression longer than 1000 characters');
  let flags = '';
  let body = source;
  const inline = /^\(\?([imsU]+)\)/.exec(body);
  if (inline) {
    if (inline[1]!.includes('U')) throw new Error('the U flag is not supported');
    flags = [...new Set(inline[1]!)].join('');
    body = body.slice(inline[0].length);
  }
  if (/\\[1-9]|\\k<|\(\?<?[=!]/.test(body)) throw new Error('back-references and look-around are not supported (Go regular expressions have neither)');
  if (/\([^()]*[+*}][^()]*\)[+*{]/.test(body)) throw new Error('a repeated group that itself repeats (risk of catastrophic backtracking)');
  body = body.replace(/\\A/g, '^').replace(/\\z/g, '$');
  let regex: RegExp;
  try {
    regex = new RegExp(body, flags);
  } catch (err) {
    throw new Error(`not a valid regular expression: ${(err as Error).message}`);
  }
  if (regexCache.size > 10_000) regexCache.clear();
  regexCache.set(source, regex);
  return regex;
}

/** ryanuber/go-glob's rule: `*` matches any run of characters, nothing else is special. */
export function globMatch(pattern: string, subject: string): boolean {
  if (pattern === '*') return true;
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === subject;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (!subject.startsWith(first)) return false;
  let at = first.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = subject.indexOf(parts[i]!, at);
    if (found < 0) return false;
    at = found + parts[i]!.length;
  }
  return subject.length - last.length >= at && subject.endsWith(last);
}

type ParsedJson = { ok: true; value: unknown } | { ok: false };

function parseJsonText(text: string): ParsedJson {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/**
 * Whether `subject` satisfies `m`. `parsed`: the subject as JSON, when the
 * caller has it already (a dark call's body, parsed once for every pair it
 * meets, not once per pair). Matcher values are parsed where they are used:
 * kept parsed, they would hold a simulation's bodies as objects, several
 * times their text.
 */
export function fieldMatches(m: FieldMatcher, subject: string, parsed?: ParsedJson): boolean {
  switch (m.matcher) {
    case 'exact':
      return m.value === subject;
    case 'glob':
      return globMatch(m.value, subject);
    case 'regex':
      return compileRegex(m.value).test(subject);
    case 'json': {
      if (m.value === subject) return true;
      const a = parseJsonText(m.value);
      const b = parsed ?? parseJsonText(subject);
      return a.ok && b.ok && jsonEqual(a.value, b.value);
    }
    case 'jsonpartial': {
      const a = parseJsonText(m.value);
      const b = parsed ?? parseJsonText(subject);
      return a.ok && b.ok && jsonContains(b.value, a.value);
    }
    default:
      return false;
  }
}

/** What a dark call looks like to a simulation: the request at the real dependency. */
export interface SimulatedRequest {
  readonly method: string;
  /** Path at the dependency, without the query. */
  readonly path: string;
  readonly destination: string;
  readonly scheme: string;
  /** Decoded values by name. */
  readonly query: ReadonlyMap<string, readonly string[]>;
  /** Lower-cased names. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly body: string;
}

/** Score of a field's matchers (exact 2, others 1), or -1 when one fails. */
function score(matchers: readonly FieldMatcher[] | undefined, subject: string, parsed?: ParsedJson): number {
  if (!matchers) return 0;
  let total = 0;
  for (const m of matchers) {
    if (!fieldMatches(m, subject, parsed)) return -1;
    total += m.matcher === 'exact' ? 2 : 1;
  }
  return total;
}

function scoreMapped(
  matchers: Readonly<Record<string, readonly FieldMatcher[]>> | undefined,
  actual: ReadonlyMap<string, readonly string[]>,
  emptyMeansNone: boolean,
): number {
  if (!matchers) return 0;
  const names = Object.keys(matchers);
  if (names.length === 0) return emptyMeansNone && actual.size > 0 ? -1 : 1;
  let total = 0;
  for (const name of names) {
    const values = actual.get(emptyMeansNone ? name : name.toLowerCase()) ?? lookupFolded(actual, name);
    if (!values) return -1;
    const s = score(matchers[name], values.join(';'));
    if (s < 0) return -1;
    total += s;
  }
  return total;
}

function lookupFolded(actual: ReadonlyMap<string, readonly string[]>, name: string): readonly string[] | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of actual) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/**
 * The pairs worth trying for a call, in file order. A recorded export
 * matches every path exactly, and every body exactly or as equal JSON, so
 * pairs are indexed by exact path, then by body: a call tries those of its
 * path (and those with no exact path matcher), and of them those of its
 * body (and those with no exact or json body matcher). Before, a dark call
 * tried every pair on the egress's thread: 1.6 ms a call with 11,500
 * recorded pairs, and 50,000 pairs of one endpoint took 25 ms a call with
 * json body matchers; through the index, 6-9 µs. The strongest match, and
 * the first of equals, are as without the index.
 *
 * Building it takes 62 ms for 50,000 pairs with exact bodies, 300 ms with
 * json ones (each value parsed and its keys sorted), on the egress's
 * thread, which is the serving thread of a single-process gateway. So the
 * egress builds it as a simulation is loaded, in slices of at most
 * INDEX_SLICE_MS with the event loop free between them
 * (`simulationIndexed`), and a dark call that comes meanwhile waits for it.
 */
interface BodyIndex {
  /** By "e" and the exact body, or "j" and the json matcher's value with its keys sorted. */
  readonly byBody: Map<string, number[]>;
  readonly anyBody: number[];
}

interface PathIndex {
  readonly byExactPath: ReadonlyMap<string, BodyIndex>;
  /** Pairs with no exact path matcher: tried for every path. */
  readonly anyPath: BodyIndex;
}

/** Longest an index build runs before it lets the event loop turn (one pair is never split). */
export const INDEX_SLICE_MS = 4;

/** JSON text with every object's keys sorted: equal for values jsonEqual finds equal. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The body key a pair is found by, if its body matchers decide one. */
function bodyKeyOf(pair: SimulationPair): string | undefined {
  const body = pair.request.body;
  // Every matcher of a field must match, so one exact or json matcher decides the body alone.
  const exact = body?.find((m) => m.matcher === 'exact');
  if (exact) return `e${exact.value}`;
  const json = body?.find((m) => m.matcher === 'json');
  if (!json) return undefined;
  const parsed = parseJsonText(json.value);
  return parsed.ok ? `j${canonicalJson(parsed.value)}` : undefined;
}

/** An index being built, pair by pair in file order, so every list stays ascending. */
class IndexBuild {
  private next = 0;
  private readonly byExactPath = new Map<string, BodyIndex>();
  private readonly anyPath: BodyIndex = { byBody: new Map(), anyBody: [] };

  constructor(private readonly pairs: readonly SimulationPair[]) {}

  /** Indexes pairs until every one is in (true) or the clock passes `until` (false). */
  run(until = Infinity): boolean {
    const { pairs } = this;
    while (this.next < pairs.length) {
      const i = this.next++;
      const pair = pairs[i]!;
      // As for bodies: one exact matcher decides the path alone.
      const exact = pair.request.path?.find((m) => m.matcher === 'exact');
      let index = this.anyPath;
      if (exact) {
        index = this.byExactPath.get(exact.value) ?? { byBody: new Map(), anyBody: [] };
        this.byExactPath.set(exact.value, index);
      }
      const key = bodyKeyOf(pair);
      if (key === undefined) index.anyBody.push(i);
      else {
        const same = index.byBody.get(key);
        if (same) same.push(i);
        else index.byBody.set(key, [i]);
      }
      if (until !== Infinity && performance.now() >= until) return this.next >= pairs.length;
    }
    return true;
  }

  get index(): PathIndex {
    return { byExactPath: this.byExactPath, anyPath: this.anyPath };
  }
}

const pathIndexes = new WeakMap<readonly SimulationPair[], PathIndex>();
const builds = new WeakMap<readonly SimulationPair[], IndexBuild>();
const slicedBuilds = new WeakMap<readonly SimulationPair[], Promise<void>>();

/** The index of `pairs`, built (or its build finished) here and now when it is not yet. */
function pathIndex(pairs: readonly SimulationPair[]): PathIndex {
  const index = pathIndexes.get(pairs);
  if (index) return index;
  const build = builds.get(pairs) ?? new IndexBuild(pairs);
  build.run();
  return finish(pairs, build);
}

function finish(pairs: readonly SimulationPair[], build: IndexBuild): PathIndex {
  const index = build.index;
  pathIndexes.set(pairs, index);
  builds.delete(pairs);
  return index;
}

/**
 * Settles once `pairs` is indexed, building the index in slices of at most
 * INDEX_SLICE_MS meanwhile. Calls for the same pairs share one build.
 */
export function simulationIndexed(pairs: readonly SimulationPair[]): Promise<void> {
  if (pathIndexes.has(pairs)) return INDEXED;
  const pending = slicedBuilds.get(pairs);
  if (pending) return pending;
  const build = new IndexBuild(pairs);
  builds.set(pairs, build);
  const done = new Promise<void>((resolve) => {
    const slice = (): void => {
      // A call that could not wait (matchSimulation) may have finished it.
      if (pathIndexes.has(pairs)) return resolve();
      if (build.run(performance.now() + INDEX_SLICE_MS)) {
        finish(pairs, build);
        resolve();
      } else setImmediate(slice);
    };
    setImmediate(slice);
  });
  slicedBuilds.set(pairs, done);
  return done;
}

const INDEXED = Promise.resolve();

const NONE: readonly number[] = [];

/** The pairs of `index` a call with this body may match, ascending. */
function bodyCandidates(index: BodyIndex | undefined, exactKey: string, jsonKey: string | undefined): number[] {
  if (!index) return [];
  const exact = index.byBody.get(exactKey) ?? NONE;
  const json = jsonKey === undefined ? NONE : (index.byBody.get(jsonKey) ?? NONE);
  return mergeAscending(mergeAscending(exact, json), index.anyBody);
}

/** Two ascending lists as one. */
function mergeAscending(a: readonly number[], b: readonly number[]): number[] {
  if (a.length === 0) return b as number[];
  if (b.length === 0) return a as number[];
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) out.push(j >= b.length || (i < a.length && a[i]! < b[j]!) ? a[i++]! : b[j++]!);
  return out;
}

/** The strongest matching pair (first of equals), or undefined. */
export function matchSimulation(pairs: readonly SimulationPair[], req: SimulatedRequest): SimulationPair | undefined {
  const index = pathIndex(pairs);
  const exactKey = `e${req.body}`;
  const parsedBody = parseJsonText(req.body);
  // A body nested deeper than any matcher value may be equals none (and would overflow the walk).
  const jsonKey = parsedBody.ok && jsonNesting(parsedBody.value) <= MAX_MATCHER_NESTING ? `j${canonicalJson(parsedBody.value)}` : undefined;
  const candidates = mergeAscending(bodyCandidates(index.byExactPath.get(req.path), exactKey, jsonKey), bodyCandidates(index.anyPath, exactKey, jsonKey));
  let best: SimulationPair | undefined;
  let bestScore = -1;
  for (const at of candidates) {
    const pair = pairs[at]!;
    const r = pair.request;
    // Field by field, cheapest and most selective first; a miss ends the pair.
    const method = score(r.method, req.method);
    if (method < 0) continue;
    const path = score(r.path, req.path);
    if (path < 0) continue;
    const destination = score(r.destination, req.destination);
    if (destination < 0) continue;
    const scheme = score(r.scheme, req.scheme);
    if (scheme < 0) continue;
    const body = score(r.body, req.body, parsedBody);
    if (body < 0) continue;
    let total = method + path + destination + scheme + body;
    const q = scoreMapped(r.query, req.query, true);
    if (q < 0) continue;
    const h = scoreMapped(r.headers, req.headers, false);
    if (h < 0) continue;
    total += q + h;
    if (total > bestScore) {
      best = pair;
      bestScore = total;
    }
  }
  return best;
}
