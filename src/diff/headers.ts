/**
 * Response header comparison. Headers that differ on every answer (dates,
 * request and trace ids, timings), hop-by-hop and framing headers (bodies
 * are compared after decoding) are never compared; nor are the route's
 * `diff.ignoreHeaders`. Set-Cookie is compared by cookie names only, and the
 * values of headers that may carry secrets are never kept.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RawDifference } from './compare.js';
import { isSecretHeader, REDACTED } from './secrets.js';

/** Never compared. Listed in docs/diffs.md; keep the two in step. */
export const BUILTIN_IGNORED_HEADERS: readonly string[] = [
  // change on every response
  'date',
  'age',
  'expires',
  'last-modified',
  'x-request-id',
  'x-correlation-id',
  'x-trace-id',
  'traceparent',
  'tracestate',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-amzn-requestid',
  'x-amzn-trace-id',
  'x-cloud-trace-context',
  'cf-ray',
  'server-timing',
  'x-response-time',
  'x-runtime',
  'x-envoy-upstream-service-time',
  // framing and hop-by-hop: bodies are compared decoded
  'content-length',
  'content-encoding',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  // gRPC message compression: messages are compared decompressed
  'grpc-encoding',
  'grpc-accept-encoding',
];

const builtin = new Set(BUILTIN_IGNORED_HEADERS);

/** Ignored header names for a route: the built-in ones plus its own. */
const sets = new WeakMap<readonly string[], ReadonlySet<string>>();
export function ignoredHeaders(routeIgnores: readonly string[]): ReadonlySet<string> {
  let set = sets.get(routeIgnores);
  if (!set) {
    set = routeIgnores.length === 0 ? builtin : new Set([...builtin, ...routeIgnores]);
    sets.set(routeIgnores, set);
  }
  return set;
}

/** Cookie names of Set-Cookie headers, sorted: values may be secret and always vary. */
function cookieNames(value: string | string[]): string {
  const list = Array.isArray(value) ? value : [value];
  return list
    .map((c) => c.slice(0, c.indexOf('=') < 0 ? c.length : c.indexOf('=')).trim())
    .sort()
    .join(', ');
}

function normalized(name: string, value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (name === 'set-cookie') return cookieNames(value);
  return Array.isArray(value) ? value.map((v) => v.trim()).join(', ') : value.trim();
}

function kept(name: string, value: string | undefined): string | undefined {
  if (value === undefined || name === 'set-cookie') return value;
  return isSecretHeader(name) ? REDACTED : value;
}

/**
 * One difference per header whose (normalized) value differs, in name
 * order; the pointer is the header name. Values are already redacted.
 */
export function compareHeaders(a: IncomingHttpHeaders, b: IncomingHttpHeaders, ignored: ReadonlySet<string>): RawDifference[] {
  const names = new Set<string>();
  for (const n in a) if (!ignored.has(n)) names.add(n);
  for (const n in b) if (!ignored.has(n)) names.add(n);
  const out: RawDifference[] = [];
  for (const name of [...names].sort()) {
    const va = normalized(name, a[name]);
    const vb = normalized(name, b[name]);
    if (va === vb) continue;
    const change = va === undefined ? 'extra' : vb === undefined ? 'missing' : 'value';
    const note = name === 'set-cookie' ? 'cookie names only' : undefined;
    const d: RawDifference = { pointer: name, template: name, change, primary: kept(name, va), shadow: kept(name, vb) };
    out.push(note ? { ...d, note } : d);
  }
  return out;
}
