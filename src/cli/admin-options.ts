/**
 * Flags shared by every command that talks to running gateways' admin APIs
 * (`diff`, `status`, `reload`, `record export`, `release`): `--admin URL`,
 * repeatable, one per replica, also as HOST:PORT or a bare port; `--token`,
 * else $GATEWAYCTL_ADMIN_TOKEN; `--admin-ca FILE` for an https admin API
 * whose certificate a private CA signed.
 */
import type { Command } from 'commander';
import { adminToken, DEFAULT_ADMIN_URL, readAdminCa, type AdminAccess } from '../admin/http-client.js';
import { UsageError } from '../errors.js';

export interface AdminFlags {
  admin?: string[];
  token?: string;
  adminCa?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addAdminOptions(
  command: Command,
  adminHelp = `admin API of a gateway, URL or HOST:PORT; repeat for each replica (default ${DEFAULT_ADMIN_URL})`,
): Command {
  return command
    .option('--admin <url>', adminHelp, collect, [])
    .option('--token <token>', 'admin token, when the gateway sets admin.token (default $GATEWAYCTL_ADMIN_TOKEN)')
    .option('--admin-ca <file>', 'PEM CA bundle that signed the certificate of an https:// admin API');
}

/** Accepts "http://host:port", "https://host:port", "host:port" or a bare port; anything else is a usage error. */
export function parseAdminUrl(value: string): URL {
  let text = value.trim();
  if (/^\d+$/.test(text)) text = `127.0.0.1:${text}`;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) text = `http://${text}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--admin: "${value}" is not a URL (expected e.g. ${DEFAULT_ADMIN_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--admin: "${value}" must be an http:// or https:// URL`);
  return url;
}

/** The --admin URLs given, parsed and de-duplicated in the order given (none: none). */
export function adminUrls(given: readonly string[]): URL[] {
  return [...new Map(given.map(parseAdminUrl).map((u) => [u.href, u])).values()];
}

/** The admin URLs to ask (the default when none is given) and how to reach them. */
export function adminTargets(flags: AdminFlags, inherited: AdminFlags = {}): { urls: URL[]; access: AdminAccess } {
  const given = [...(inherited.admin ?? []), ...(flags.admin ?? [])];
  return { urls: adminUrls(given.length ? given : [DEFAULT_ADMIN_URL]), access: adminAccess(flags, inherited) };
}

/** Token and CA from the flags (a subcommand's own first, then its parent's). */
export function adminAccess(flags: AdminFlags, inherited: AdminFlags = {}): AdminAccess {
  const token = adminToken(flags.token ?? inherited.token);
  const caFile = flags.adminCa ?? inherited.adminCa;
  return { ...(token ? { token } : {}), ...(caFile ? { ca: readAdminCa(caFile) } : {}) };
}

/** A whole number flag, at least `min`. */
export function wholeNumber(value: string | undefined, flag: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`${flag} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, not "${value}"`);
  return Number(value);
}
