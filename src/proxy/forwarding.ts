/**
 * The headers that tell an upstream who the client is: X-Forwarded-For,
 * -Proto and -Host, X-Real-IP and Forwarded (RFC 7239). An upstream that
 * trusts any of them could be fed a fake client address, so each one is
 * the gateway's to set: from an untrusted peer whatever the client sent is
 * replaced; from a trusted proxy (`trustedProxies`) the list headers are
 * extended with this hop and the single-valued ones kept.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isIPv6 } from 'node:net';

export interface ForwardingPeer {
  /** Address of the connecting peer. */
  readonly peer: string;
  /** Whether the peer is a trusted proxy whose forwarding headers may be extended. */
  readonly trustedPeer: boolean;
  readonly encrypted: boolean;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A Forwarded parameter value: a token as it is, anything else quoted (RFC 7239 section 4). */
function forwardedValue(value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** This hop's Forwarded element: `for=PEER;proto=...;host=...`. */
function forwardedElement(peer: string, proto: string, host: string | undefined): string {
  // An IPv6 node is bracketed and, with its colons, quoted (RFC 7239 section 6).
  const node = isIPv6(peer) ? `"[${peer}]"` : forwardedValue(peer || 'unknown');
  return `for=${node};proto=${proto}${host ? `;host=${forwardedValue(host)}` : ''}`;
}

/**
 * The last element built, and what it was built from. A connection's
 * requests repeat it (as do most of a listener's): building it tested and
 * quoted two values each time, about 1.3 µs of a request's CPU.
 */
const lastElement = { peer: '', proto: '', host: undefined as string | undefined, element: '' };

function thisHop(peer: string, proto: string, host: string | undefined): string {
  const last = lastElement;
  // The first call always builds: no proto is ''.
  if (last.peer !== peer || last.proto !== proto || last.host !== host) {
    last.element = forwardedElement(peer, proto, host);
    last.peer = peer;
    last.proto = proto;
    last.host = host;
  }
  return last.element;
}

const joined = (value: string | string[]): string => (Array.isArray(value) ? value.join(', ') : value);

/** Sets the forwarding headers of `h` (the request as the upstream will get it), in place. */
export function setForwardingHeaders(h: IncomingHttpHeaders, ctx: ForwardingPeer): void {
  const trusted = ctx.trustedPeer;
  const proto = ctx.encrypted ? 'https' : 'http';

  const forwardedFor = h['x-forwarded-for'];
  h['x-forwarded-for'] = trusted && forwardedFor ? `${joined(forwardedFor)}, ${ctx.peer}` : ctx.peer;
  if (!(trusted && h['x-forwarded-proto'])) h['x-forwarded-proto'] = proto;
  if (!(trusted && h['x-forwarded-host'])) {
    if (h.host) h['x-forwarded-host'] = h.host;
    else delete h['x-forwarded-host'];
  }
  // X-Real-IP names the client: a trusted proxy's value stands, anyone else's is replaced.
  if (!(trusted && h['x-real-ip'])) h['x-real-ip'] = ctx.peer;
  const forwarded = h['forwarded'];
  const element = thisHop(ctx.peer, proto, h.host);
  h['forwarded'] = trusted && forwarded ? `${joined(forwarded)}, ${element}` : element;
}
