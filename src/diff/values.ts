/**
 * What of a differing value may be kept: members under ignored paths are
 * removed (they may be secret), and long values are cut to a preview so one
 * event stays small whatever the bodies hold.
 */
import { plain } from './json-bytes.js';
import { parsePointer, type IgnoreRules, type RuleState } from './paths.js';
import type { JsonValue } from './types.js';

export interface Kept {
  readonly value: JsonValue;
  readonly clipped: boolean;
}

/** A copy of `value` without the members the rules ignore. */
function strip(value: unknown, rules: IgnoreRules, state: RuleState): unknown {
  if (state.length === 0 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    return value.flatMap((item, i) => {
      const next = rules.step(state, String(i));
      return rules.ignored(next) ? [] : [strip(item, rules, next)];
    });
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const next = rules.step(state, k);
    if (!rules.ignored(next)) out[k] = strip(v, rules, next);
  }
  return out;
}

/**
 * The JSON text of `value`, built only as far as `max` characters:
 * `complete` says whether the whole text fits.
 */
function jsonPrefix(value: unknown, max: number): { text: string; complete: boolean } {
  let out = '';
  const write = (v: unknown): boolean => {
    if (v === null || typeof v !== 'object') {
      const scalar = typeof v === 'string' && v.length > max ? v.slice(0, max + 1) : v;
      out += scalar === undefined ? 'null' : JSON.stringify(scalar);
      return out.length <= max;
    }
    const array = Array.isArray(v);
    out += array ? '[' : '{';
    let first = true;
    for (const [k, item] of Object.entries(v)) {
      if (!first) out += ',';
      first = false;
      if (!array) out += JSON.stringify(k) + ':';
      if (out.length > max || !write(item)) return false;
    }
    out += array ? ']' : '}';
    return out.length <= max;
  };
  const complete = write(value);
  return { text: complete ? out : out.slice(0, max), complete };
}

/** Cuts a string to `max` characters, marking the cut with an ellipsis. */
export function clipString(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, max) + '…';
}

/**
 * The stored form of a value found at `pointer` (a body JSON Pointer):
 * ignored members removed, then clipped to `maxChars` of JSON text. A value
 * too long becomes a string preview of its JSON, ending in "…".
 */
export function keepValue(found: unknown, pointer: string, rules: IgnoreRules, maxChars: number): Kept {
  // Whole bodies (examples) may still hold parts left unparsed.
  const value = plain(found);
  if (value === undefined) return { value: null, clipped: false };
  if (typeof value === 'string') {
    return value.length <= maxChars ? { value, clipped: false } : { value: clipString(value, maxChars), clipped: true };
  }
  if (value === null || typeof value !== 'object') return { value: value as JsonValue, clipped: false };
  const kept = rules.size > 0 ? strip(value, rules, rules.at(parsePointer(pointer))) : value;
  const json = jsonPrefix(kept, maxChars);
  return json.complete ? { value: kept as JsonValue, clipped: false } : { value: json.text + '…', clipped: true };
}
