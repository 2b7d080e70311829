/**
 * JSON value relations used by the simulation matchers: equality, and
 * Hoverfly's jsonPartial containment (the expected object or array is
 * contained in some node of the actual document).
 */

type Obj = Record<string, unknown>;
/**
 * How deep the request's body is searched. The matchers' own values are
 * held to MAX_MATCHER_NESTING at load, so no walk here runs out of stack.
 */
const MAX_DEPTH = 128;
export const MAX_MATCHER_NESTING = 64;

/** Nesting of a JSON value (0 for a scalar), counted without recursion. */
export function jsonNesting(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    max = Math.max(max, depth + 1);
    for (const child of Array.isArray(v) ? v : Object.values(v as Obj)) stack.push([child, depth + 1]);
  }
  return max;
}
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  if (isObj(a) && isObj(b)) {
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    return keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

function mapContainsMap(expected: Obj, actual: unknown): boolean {
  if (!isObj(actual)) return false;
  for (const [key, value] of Object.entries(expected)) {
    if (isObj(value)) {
      if (!mapContainsMap(value, actual[key])) return false;
    } else if (Array.isArray(value)) {
      if (!arrayContainsArray(value, actual[key])) return false;
    } else if (!Object.hasOwn(actual, key) || actual[key] !== value) return false;
  }
  return true;
}

function arrayContainsArray(expected: unknown[], actual: unknown): boolean {
  if (!Array.isArray(actual)) return false;
  for (const item of expected) {
    if (isObj(item)) {
      if (!arrayContainsMap(actual, item)) return false;
    } else if (Array.isArray(item)) {
      if (!arrayContainsArray(item, actual)) return false;
    } else if (!actual.includes(item)) return false;
  }
  return true;
}

/** The search descends into the request's own arrays: as deep as `nodes` looks, no deeper. */
function arrayContainsMap(actual: unknown[], expected: Obj, depth = 0): boolean {
  if (depth > MAX_DEPTH) return false;
  for (const v of actual) {
    if (isObj(v) ? mapContainsMap(expected, v) : Array.isArray(v) && arrayContainsMap(v, expected, depth + 1)) return true;
  }
  return false;
}

function* nodes(value: unknown, depth = 0): Generator<unknown> {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return;
  yield value;
  for (const child of Array.isArray(value) ? value : Object.values(value as Obj)) yield* nodes(child, depth + 1);
}

/** Whether `expected` (an object or array) is contained in some node of `actual`. */
export function jsonContains(actual: unknown, expected: unknown): boolean {
  for (const node of nodes(actual)) {
    if (isObj(expected) ? mapContainsMap(expected, node) : Array.isArray(expected) && arrayContainsArray(expected, node)) return true;
  }
  return false;
}
