/**
 * The egress's admin endpoint: GET /egress/recordings?dependency=NAME
 * exports a dependency's recorded live calls as a simulation file.
 */
import type { Snapshot } from '../../config/compile.js';
import { LEFT_OUT_HEADER, recordingsSimulation } from '../../egress/export.js';
import type { EgressService } from '../../egress/service.js';
import { ErrorCodes, GatewayError } from '../../errors.js';
import { sendJson, type AdminRoute } from './reply.js';

export function egressAdminRoutes(egress: () => EgressService | undefined, snapshot: () => Snapshot | undefined): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/egress/recordings',
      requiresToken: false,
      handle: (_req, res, url) => {
        const name = url.searchParams.get('dependency');
        const service = egress();
        const current = snapshot();
        if (!service || !current) throw new GatewayError(ErrorCodes.UNAVAILABLE, 'the gateway is starting');
        if (!name) throw new GatewayError(ErrorCodes.BAD_REQUEST, 'name a dependency: /egress/recordings?dependency=NAME');
        const dependency = current.dependencies.get(name);
        if (!dependency) throw new GatewayError(ErrorCodes.NOT_FOUND, `no dependency "${name}"`);
        const exported = recordingsSimulation(dependency, service.recordings.liveCalls(name));
        // The body stays a plain Hoverfly simulation; what was left out travels beside it.
        res.setHeader(LEFT_OUT_HEADER, String(exported.leftOut));
        sendJson(res, 200, exported.simulation);
      },
    },
  ];
}
