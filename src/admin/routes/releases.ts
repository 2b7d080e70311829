/**
 * The release endpoints of the admin API:
 *   GET  /releases                          every release: step, weight, gates, verdict
 *   POST /releases/ROUTE/{pause,resume,promote,rollback}
 *   POST /releases/ROUTE/state              set a state (external controllers)
 * State changes need the admin token when one is configured. Controller
 * errors (no such release, an action that does not apply) answer with their
 * catalogue status through the admin server's error handler.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes, GatewayError } from '../../errors.js';
import type { ReleaseController } from '../../release/controller.js';
import type { ReleaseAction } from '../../release/machine.js';
import { isJudgement, isReleaseState } from '../../release/shapes.js';
import { decodeSegment, sendJson, type AdminRoute } from './reply.js';

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
        const [route, action, extra] = url.pathname.slice('/releases/'.length).split('/').map(decodeSegment);
        if (!route || !action || extra !== undefined) {
          throw new GatewayError(ErrorCodes.NOT_FOUND, 'use POST /releases/ROUTE/{pause,resume,promote,rollback,state}');
        }
        if (action === 'state') {
          const body = (await readJson(req, res)) as { state?: unknown; judgement?: unknown } | undefined;
          if (!isReleaseState(body?.state) || (body.judgement !== undefined && !isJudgement(body.judgement))) {
            throw new GatewayError(ErrorCodes.BAD_REQUEST, 'body must be {"state": {...}, "judgement"?: {...}} as GET /releases shows them');
          }
          return sendJson(res, 200, await controller().set(route, body.state, body.judgement));
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

function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) return void chunks.push(c);
      // Answered, then closed: destroying the request here would lose the answer,
      // and the rest of an oversized body is not worth reading for a keep-alive.
      req.off('data', onData);
      res.setHeader('connection', 'close');
      reject(new GatewayError(ErrorCodes.BAD_REQUEST, `body over ${MAX_BODY} bytes`));
    };
    req.on('data', onData);
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
