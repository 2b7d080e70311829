/**
 * The egress's hooks into the rest of the gateway: the admin endpoint that
 * exports recordings, and the pair sink that hands each mirrored pair the
 * dependency calls both of its sides made, for comparison.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson, type AdminRoute } from '../admin/server.js';
import type { Snapshot } from '../config/compile.js';
import type { MirroredPair, PairSink } from '../shadow/pair.js';
import { recordingsSimulation } from './export.js';
import { takePairCalls } from './remote.js';
import type { EgressService } from './service.js';

export function egressAdminRoutes(egress: () => EgressService | undefined, snapshot: () => Snapshot | undefined): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/egress/recordings',
      changesState: false,
      handle: (_req: IncomingMessage, res: ServerResponse, url: URL) => {
        const name = url.searchParams.get('dependency');
        const service = egress();
        const current = snapshot();
        if (!service || !current) return sendJson(res, 503, { error: 'the gateway is starting' });
        if (!name) return sendJson(res, 400, { error: 'name a dependency: /egress/recordings?dependency=NAME' });
        const dependency = current.dependencies.get(name);
        if (!dependency) return sendJson(res, 404, { error: `no dependency "${name}"` });
        sendJson(res, 200, recordingsSimulation(dependency, service.recordings.liveCalls(name)));
      },
    },
  ];
}

/** Attaches the calls a mirrored request caused to its pair, then passes it on. */
export function withEgressCalls(next: PairSink, egress: () => EgressService | undefined, snapshot: () => Snapshot | undefined): PairSink {
  return {
    submit(pair: MirroredPair): void {
      const calls = takePairCalls(egress(), snapshot(), pair.requestId);
      next.submit(calls ? { ...pair, calls } : pair);
    },
  };
}
