/**
 * The composition root of a single-process gateway: the core gateway plus
 * the pieces that hang off it (comparison of mirrored pairs, diff streams).
 */
import { Gateway, type GatewayOptions } from './gateway.js';

export async function startServer(options: GatewayOptions): Promise<Gateway> {
  return Gateway.start(options);
}
