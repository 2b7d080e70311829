/**
 * JSON Pointers (RFC 6901): escaping, templates for grouping, and the
 * `diff.ignorePaths` rules, where "*" stands for any one segment.
 */

export function escapeSegment(segment: string): string {
  if (segment.indexOf('~') < 0 && segment.indexOf('/') < 0) return segment;
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function unescapeSegment(segment: string): string {
  if (segment.indexOf('~') < 0) return segment;
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** "" is the whole document; "/a/0" is key a, element 0. */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`not a JSON Pointer: "${pointer}"`);
  return pointer.slice(1).split('/').map(unescapeSegment);
}

/** The template segment for every array index and id-like key. */
export const ANY = '*';

const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/**
 * An object used as a map (Diffy's cardinality guard): many keys, or keys
 * that are ids, e-mail addresses, URLs... Its keys become "*" in templates,
 * so the summary's path counts stay bounded.
 */
export function isMapLike(keys: readonly string[]): boolean {
  if (keys.length > 64) return true;
  for (const k of keys) if (k.length > 64 || !PLAIN_KEY.test(k)) return true;
  return false;
}

interface RuleNode {
  readonly children: Map<string, RuleNode>;
  any: RuleNode | undefined;
  /** A rule ends here: this node and everything below is ignored. */
  terminal: boolean;
}

const node = (): RuleNode => ({ children: new Map(), any: undefined, terminal: false });

/** A cursor into the rules: the rule nodes still alive at some depth. */
export type RuleState = readonly RuleNode[];

const NONE: RuleState = [];

/**
 * The compiled `ignorePaths` of a route. Walking a document, `step` moves
 * the cursor one segment down; `ignored` says the subtree is excluded.
 */
export class IgnoreRules {
  private readonly root: RuleNode = node();
  readonly size: number;

  constructor(patterns: readonly string[]) {
    let size = 0;
    for (const p of patterns) {
      let segments: string[];
      try {
        segments = parsePointer(p);
      } catch {
        continue;
      }
      let at = this.root;
      for (const s of segments) {
        if (s === ANY) at = at.any ??= node();
        else {
          let next = at.children.get(s);
          if (!next) at.children.set(s, (next = node()));
          at = next;
        }
      }
      at.terminal = true;
      size++;
    }
    this.size = size;
  }

  /** "" is among the rules: it names the whole document, so nothing in it is compared. */
  get ignoresAll(): boolean {
    return this.root.terminal;
  }

  get start(): RuleState {
    return this.size === 0 ? NONE : [this.root];
  }

  step(state: RuleState, segment: string): RuleState {
    if (state.length === 0) return NONE;
    let out: RuleNode[] | undefined;
    for (const n of state) {
      const exact = n.children.get(segment);
      if (exact) (out ??= []).push(exact);
      if (n.any) (out ??= []).push(n.any);
    }
    return out ?? NONE;
  }

  ignored(state: RuleState): boolean {
    for (const n of state) if (n.terminal) return true;
    return false;
  }

  /** The cursor at a pointer's position. */
  at(segments: readonly string[]): RuleState {
    let state = this.start;
    for (const s of segments) {
      if (state.length === 0) return NONE;
      state = this.step(state, s);
    }
    return state;
  }

  matches(pointer: string): boolean {
    const segments = parsePointer(pointer);
    let state = this.start;
    if (this.ignored(state)) return true;
    for (const s of segments) {
      state = this.step(state, s);
      if (state.length === 0) return false;
      if (this.ignored(state)) return true;
    }
    return false;
  }
}

/** Cached per route: ignore rules compile once per distinct list. */
const compiled = new WeakMap<readonly string[], IgnoreRules>();

export function ignoreRulesFor(patterns: readonly string[]): IgnoreRules {
  let rules = compiled.get(patterns);
  if (!rules) {
    rules = new IgnoreRules(patterns);
    compiled.set(patterns, rules);
  }
  return rules;
}

/**
 * JSON Pointer patterns ("*" is any one segment) for per-path settings such
 * as diff.tolerance and diff.unordered; matched against the keys walked.
 */
export class PointerPatterns<T> {
  private readonly patterns: { readonly segments: readonly string[]; readonly value: T }[] = [];

  constructor(entries: readonly (readonly [string, T])[]) {
    for (const [pattern, value] of entries) {
      try {
        this.patterns.push({ segments: parsePointer(pattern), value });
      } catch {
        // Validation reports malformed pointers; a bad one matches nothing.
      }
    }
  }

  get size(): number {
    return this.patterns.length;
  }

  /** The value of the first pattern matching these keys exactly. */
  match(keys: readonly (string | number)[]): T | undefined {
    for (const p of this.patterns) {
      if (p.segments.length !== keys.length) continue;
      let ok = true;
      for (let i = 0; i < keys.length && ok; i++) ok = p.segments[i] === ANY || p.segments[i] === String(keys[i]);
      if (ok) return p.value;
    }
    return undefined;
  }
}
