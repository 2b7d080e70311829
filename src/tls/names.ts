/**
 * Certificate names against host names, as TLS clients judge them
 * (RFC 6125): names compare case-insensitively; a wildcard `*.example.com`
 * stands for exactly one label, so it covers `a.example.com` but neither
 * `example.com` nor `a.b.example.com`; IP addresses match IP entries only.
 */
import { isIP } from 'node:net';

/** Whether a certificate name (`example.com`, `*.example.com`, an IP) covers `host`. */
export function nameCovers(name: string, host: string): boolean {
  const n = name.toLowerCase();
  const h = host.toLowerCase().replace(/\.$/, '');
  if (n === h) return true;
  if (!n.startsWith('*.') || isIP(h) !== 0) return false;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot) === n.slice(1);
}

/**
 * Whether a certificate with these names covers every host a route's
 * `match.host` accepts. A route wildcard `*.example.com` is covered by a
 * certificate wildcard for the same domain (one label deep, as clients
 * check), not by any list of single names.
 */
export function namesCoverRouteHost(names: readonly string[], routeHost: string): boolean {
  if (routeHost.startsWith('*.')) return names.some((n) => n.toLowerCase() === routeHost.toLowerCase());
  return names.some((n) => nameCovers(n, routeHost));
}

/**
 * Picks a certificate for a TLS client's server name (SNI): an exact name
 * first, then a wildcard, each in configured order; else undefined (the
 * caller serves its default).
 */
export class NameIndex<T> {
  private readonly exact = new Map<string, T>();
  private readonly wildcard = new Map<string, T>();

  constructor(entries: Iterable<{ readonly names: readonly string[]; readonly value: T }>) {
    for (const { names, value } of entries) {
      for (const raw of names) {
        const name = raw.toLowerCase();
        const map = name.startsWith('*.') ? this.wildcard : this.exact;
        const key = name.startsWith('*.') ? name.slice(1) : name;
        if (!map.has(key)) map.set(key, value);
      }
    }
  }

  lookup(serverName: string): T | undefined {
    const host = serverName.toLowerCase().replace(/\.$/, '');
    const exact = this.exact.get(host);
    if (exact !== undefined) return exact;
    const dot = host.indexOf('.');
    return dot > 0 ? this.wildcard.get(host.slice(dot)) : undefined;
  }
}
