/**
 * The composition root: a control plane (config, admin API, lifecycle) over
 * a data plane in this process or in worker processes, plus the pieces that
 * hang off them (comparison of mirrored pairs, diff streams).
 */
import type { Logger } from '../log/logger.js';
import { ClusterDataPlane } from './cluster-data-plane.js';
import { Gateway, type Address } from './gateway.js';
import { LocalDataPlane } from './local-data-plane.js';

export interface ServerOptions {
  readonly configFile: string;
  readonly logger: Logger;
  /** Worker processes; 1 serves from this process. */
  readonly workers?: number;
  readonly listen?: Address;
  readonly admin?: Address;
  readonly watch?: boolean;
  readonly watchOptions?: { debounceMs?: number; pollMs?: number };
  /** Log settings handed to worker processes. */
  readonly logSettings?: { format: string; level: string };
}

export async function startServer(options: ServerOptions): Promise<Gateway> {
  const workers = options.workers ?? 1;
  return Gateway.start({
    configFile: options.configFile,
    logger: options.logger,
    ...(options.listen ? { listen: options.listen } : {}),
    ...(options.admin ? { admin: options.admin } : {}),
    ...(options.watch !== undefined ? { watch: options.watch } : {}),
    ...(options.watchOptions ? { watchOptions: options.watchOptions } : {}),
    dataPlane: (metrics, logger) =>
      workers > 1
        ? new ClusterDataPlane(metrics, logger, { workers, logSettings: options.logSettings ?? { format: 'json', level: 'info' } })
        : new LocalDataPlane(metrics, logger),
  });
}
