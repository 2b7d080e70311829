/**
 * `gatewayctl record export NAME`: the live calls a gateway holds now for
 * one dependency, as a Hoverfly simulation (schema v5) on stdout. With
 * several --admin replicas, their pairs are put together in one file.
 */
import type { Command } from 'commander';
import { SIMULATION } from '../admin/answers.js';
import { adminJson } from '../admin/http-client.js';
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
  const all = await Promise.all(urls.map((url) => adminJson<Simulation>(url.href, path, access, SIMULATION)));
  const merged = all[0]!;
  for (const other of all.slice(1)) merged.data.pairs.push(...other.data.pairs);
  terminalOutput().out(JSON.stringify(merged, null, 2));
  return EXIT_OK;
}
