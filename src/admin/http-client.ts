/**
 * A client for gateways' admin APIs, used by the CLI and by external
 * controllers, on undici: http:// and https:// (an admin API behind a TLS
 * terminator; `ca` names the PEM bundle that signed its certificate).
 * Failures become AdminRequestError with the URL in the message.
 */
import type { Agent, Dispatcher } from 'undici';
import { readSmallFile } from '../config/regular-file.js';
import { AdminRequestError, UsageError } from '../errors.js';
import { isCertificateError } from '../tls/upstream.js';
import type { AnswerShape } from './answers.js';
import { CSRF_HEADER } from './csrf.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9901';

/** How to reach and be let in: the same for every call to a set of gateways. */
export interface AdminAccess {
  /** Bearer token, for gateways with admin.token set. */
  readonly token?: string;
  /** PEM CA bundle (the text) that signed an https admin's certificate; else the system's. */
  readonly ca?: string;
}

export interface AdminCall extends AdminAccess {
  readonly method?: string;
  readonly body?: unknown;
  readonly timeoutMs?: number;
}

export interface AdminResponse {
  readonly status: number;
  readonly text: string;
  /** Lower-cased names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** Why a call got no answer, as people read it. */
export function unreachable(url: URL, err: unknown): AdminRequestError {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  const why = /^UND_ERR_(CONNECT|HEADERS|BODY)_TIMEOUT$/.test(code)
    ? 'timed out'
    : isCertificateError(err)
      ? `${code} (the admin API's certificate is not trusted: pass --admin-ca FILE)`
      : code || e?.message || String(err);
  return new AdminRequestError(`cannot reach the admin API at ${url.origin}: ${why}`, undefined, { cause: err });
}

export function adminUrl(base: string, path: string): URL {
  try {
    const url = new URL(path, base.endsWith('/') ? base : base + '/');
    if (url.protocol === 'http:' || url.protocol === 'https:') return url;
  } catch {
    // reported below
  }
  throw new AdminRequestError(`"${base}" is not an admin URL (expected e.g. ${DEFAULT_ADMIN_URL})`);
}

/**
 * undici, loaded on first use: a serving process that never calls an admin
 * API (most of them) does not pay the client's memory (about 20 MB).
 */
export const undici = (): Promise<typeof import('undici')> => import('undici');

/**
 * One connection's worth of client for one call, closed after it: a CLI run
 * or a controller's check never leaves a pool open. `bodyTimeoutMs` 0 lets
 * a stream stay quiet as long as the server wants.
 */
export async function adminDispatcher(access: AdminAccess, timeoutMs: number, bodyTimeoutMs = timeoutMs): Promise<Agent> {
  const { Agent } = await undici();
  return new Agent({
    connect: { timeout: timeoutMs, ...(access.ca ? { ca: access.ca } : {}) },
    headersTimeout: timeoutMs,
    bodyTimeout: bodyTimeoutMs,
    pipelining: 0,
  });
}

/** The headers of every admin call: the token, and the CLI's cross-site defence marker. */
export function adminHeaders(access: AdminAccess, accept: string): Record<string, string> {
  return {
    accept,
    // Not a browser form: the admin API's cross-site request defence (csrf.ts).
    [CSRF_HEADER]: 'gatewayctl',
    ...(access.token ? { authorization: `Bearer ${access.token}` } : {}),
  };
}

export async function adminRequest(base: string, path: string, options: AdminCall = {}): Promise<AdminResponse> {
  const url = adminUrl(base, path);
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const dispatcher = await adminDispatcher(options, options.timeoutMs ?? 10_000);
  const { request } = await undici();
  try {
    const response = await request(url, {
      method: (options.method ?? 'GET') as Dispatcher.HttpMethod,
      dispatcher,
      headers: {
        ...adminHeaders(options, 'application/json'),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body } : {}),
    });
    let text: string;
    try {
      text = await response.body.text();
    } catch (err) {
      throw new AdminRequestError(`${url.href}: ${(err as Error).message}`, undefined, { cause: err });
    }
    return { status: response.statusCode, text, headers: response.headers };
  } catch (err) {
    throw err instanceof AdminRequestError ? err : unreachable(url, err);
  } finally {
    await dispatcher.close();
  }
}

/**
 * GET or POST returning parsed JSON; non-2xx answers are errors with the
 * server's message, and a 2xx answer not of `shape` is an error too.
 */
export async function adminJson<T>(base: string, path: string, options: AdminCall = {}, shape?: AnswerShape): Promise<T> {
  const response = await adminRequest(base, path, options);
  return answerOf<T>(adminUrl(base, path), response, shape);
}

/**
 * An admin answer's JSON: the server's error message when it failed, an
 * error when it is not `shape`. `answers`: statuses besides 2xx that carry
 * an answer of `shape` (a refused reload's 422).
 */
export function answerOf<T>(url: URL, response: AdminResponse, shape?: AnswerShape, answers: readonly number[] = []): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(response.text);
  } catch {
    throw new AdminRequestError(`${url.href}: answered ${response.status} with a body that is not JSON`, response.status);
  }
  if ((response.status < 200 || response.status >= 300) && !answers.includes(response.status)) {
    const error = (parsed as { error?: unknown } | null)?.error;
    throw new AdminRequestError(`${url.href}: ${typeof error === 'string' ? error : `status ${response.status}`}`, response.status);
  }
  if (shape && !shape.check(parsed)) {
    throw new AdminRequestError(`${url.href}: answered with JSON that is not ${shape.what}; is ${url.origin} a gatewayctl admin API?`, response.status);
  }
  return parsed as T;
}

export function adminToken(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return flag ?? env['GATEWAYCTL_ADMIN_TOKEN'] ?? undefined;
}

/** The CA bundle a --admin-ca flag names, read once. */
export function readAdminCa(file: string): string {
  try {
    return readSmallFile(file, 'a CA bundle').toString('utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UsageError(`--admin-ca ${file}: cannot read it (${e.syscall ? e.code : e.message})`);
  }
}
