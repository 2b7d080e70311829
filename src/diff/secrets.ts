/**
 * What may be secret is never stored: values of credential headers and of
 * secret-looking query parameters are replaced by "(redacted)".
 */

export const REDACTED = '(redacted)';

const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'www-authenticate', 'proxy-authenticate']);
const SECRET_NAME = /auth|token|secret|session|passw|api[-_]?key|csrf|xsrf|signature|credential/i;

export function isSecretHeader(name: string): boolean {
  return SECRET_HEADERS.has(name) || SECRET_NAME.test(name);
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/**
 * A request target with each secret-looking query parameter (`part`, as
 * sent) replaced by what `secret` returns for it; undefined removes it.
 */
function rewriteSecretParams(target: string, secret: (part: string, name: string, hasValue: boolean) => string | undefined): string {
  const q = target.indexOf('?');
  if (q < 0) return target;
  const parts: string[] = [];
  for (const part of target.slice(q + 1).split('&')) {
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    const kept = SECRET_NAME.test(decodeName(name)) ? secret(part, name, eq >= 0) : part;
    if (kept !== undefined) parts.push(kept);
  }
  return parts.length > 0 ? `${target.slice(0, q + 1)}${parts.join('&')}` : target.slice(0, q);
}

/** A request target with the values of secret-looking query parameters redacted. */
export function redactTarget(target: string): string {
  return rewriteSecretParams(target, (part, name, hasValue) => (hasValue ? `${name}=${REDACTED}` : part));
}

/** A request target without its secret-looking query parameters. */
export function withoutSecretParams(target: string): string {
  return rewriteSecretParams(target, () => undefined);
}
