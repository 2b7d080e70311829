/**
 * How the gateway connects to an https:// upstream, for primary traffic
 * and shadow copies alike (node:https agents).
 *
 * The certificate is verified against the system CAs, or only `tls.ca` when
 * given, and for the name in the upstream's URL, or `tls.serverName`. Never
 * for the client's Host header: node:https would otherwise take the SNI
 * name (and so the name verified) from the forwarded Host.
 * With an IP address in the URL and no serverName, no SNI is sent and the
 * certificate must list that IP.
 */
import type { AgentOptions } from 'node:https';
import { isIP } from 'node:net';
import type { UpstreamTlsConfig } from '../config/types.js';
import { digest } from './pem.js';

/** The oldest TLS version the gateway speaks to upstreams. */
const UPSTREAM_MIN_VERSION = 'TLSv1.2';

export interface ClientTls {
  /** PEM CA bundle; undefined: the system CAs. */
  readonly ca: string | undefined;
  /** Name sent as SNI and verified; undefined: none sent, the IP address is verified. */
  readonly servername: string | undefined;
  readonly rejectUnauthorized: boolean;
  /** Identity of these settings: connections are pooled only with equal ones. */
  readonly identity: string;
}

/** Client TLS settings for an upstream URL; undefined for http://. */
export function clientTls(target: URL, tls: UpstreamTlsConfig | undefined): ClientTls | undefined {
  if (target.protocol !== 'https:') return undefined;
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const servername = tls?.serverName ?? (isIP(host) === 0 ? host : undefined);
  const rejectUnauthorized = !tls?.insecureSkipVerify;
  const ca = rejectUnauthorized ? tls?.caPem : undefined;
  return {
    ca,
    servername,
    rejectUnauthorized,
    identity: `tls:${servername ?? '-'}:${rejectUnauthorized ? (ca ? digest(ca) : 'system') : 'insecure'}`,
  };
}

/** Options for a node:https Agent; agent options override per-request ones. */
export function agentTlsOptions(tls: ClientTls): AgentOptions {
  return {
    ...(tls.ca ? { ca: tls.ca } : {}),
    // '' (not undefined) stops Node deriving the name from the Host header.
    servername: tls.servername ?? '',
    rejectUnauthorized: tls.rejectUnauthorized,
    minVersion: UPSTREAM_MIN_VERSION,
  };
}

const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

/** Whether a connection error is the upstream's certificate failing verification. */
export function isCertificateError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && (CERTIFICATE_ERRORS.has(code) || code.startsWith('ERR_SSL_'));
}
