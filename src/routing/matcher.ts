/**
 * Route matching, compiled once per config: a route's match block becomes a
 * small predicate over the request facts the gateway extracts once.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RouteMatchConfig } from '../config/types.js';

export interface RequestFacts {
  readonly method: string;
  /** Normalized path, without the query. */
  readonly path: string;
  /** Lower-case host without port ('' when absent). */
  readonly host: string;
  readonly headers: IncomingHttpHeaders;
}

export type Matcher = (facts: RequestFacts) => boolean;

/** `/shop` matches `/shop`, `/shop/` and `/shop/x`, never `/shopping`. */
export function prefixMatches(prefix: string, path: string): boolean {
  return path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* / */);
}

export function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    return host.length > suffix.length && host.endsWith(suffix);
  }
  return host === pattern;
}

export function compileMatcher(match: RouteMatchConfig): Matcher {
  const checks: Matcher[] = [];
  const { prefix, methods, headers, host, grpc } = match;
  if (methods) {
    const set = new Set(methods);
    checks.push((f) => set.has(f.method));
  }
  if (prefix !== undefined) checks.push((f) => prefixMatches(prefix, f.path));
  if (host !== undefined) checks.push((f) => hostMatches(host, f.host));
  if (grpc !== undefined) checks.push((f) => isGrpc(f.headers) === grpc);
  if (headers) {
    const pairs = Object.entries(headers);
    checks.push((f) => {
      for (const [name, value] of pairs) {
        const actual = f.headers[name];
        if (Array.isArray(actual) ? !actual.includes(value) : actual !== value) return false;
      }
      return true;
    });
  }
  switch (checks.length) {
    case 0:
      return () => true;
    case 1:
      return checks[0]!;
    case 2: {
      const [a, b] = checks as [Matcher, Matcher];
      return (f) => a(f) && b(f);
    }
    default:
      return (f) => checks.every((check) => check(f));
  }
}

/** A gRPC call: content-type application/grpc, or application/grpc+proto, +json, ... */
export function isGrpc(headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  return typeof type === 'string' && type.startsWith('application/grpc') && (type.length === 16 || type[16] === '+' || type[16] === ';');
}

/** Host header → lower-case host without port or trailing dot. */
export function hostOf(header: string | undefined): string {
  if (!header) return '';
  let host = header;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf(']');
    host = end > 0 ? host.slice(0, end + 1) : host;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.toLowerCase();
}
