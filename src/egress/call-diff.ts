/**
 * Side-effect differences: what a dark version would have sent to its
 * dependencies against what the live one did send, as differences of kind
 * `call`. Dark calls pair with live ones as at replay time (the n-th to a
 * dependency, method and path with the n-th); a pair is compared on its
 * query and, structurally, on its body (less the dependency's ignoreBody
 * pointers). Live calls with no dark twin are `missing`, dark calls with no
 * live twin `extra`.
 */
import { compareBodies, type RawDifference, type WalkLimits } from '../diff/compare.js';
import { lift } from '../diff/lift.js';
import { ignoreRulesFor } from '../diff/paths.js';
import { callKey, type EgressCall, type RequestCalls } from './recordings.js';

/** The calls of one mirrored request, with what comparing them needs. */
export interface PairCalls extends RequestCalls {
  /** ignoreBody of each dependency named in the calls. */
  readonly ignoreBody: Readonly<Record<string, readonly string[]>>;
}

export interface CallRef {
  readonly dependency: string;
  readonly method: string;
  readonly path: string;
}

export interface CallDifference extends RawDifference {
  readonly call: CallRef;
}

const MAX_DECODED = 4 * 1024 * 1024;

const ref = (c: EgressCall): CallRef => ({ dependency: c.dependency, method: c.method, path: c.path });
const label = (c: CallRef) => `${c.dependency} ${c.method} ${c.path}`;

function sortedQuery(query: string): string {
  return [...new URLSearchParams(query)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`).join('&');
}

export function callDifferences(calls: PairCalls, limits: WalkLimits): CallDifference[] {
  const out: CallDifference[] = [];
  const keys: string[] = [];
  const live = new Map<string, EgressCall[]>();
  const dark = new Map<string, EgressCall[]>();
  for (const [list, by] of [
    [calls.live, live],
    [calls.dark, dark],
  ] as const) {
    for (const c of list) {
      const key = callKey(c);
      if (!live.has(key) && !dark.has(key)) keys.push(key);
      const group = by.get(key);
      if (group) group.push(c);
      else by.set(key, [c]);
    }
  }
  for (const key of keys) {
    const l = live.get(key) ?? [];
    const d = dark.get(key) ?? [];
    for (let i = 0; i < Math.max(l.length, d.length); i++) {
      const a = l[i];
      const b = d[i];
      if (a && !b) {
        const call = ref(a);
        out.push({ pointer: '', template: label(call), change: 'missing', primary: label(call), shadow: null, note: `the dark version never called ${label(call)}`, call });
      } else if (b && !a) {
        const call = ref(b);
        out.push({ pointer: '', template: label(call), change: 'extra', primary: null, shadow: label(call), note: `the dark version also called ${label(call)}`, call });
      } else if (a && b) out.push(...compareCalls(a, b, calls.ignoreBody[a.dependency] ?? [], limits));
    }
  }
  return out;
}

function compareCalls(live: EgressCall, dark: EgressCall, ignoreBody: readonly string[], limits: WalkLimits): CallDifference[] {
  const call = ref(live);
  const out: CallDifference[] = [];
  if (sortedQuery(live.query) !== sortedQuery(dark.query)) {
    out.push({ pointer: '?', template: `${label(call)} ?`, change: 'value', primary: live.query, shadow: dark.query, note: `${label(call)}: query differs`, call });
  }
  if (live.body.equals(dark.body)) return out;
  const body = compareBodies(
    lift({ headers: live.headers, body: live.body, truncated: false }, MAX_DECODED),
    lift({ headers: dark.headers, body: dark.body, truncated: false }, MAX_DECODED),
    ignoreRulesFor(ignoreBody),
    limits,
  );
  for (const d of body.differences) out.push({ ...d, template: `${label(call)} ${d.template}`.trimEnd(), call });
  return out;
}
