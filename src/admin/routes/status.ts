/**
 * GET /status: the routes being served, with live rates (admin/status.ts
 * computes them).
 */
import { ErrorCodes, GatewayError } from '../../errors.js';
import type { StatusView } from '../status.js';
import { sendJson, type AdminRoute } from './reply.js';

export function statusRoutes(view: StatusView): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/status',
      requiresToken: false,
      handle: async (_req, res) => {
        const status = await view.describe();
        if (!status) throw new GatewayError(ErrorCodes.UNAVAILABLE, 'the gateway is starting');
        sendJson(res, 200, status);
      },
    },
  ];
}
