/**
 * Cross-site request forgery defence for the admin API. A web page open in
 * the operator's browser can send a POST to 127.0.0.1:9901 (a form, or a
 * `text/plain` fetch that needs no CORS preflight). Calls that change state
 * therefore must come from the same origin or from a non-browser client:
 *
 *   - a cross-origin `Origin` (including `null`), or `Sec-Fetch-Site` other
 *     than `same-origin` / `none`, is refused;
 *   - the call must carry `Content-Type: application/json` or an
 *     `X-Requested-By` header: neither can be sent by a form, and a page
 *     on another origin can send them only after a CORS preflight, which the
 *     admin API never grants.
 *
 * The CLI sends `X-Requested-By: gatewayctl`; the web console sends both.
 */
import type { IncomingMessage } from 'node:http';

export const CSRF_HEADER = 'x-requested-by';

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function isJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json';
}

/** Why a state-changing request must be refused, or undefined when it may proceed. */
export function crossSiteRefusal(req: IncomingMessage): string | undefined {
  const site = single(req.headers['sec-fetch-site'])?.trim().toLowerCase();
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return `admin API refuses ${site} requests that change state`;
  }
  const origin = single(req.headers['origin']);
  if (origin !== undefined) {
    const host = req.headers.host;
    if (!host || origin.toLowerCase() !== `http://${host}`.toLowerCase()) {
      return 'admin API refuses cross-origin requests that change state';
    }
  }
  if (!isJson(single(req.headers['content-type'])) && !single(req.headers[CSRF_HEADER])) {
    return `admin calls that change state need "Content-Type: application/json" or an "X-Requested-By" header`;
  }
  return undefined;
}
