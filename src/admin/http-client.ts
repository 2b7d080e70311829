/**
 * A client for gateways' admin APIs, used by the CLI and by external
 * controllers. Failures become AdminRequestError with the URL in the message.
 */
import http from 'node:http';
import { AdminRequestError } from '../errors.js';
import { CSRF_HEADER } from './csrf.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9901';

export interface AdminResponse {
  readonly status: number;
  readonly text: string;
}

export function adminRequest(
  base: string,
  path: string,
  options: { method?: string; body?: unknown; token?: string; timeoutMs?: number } = {},
): Promise<AdminResponse> {
  let url: URL;
  try {
    url = new URL(path, base.endsWith('/') ? base : base + '/');
  } catch {
    return Promise.reject(new AdminRequestError(`"${base}" is not an admin URL (expected e.g. ${DEFAULT_ADMIN_URL})`));
  }
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: options.method ?? 'GET',
        agent: false,
        headers: {
          accept: 'application/json',
          // Not a browser form: the admin API's cross-site request defence (csrf.ts).
          [CSRF_HEADER]: 'gatewayctl',
          ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => reject(new AdminRequestError(`${url.href}: ${err.message}`, undefined, { cause: err })));
      },
    );
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(new AdminRequestError(`cannot reach the admin API at ${url.origin}: ${err.code ?? err.message}`, undefined, { cause: err })),
    );
    req.end(body);
  });
}

/** GET or POST returning parsed JSON; non-2xx answers are errors with the server's message. */
export async function adminJson<T>(
  base: string,
  path: string,
  options: { method?: string; body?: unknown; token?: string; timeoutMs?: number } = {},
): Promise<T> {
  const response = await adminRequest(base, path, options);
  let parsed: unknown;
  try {
    parsed = JSON.parse(response.text);
  } catch {
    throw new AdminRequestError(`${base}${path}: answered ${response.status} with a body that is not JSON`, response.status);
  }
  if (response.status < 200 || response.status >= 300) {
    const message = (parsed as { error?: string })?.error ?? `status ${response.status}`;
    throw new AdminRequestError(`${base}${path}: ${message}`, response.status);
  }
  return parsed as T;
}

export function adminToken(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return flag ?? env['GATEWAYCTL_ADMIN_TOKEN'] ?? undefined;
}
