/**
 * Flags shared by the commands that read running gateways' admin APIs
 * (`diff`, `diff summary`, `status`): `--admin URL`, repeatable, one per
 * replica; `--token`, else $GATEWAYCTL_ADMIN_TOKEN.
 */
import type { Command } from 'commander';
import { adminToken, DEFAULT_ADMIN_URL } from '../admin/http-client.js';
import { UsageError } from '../errors.js';

export interface AdminFlags {
  admin?: string[];
  token?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addAdminOptions(command: Command): Command {
  return command
    .option('--admin <url>', `admin API of a gateway; repeat for each replica (default ${DEFAULT_ADMIN_URL})`, collect, [])
    .option('--token <token>', 'admin token, when the gateway sets admin.token (default $GATEWAYCTL_ADMIN_TOKEN)');
}

/** Accepts "http://host:port", "host:port" or a bare port; anything else is a usage error. */
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
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--admin: "${value}" must be an http:// URL`);
  return url;
}

/** The admin URLs to ask, de-duplicated, in the order given, and the token. */
export function adminTargets(flags: AdminFlags, inherited: AdminFlags = {}): { urls: URL[]; token: string | undefined } {
  const given = [...(inherited.admin ?? []), ...(flags.admin ?? [])];
  const urls = (given.length ? given : [DEFAULT_ADMIN_URL]).map(parseAdminUrl);
  const unique = [...new Map(urls.map((u) => [u.href, u])).values()];
  return { urls: unique, token: adminToken(flags.token ?? inherited.token) };
}

/** A whole number flag, at least `min`. */
export function wholeNumber(value: string | undefined, flag: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`${flag} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, not "${value}"`);
  return Number(value);
}
