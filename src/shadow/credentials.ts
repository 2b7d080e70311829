/**
 * `shadow[].credentials: strip`: what identifies or authorizes the user is
 * taken out of a copy before it leaves for the version under test. The
 * names are the ones the diff store redacts (diff/secrets.ts):
 * Authorization, Proxy-Authorization, Cookie, API-key, token and session
 * headers, and secret-looking query parameters.
 */
import { isSecretHeader, withoutSecretParams } from '../diff/secrets.js';

/** The copy's headers and target without credentials; `headers` is shared by every copy, so it is copied. */
export function stripCredentials(
  headers: Record<string, string | string[]>,
  target: string,
): { headers: Record<string, string | string[]>; target: string } {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) if (!isSecretHeader(name)) out[name] = headers[name]!;
  return { headers: out, target: withoutSecretParams(target) };
}
