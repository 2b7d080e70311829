/**
 * The release endpoints of the admin API:
 *   GET  /releases                          every release: step, weight, gates, verdict
 *   POST /releases/ROUTE/{pause,resume,promote,rollback}
 *   POST /releases/ROUTE/state              set a state (external controllers)
 * State changes need the admin token when one is configured.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson, type AdminRoute } from '../admin/server.js';
import { ErrorCodes, isGatewayError } from '../errors.js';
import type { ReleaseController } from './controller.js';
import type { Judgement } from './judge.js';
import type { ReleaseAction, ReleaseState } from './machine.js';

const ACTIONS = new Set<ReleaseAction>(['pause', 'resume', 'promote', 'rollback']);
const MAX_BODY = 64 * 1024;

export function releaseAdminRoutes(controller: () => ReleaseController): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/releases',
      changesState: false,
      handle: (_req, res) => sendJson(res, 200, { releases: controller().views() }),
    },
    {
      method: 'POST',
      path: '/releases/',
      changesState: true,
      handle: async (req, res, url) => {
        const [route, action, extra] = url.pathname.slice('/releases/'.length).split('/').map(decodeURIComponent);
        if (!route || !action || extra !== undefined) {
          return sendJson(res, 404, { error: 'use POST /releases/ROUTE/{pause,resume,promote,rollback,state}' });
        }
        try {
          if (action === 'state') {
            const body = (await readJson(req)) as { state?: ReleaseState; judgement?: Judgement };
            if (!body?.state) return sendJson(res, 400, { error: 'body must be {"state": {...}, "judgement"?: {...}}' });
            const judgement = isJudgement(body.judgement) ? body.judgement : undefined;
            return sendJson(res, 200, await controller().set(route, body.state, judgement));
          }
          if (!ACTIONS.has(action as ReleaseAction)) {
            return sendJson(res, 404, { error: `unknown action "${action}"; use pause, resume, promote or rollback` });
          }
          req.resume();
          return sendJson(res, 200, await controller().act(route, action as ReleaseAction, 'admin API'));
        } catch (err) {
          return sendError(res, err);
        }
      },
    },
  ];
}

function isJudgement(value: unknown): value is Judgement {
  const j = value as Judgement | undefined;
  return !!j && typeof j === 'object' && ['pass', 'fail', 'wait'].includes(j.verdict) && typeof j.reason === 'string' && Array.isArray(j.gates);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (isGatewayError(err)) {
    const status = err.code === ErrorCodes.NOT_FOUND ? 404 : err.code === ErrorCodes.RELEASE_CONFLICT ? 409 : 400;
    return sendJson(res, status, { error: err.message, code: err.code });
  }
  throw err;
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'));
      } catch {
        resolve(undefined);
      }
    });
    req.on('error', reject);
  });
}
