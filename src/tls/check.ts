/**
 * Validation of the TLS parts of a config: the listener's certificates
 * (files exist and parse, keys match, not expired, names cover the routes'
 * hosts) and the https:// upstreams' verification settings. Called by
 * config/validate.ts, so `validate`, `serve` and every reload check alike.
 */
import { resolve } from 'node:path';
import { defaultsAt } from '../config/defaults.js';
import type { TlsConfig, TlsVersion, UpstreamTlsConfig } from '../config/types.js';
import { addressesClash, formatAddress, type ListenAddress } from '../config/units.js';
import { namesCoverRouteHost } from './names.js';
import { loadCaBundle, loadPair, type Problem } from './pem.js';

export interface Reporter {
  error(path: string, code: string, message: string): void;
  warn(path: string, code: string, message: string): void;
}

type Raw = Record<string, unknown>;

function report(reporter: Reporter, path: string, problem: Pick<Problem, 'severity' | 'code' | 'message'>): void {
  const message = `${path}: ${problem.message}`;
  if (problem.severity === 'error') reporter.error(path, problem.code, message);
  else reporter.warn(path, problem.code, message);
}

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

export interface ListenerCheck {
  readonly config: TlsConfig;
  /** Names of each certificate that loaded, for the route host check. */
  readonly names: readonly (readonly string[])[];
}

/**
 * Checks `tls:` and returns its normalized form (absolute paths, defaults),
 * or undefined when it cannot be used.
 */
export function checkListenerTls(
  raw: Raw,
  baseDir: string,
  addresses: { readonly listen: ListenAddress; readonly admin: ListenAddress },
  reporter: Reporter,
): ListenerCheck | undefined {
  const entries: { cert: string; key: string; at: string }[] = [];
  const cert = text(raw['cert']);
  const key = text(raw['key']);
  let incomplete = false;
  if (cert !== undefined && key !== undefined) entries.push({ cert, key, at: 'tls' });
  else if (cert !== undefined || key !== undefined) {
    const [given, missing] = cert !== undefined ? ['cert', 'key'] : ['key', 'cert'];
    reporter.error(`tls.${given}`, 'tls', `tls.${given}: needs tls.${missing} too (a certificate and its private key go together)`);
    incomplete = true;
  }
  const list = Array.isArray(raw['certificates']) ? raw['certificates'] : [];
  list.forEach((item, i) => {
    const entry = item !== null && typeof item === 'object' ? (item as Raw) : {};
    const c = text(entry['cert']);
    const k = text(entry['key']);
    if (c !== undefined && k !== undefined) entries.push({ cert: c, key: k, at: `tls.certificates[${i}]` });
    else incomplete = true; // reported by the shape pass
  });
  if (entries.length === 0 && !incomplete && raw['certificates'] === undefined) {
    reporter.error('tls', 'tls', 'tls: needs cert and key, or a certificates list');
  }

  const names: string[][] = [];
  const now = Date.now();
  let failed = incomplete;
  for (const entry of entries) {
    const result = loadPair(
      { path: resolve(baseDir, entry.cert), shown: entry.cert },
      { path: resolve(baseDir, entry.key), shown: entry.key },
      now,
    );
    const problems = result.ok ? result.warnings : result.problems;
    for (const p of problems) report(reporter, `${entry.at}.${p.at}`, p);
    if (result.ok) names.push([...result.pair.names]);
    else failed = true;
  }

  let redirectHttp: ListenAddress | undefined;
  const redirect = raw['redirectHttp'] as ListenAddress | undefined;
  if (redirect) {
    redirectHttp = { host: redirect.host === '' ? addresses.listen.host : redirect.host, port: redirect.port };
    for (const [name, address] of Object.entries(addresses)) {
      if (addressesClash(redirectHttp, address)) {
        reporter.error(
          'tls.redirectHttp',
          'address-clash',
          `tls.redirectHttp: ${formatAddress(redirectHttp)} clashes with ${name} ${formatAddress(address)}`,
        );
      }
    }
  }
  if (failed || entries.length === 0) return undefined;
  return {
    config: {
      certificates: entries.map((e) => ({ cert: resolve(baseDir, e.cert), key: resolve(baseDir, e.key) })),
      minVersion: (text(raw['minVersion']) ?? defaultsAt('tls')['minVersion']) as TlsVersion,
      redirectHttp,
    },
    names,
  };
}

/**
 * Warns about route hosts no certificate names: clients asking for them
 * would get the default certificate and refuse it.
 */
export function checkRouteHosts(routes: readonly unknown[], names: readonly (readonly string[])[], reporter: Reporter): void {
  const all = [...new Set(names.flat())];
  routes.forEach((route, i) => {
    const match = route !== null && typeof route === 'object' ? (route as Raw)['match'] : undefined;
    const host = match !== null && typeof match === 'object' ? text((match as Raw)['host']) : undefined;
    if (host === undefined || namesCoverRouteHost(all, host)) return;
    const listed = all.length > 6 ? `${all.slice(0, 6).join(', ')}, ...` : all.join(', ');
    const path = `routes[${i}].match.host`;
    reporter.warn(
      path,
      'tls-host',
      `${path}: "${host}" is not covered by any TLS certificate (they name ${listed}); clients will refuse the connection` +
        (host.startsWith('*.') ? ` (a route wildcard needs the certificate wildcard "${host}")` : ''),
    );
  });
}

/** Checks an upstream's `tls:` block against its URL; returns the normalized settings. */
export function checkUpstreamTls(raw: Raw | undefined, url: URL, path: string, baseDir: string, reporter: Reporter): UpstreamTlsConfig | undefined {
  if (raw === undefined) return undefined;
  const at = `${path}.tls`;
  if (url.protocol !== 'https:') {
    reporter.error(at, 'tls', `${at}: TLS settings apply to https:// upstreams only; this one is ${url.protocol}//`);
    return undefined;
  }
  const ca = text(raw['ca']);
  const serverName = text(raw['serverName']);
  const insecureSkipVerify = raw['insecureSkipVerify'] === true;
  let caPem: string | undefined;
  if (ca !== undefined) {
    const loaded = loadCaBundle({ path: resolve(baseDir, ca), shown: ca });
    if (loaded.ok) caPem = loaded.pem;
    else report(reporter, `${at}.ca`, loaded.problem);
  }
  if (insecureSkipVerify) {
    reporter.warn(
      `${at}.insecureSkipVerify`,
      'tls-insecure',
      `${at}.insecureSkipVerify: the upstream's certificate is not verified, so anyone on the network path can impersonate it` +
        (ca !== undefined ? `; ${at}.ca is ignored` : '; trust its CA with tls.ca instead'),
    );
  }
  if (ca !== undefined && caPem === undefined) return undefined;
  return { ca: ca === undefined ? undefined : resolve(baseDir, ca), caPem, serverName, insecureSkipVerify };
}
