/**
 * `gatewayctl record export NAME`: the live calls a gateway holds now for
 * one dependency, as a Hoverfly simulation (schema v5) on stdout. With
 * several --admin replicas, their pairs are put together in one file.
 */
import type { Command } from 'commander';
import { SIMULATION } from '../admin/answers.js';
import { adminRequest, adminUrl, answerOf } from '../admin/http-client.js';
import { LEFT_OUT_HEADER } from '../egress/export.js';
import { SIMULATION_LIMITS } from '../config/load.js';
import { addAdminOptions, adminTargets, type AdminFlags } from './admin-options.js';
import { EXIT_OK } from './exit-codes.js';
import { terminalOutput } from './output.js';

interface Simulation {
  data: { pairs: unknown[]; [key: string]: unknown };
  meta: Record<string, unknown>;
}

export function registerRecord(program: Command, run: (action: () => Promise<number>) => void): void {
  const record = program.command('record').description('live dependency calls recorded by the egress');
  addAdminOptions(record.command('export').argument('<dependency>', 'dependency name, as in the config').description('print the recorded live calls to a dependency as a Hoverfly simulation (schema v5)'))
    .addHelpText(
      'after',
      `
The calls held now (bounded by limits.recordBytes and timeouts.record).
Load the file into Hoverfly, or name it as the dependency's simulation.

Examples:
  gatewayctl record export payments > payments.simulation.json
  gatewayctl record export payments --admin http://10.0.0.1:9901`,
    )
    .action((dependency: string, flags: AdminFlags) => run(() => recordExport(dependency, flags)));
}

export async function recordExport(dependency: string, flags: AdminFlags): Promise<number> {
  const { urls, access } = adminTargets(flags);
  const path = `/egress/recordings?dependency=${encodeURIComponent(dependency)}`;
  const all = await Promise.all(
    urls.map(async (url) => {
      const response = await adminRequest(url.href, path, access);
      const simulation = answerOf<Simulation>(adminUrl(url.href, path), response, SIMULATION);
      const header = response.headers[LEFT_OUT_HEADER];
      return { simulation, leftOut: Number(Array.isArray(header) ? header[0] : header) || 0 };
    }),
  );
  const merged = all[0]!.simulation;
  for (const other of all.slice(1)) merged.data.pairs.push(...other.simulation.data.pairs);
  const io = terminalOutput();
  const text = JSON.stringify(merged, null, 2);
  io.out(text);
  const bytes = Buffer.byteLength(text);
  if (bytes > SIMULATION_LIMITS.maxBytes) {
    io.err(`this export is ${bytes} bytes: over the ${SIMULATION_LIMITS.maxBytes} a dependency's simulation may have here (Hoverfly takes it); export sooner, or split its pairs`);
  }
  const leftOut = all.reduce((sum, a) => sum + a.leftOut, 0);
  if (leftOut > 0) {
    io.err(`left out ${leftOut} recorded call${leftOut === 1 ? '' : 's'} that ${dependency} never answered (the gateway's own 502/504: unreachable, timed out or too large)`);
  }
  return EXIT_OK;
}
