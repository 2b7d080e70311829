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

/** A request target with the values of secret-looking query parameters redacted. */
export function redactTarget(target: string): string {
  const q = target.indexOf('?');
  if (q < 0) return target;
  const query = target
    .slice(q + 1)
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq < 0) return part;
      return SECRET_NAME.test(decodeName(part.slice(0, eq))) ? `${part.slice(0, eq)}=${REDACTED}` : part;
    })
    .join('&');
  return target.slice(0, q + 1) + query;
}
