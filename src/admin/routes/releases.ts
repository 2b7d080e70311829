/**
 * The release endpoints of the admin API:
 *   GET  /releases                          every release: step, weight, gates, verdict
 *   POST /releases/ROUTE/{pause,resume,promote,rollback}
 *   POST /releases/ROUTE/state              set a state (external controllers)
 * State changes need the admin token when one is configured. Controller
 * errors (no such release, an action that does not apply) answer with their
 * catalogue status through the admin server's error handler.
 */
import type { IncomingMessage } from 'node:http';
import { ErrorCodes, GatewayError } from '../../errors.js';
import type { ReleaseController } from '../../release/controller.js';
import type { Judgement } from '../../release/judge.js';
import type { ReleaseAction, ReleaseState } from '../../release/machine.js';
import { sendJson, type AdminRoute } from './reply.js';

const ACTIONS = new Set<ReleaseAction>(['pause', 'resume', 'promote', 'rollback']);
const MAX_BODY = 64 * 1024;

export function releaseAdminRoutes(controller: () => ReleaseController): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/releases',
      requiresToken: false,
      handle: (_req, res) => sendJson(res, 200, { releases: controller().views() }),
    },
    {
      method: 'POST',
      path: '/releases/',
      requiresToken: true,
      handle: async (req, res, url) => {
        const [route, action, extra] = url.pathname.slice('/releases/'.length).split('/').map(decodeURIComponent);
        if (!route || !action || extra !== undefined) {
          throw new GatewayError(ErrorCodes.NOT_FOUND, 'use POST /releases/ROUTE/{pause,resume,promote,rollback,state}');
        }
        if (action === 'state') {
          const body = (await readJson(req)) as { state?: ReleaseState; judgement?: Judgement };
          if (!body?.state) throw new GatewayError(ErrorCodes.BAD_REQUEST, 'body must be {"state": {...}, "judgement"?: {...}}');
          const judgement = isJudgement(body.judgement) ? body.judgement : undefined;
          return sendJson(res, 200, await controller().set(route, body.state, judgement));
        }
        if (!ACTIONS.has(action as ReleaseAction)) {
          throw new GatewayError(ErrorCodes.NOT_FOUND, `unknown action "${action}"; use pause, resume, promote or rollback`);
        }
        req.resume();
        return sendJson(res, 200, await controller().act(route, action as ReleaseAction, 'admin API'));
      },
    },
  ];
}

function isJudgement(value: unknown): value is Judgement {
  const j = value as Judgement | undefined;
  return !!j && typeof j === 'object' && ['pass', 'fail', 'wait'].includes(j.verdict) && typeof j.reason === 'string' && Array.isArray(j.gates);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new GatewayError(ErrorCodes.BAD_REQUEST, 'body too large'));
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
