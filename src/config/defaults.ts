/**
 * Built-in defaults, read from schema.ts, the one place they are declared,
 * and parsed as the validator parses a written value: durations in
 * milliseconds, sizes in bytes, addresses as {host, port}.
 */
import { configSpec, type ObjectSpec, type Spec } from './schema.js';
import type { OutlierDetectionConfig, RetryConfig, RetryOn } from './types.js';
import { parseAddress, parseDuration, parseSize } from './units.js';

export type Defaults = Readonly<Record<string, any>>;

const cache = new Map<string, Defaults>();

/**
 * The defaults of the object at `path` in the config: property names
 * separated by ".", "*" for a map's values or a list's items
 * ("routes.*.release.gates").
 */
export function defaultsAt(path: string): Defaults {
  let known = cache.get(path);
  if (!known) {
    const spec = objectAt(path);
    const out: Record<string, unknown> = {};
    for (const [key, property] of Object.entries(spec.properties)) {
      if (property.default !== undefined) out[key] = parsedDefault(property, `${path}.${key}`);
    }
    known = Object.freeze(out);
    cache.set(path, known);
  }
  return known;
}

/** The object spec at `path` ('' for the whole config). */
export function objectAt(path: string): ObjectSpec {
  let spec: Spec = configSpec;
  for (const step of path === '' ? [] : path.split('.')) {
    spec = inner(spec);
    if (spec.type === 'object' && step !== '*' && spec.properties[step]) spec = spec.properties[step]!;
    else if (spec.type === 'map' && step === '*') spec = spec.values;
    else if (spec.type === 'array' && step === '*') spec = spec.items;
    else throw new Error(`config spec has no "${step}" in "${path}"`);
  }
  spec = inner(spec);
  if (spec.type !== 'object') throw new Error(`config spec at "${path}" is not an object`);
  return spec;
}

/** A value that may be written as a mapping: its mapping form. */
function inner(spec: Spec): Spec {
  return spec.type === 'union' && spec.map ? spec.map : spec;
}

/** A declared default, as the validator would have read it from a file. */
export function parsedDefault(spec: Spec, where: string): unknown {
  const value = spec.default;
  const kind = spec.type === 'union' ? (typeof value === 'number' && spec.number ? spec.number : spec.scalar) : spec;
  const parsed =
    kind?.type === 'duration' ? parseDuration(value) : kind?.type === 'size' ? parseSize(value) : kind?.type === 'address' ? parseAddress(value, '') : undefined;
  if (!parsed) return Array.isArray(value) ? Object.freeze([...value]) : value;
  if (!parsed.ok) throw new Error(`config spec: default of ${where} is invalid: ${parsed.error}`);
  return parsed.value;
}

/** An upstream's passive ejection settings: those written over the defaults. */
export function outlierDetectionConfig(written: Readonly<Record<string, unknown>> = {}): OutlierDetectionConfig {
  const o = { ...defaultsAt('upstreams.*.outlierDetection'), ...written };
  return { consecutiveFailures: o['consecutiveFailures'], baseEjectionMs: o['baseEjectionTime'], maxEjectionPercent: o['maxEjectionPercent'] };
}

/** An upstream's retry settings: those written over the defaults (invalid `on` items were reported by the shape pass). */
export function retryConfig(written: Readonly<Record<string, unknown>> = {}): RetryConfig {
  const r = { ...defaultsAt('upstreams.*.retry'), ...written };
  const on = [...new Set((Array.isArray(r['on']) ? r['on'] : []).filter((x): x is RetryOn => x === 'connect' || x === 'reset' || typeof x === 'number'))];
  return { attempts: r['attempts'], on, budgetPercent: r['budgetPercent'] };
}
