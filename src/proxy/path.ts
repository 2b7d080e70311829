/**
 * Request-target normalization, decided once before routing: the path that
 * picks the route is exactly the path the upstream receives (the proxy is
 * told to send it as is, see handler.ts).
 *
 * - origin-form (`/path?query`): the usual case.
 * - absolute-form (`http://host/path?query`, RFC 9112 section 3.2.2): the
 *   authority replaces the Host header and the path is normalized as below;
 *   userinfo, other schemes and an empty or malformed authority are refused.
 * - Percent-encoded unreserved characters are decoded (`%7E` → `~`) and other
 *   escapes upper-cased, as RFC 3986 section 6.2.2 allows; characters that
 *   may not appear in a path (`"<>[]^`{|}`) are percent-encoded.
 * - Repeated slashes are merged.
 * - Refused (400): dot segments (also encoded, and `..;x` / `.;x`, which
 *   servlet containers read as dot segments), backslashes and encoded
 *   slashes or backslashes (upstreams disagree on what they mean; with
 *   paths.escapedSlashes: keep, %2F stays as it is, inside its segment), control
 *   characters, NUL, and malformed escapes.
 * The query is never touched. A path that needs none of this passes through
 * with a single scan.
 */
export type NormalizedTarget =
  | { ok: true; path: string; query: string; authority?: string }
  | { ok: false; reason: string };

/** Characters that can appear in a path that needs no normalization. */
const PLAIN = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~/!$&\'()*+,;=:@') {
  PLAIN[c.charCodeAt(0)] = 1;
}

/** Printable characters RFC 3986 does not allow in a path: sent percent-encoded. */
const ENCODED = new Set('"<>[]^`{|}');

/** Characters of a reg-name or IPv4 address (RFC 3986 section 3.2.2). */
const HOST_CHARS = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&\'()*+,;=%') {
  HOST_CHARS[c.charCodeAt(0)] = 1;
}

/** Characters inside `[...]`: an IPv6 address, possibly with an IPv4 tail. */
const LITERAL_CHARS = new Uint8Array(128);
for (const c of '0123456789abcdefABCDEF:.') LITERAL_CHARS[c.charCodeAt(0)] = 1;

/**
 * Whether a Host value (or authority) is `host [":" port]` as RFC 3986
 * section 3.2.2 has it: a reg-name or IPv4 address, or an IPv6 literal in
 * complete brackets, then at most one port of at most 65535. '' is valid.
 * `a:99999`, `a:80:90` and `[::1` are not: an upstream could read them
 * differently from the router.
 */
export function isValidHost(host: string): boolean {
  let i = 0;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close < 3) return false;
    for (i = 1; i < close; i++) {
      const c = host.charCodeAt(i);
      if (c >= 128 || LITERAL_CHARS[c] !== 1) return false;
    }
    i = close + 1;
    if (i === host.length) return true;
    if (host.charCodeAt(i) !== 58 /* : */) return false;
  } else {
    for (; i < host.length; i++) {
      const c = host.charCodeAt(i);
      if (c === 58 /* : */) break;
      if (c >= 128 || HOST_CHARS[c] !== 1) return false;
    }
    if (i === host.length) return true;
  }
  // The port: digits only, at most 65535 (empty is allowed, RFC 3986 3.2.3).
  const port = host.length - i - 1;
  if (port > 5) return false;
  let value = 0;
  for (i++; i < host.length; i++) {
    const digit = host.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return false;
    value = value * 10 + digit;
  }
  return value <= 65535;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const ABSOLUTE = /^https?:\/\/([^/?#]*)(.*)$/i;

export function normalizeTarget(target: string, keepEscapedSlashes = false): NormalizedTarget {
  if (target.charCodeAt(0) !== 47 /* / */) return absoluteForm(target, keepEscapedSlashes);
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  if (query.includes('#') || rawPath.includes('#')) return { ok: false, reason: 'fragment in request target' };

  // Fast path: only plain characters, no "//", no dot segment.
  let plain = true;
  let prevSlash = false;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === 46 /* . */) {
      if (prevSlash) {
        plain = false;
        break;
      }
    } else if (c >= 128 || PLAIN[c] !== 1) {
      plain = false;
      break;
    }
    const slash = c === 47;
    if (slash && prevSlash) {
      plain = false;
      break;
    }
    prevSlash = slash;
  }
  if (plain) return { ok: true, path: rawPath, query };
  return slowNormalize(rawPath, query, keepEscapedSlashes);
}

function absoluteForm(target: string, keepEscapedSlashes: boolean): NormalizedTarget {
  const m = ABSOLUTE.exec(target);
  if (!m) return { ok: false, reason: 'request target must be a path or an http(s) URL' };
  const authority = m[1]!;
  const rest = m[2]!;
  if (authority === '') return { ok: false, reason: 'empty authority in request target' };
  if (authority.includes('@')) return { ok: false, reason: 'userinfo in request target' };
  if (!isValidHost(authority)) return { ok: false, reason: 'malformed authority in request target' };
  const origin = rest === '' ? '/' : rest.charCodeAt(0) === 63 /* ? */ ? '/' + rest : rest;
  const normalized = normalizeTarget(origin, keepEscapedSlashes);
  return normalized.ok ? { ...normalized, authority } : normalized;
}

function slowNormalize(rawPath: string, query: string, keepEscapedSlashes: boolean): NormalizedTarget {
  let out = '';
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i]!;
    const c = ch.charCodeAt(0);
    if (c < 0x21 || c === 0x7f) return { ok: false, reason: 'control character in path' };
    if (ch === '\\') return { ok: false, reason: 'backslash in path' };
    if (ch === '%') {
      const hex = rawPath.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { ok: false, reason: 'malformed percent-encoding in path' };
      const code = parseInt(hex, 16);
      if (code < 0x20 || code === 0x7f) return { ok: false, reason: 'encoded control character in path' };
      if (code === 0x2f && keepEscapedSlashes) {
        // Kept encoded: part of its segment for matching, sent on as it came.
        out += '%2F';
        i += 2;
        continue;
      }
      if (code === 0x2f || code === 0x5c) return { ok: false, reason: 'encoded slash or backslash in path' };
      const decoded = String.fromCharCode(code);
      out += UNRESERVED.test(decoded) ? decoded : '%' + hex.toUpperCase();
      i += 2;
      continue;
    }
    out += ENCODED.has(ch) ? '%' + c.toString(16).toUpperCase() : ch;
  }
  out = out.replace(/\/{2,}/g, '/');
  // A kept %2F must not hide a dot segment from an upstream that decodes it.
  for (const segment of keepEscapedSlashes ? out.split(/\/|%2F/) : out.split('/')) {
    const bare = segment.includes(';') ? segment.slice(0, segment.indexOf(';')) : segment;
    if (bare === '.' || bare === '..') return { ok: false, reason: 'dot segment in path' };
  }
  return { ok: true, path: out, query };
}

/**
 * The request target an upstream receives: its URL's path joined with the
 * normalized request path, queries joined with "&", as the primary proxy
 * joins them, so upgrades and shadow copies send the same target.
 */
export function upstreamPath(target: URL, pathAndQuery: string): string {
  const base = target.pathname.endsWith('/') ? target.pathname.slice(0, -1) : target.pathname;
  const q = pathAndQuery.indexOf('?');
  const path = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
  const queries = [target.search.slice(1), q < 0 ? '' : pathAndQuery.slice(q + 1)].filter(Boolean);
  return base + path + (queries.length > 0 ? '?' + queries.join('&') : '');
}
