/**
 * Parsers for the config's value syntaxes: durations (`500ms`, `10s`, `2m`,
 * `1h`), sizes (`16kb`, `10mb`, powers of 1024) and listen addresses
 * (`host:port` or a port number). Each returns a value or an error message;
 * callers attach the position.
 */
import { isIP } from 'node:net';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const DURATION_FACTOR: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The same syntax as parseDuration, for the JSON Schema (no zero durations). */
export const DURATION_PATTERN = '^(0*[1-9][0-9]*(\\.[0-9]+)?|0+\\.[0-9]*[1-9][0-9]*)\\s*(ms|s|m|h)$';
/** The same syntax as parseSize's string form, for the JSON Schema. */
export const SIZE_PATTERN = '^[0-9]+(\\.[0-9]+)?\\s*([kKmMgG]?[bB])$';

/** Duration in milliseconds, more than zero; numbers need a unit. */
export function parseDuration(value: unknown): Parsed<number> {
  if (typeof value === 'number') {
    return { ok: false, error: `a duration needs a unit: "${value}ms" or "${value}s"` };
  }
  if (typeof value !== 'string') return { ok: false, error: 'expected a duration such as "500ms", "10s" or "2m"' };
  const m = DURATION.exec(value.trim());
  if (!m) return { ok: false, error: `"${value}" is not a duration; use a number and a unit: ms, s, m or h` };
  const ms = Number(m[1]) * DURATION_FACTOR[m[2]!]!;
  if (ms === 0) return { ok: false, error: 'a duration must be longer than 0' };
  if (!Number.isFinite(ms) || ms > 2_147_483_647) return { ok: false, error: `duration "${value}" is too long (at most 24 days)` };
  return { ok: true, value: Math.max(1, Math.round(ms)) };
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmg]?b)$/i;
const SIZE_FACTOR: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** Size in bytes: an integer, or a string with b/kb/mb/gb (powers of 1024). */
export function parseSize(value: unknown): Parsed<number> {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0) return { ok: true, value };
    return { ok: false, error: `a size must be a whole number of bytes, got ${value}` };
  }
  if (typeof value !== 'string') return { ok: false, error: 'expected a size such as 16384, "16kb" or "10mb"' };
  const m = SIZE.exec(value.trim());
  if (!m) return { ok: false, error: `"${value}" is not a size; use bytes or a number with kb, mb or gb` };
  const bytes = Math.floor(Number(m[1]) * SIZE_FACTOR[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) return { ok: false, error: `size "${value}" is too large` };
  return { ok: true, value: bytes };
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** `host:port`, `[v6]:port`, `:port` or a bare port number. */
export function parseAddress(value: unknown, defaultHost: string): Parsed<ListenAddress> {
  if (typeof value === 'number') return portOnly(value, defaultHost);
  if (typeof value !== 'string') return { ok: false, error: 'expected "host:port" or a port number' };
  const text = value.trim();
  if (/^\d+$/.test(text)) return portOnly(Number(text), defaultHost);
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (isIP(host) !== 6) return { ok: false, error: `"${host}" is not an IPv6 address` };
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return { ok: false, error: `"${text}" has no port; write "${text}:8080"` };
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return { ok: false, error: `write IPv6 addresses in brackets: "[${host}]:${portText}"` };
    if (host === '') host = defaultHost;
    if (!/^\d+$/.test(portText)) return { ok: false, error: `"${portText}" is not a port number` };
    if (host !== '' && isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) {
      return { ok: false, error: `"${host}" is not an IP address or host name` };
    }
  }
  return portOnly(Number(portText), host);
}

function portOnly(port: number, host: string): Parsed<ListenAddress> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return { ok: false, error: `port ${port} is out of range 0-65535` };
  }
  return { ok: true, value: { host, port } };
}

export function formatAddress(address: ListenAddress): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.');
}

export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** Whether two listeners would fight over the same socket. */
export function addressesClash(a: ListenAddress, b: ListenAddress): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  return a.host === b.host || isWildcardHost(a.host) || isWildcardHost(b.host);
}
