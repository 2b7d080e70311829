/**
 * `gatewayctl reload`: asks running gateways to reload their config file
 * (POST /reload) and says whether they took it. Unlike SIGHUP it reports a
 * refused config, so `systemctl reload` fails when the edit is bad.
 */
import type { Command } from 'commander';
import { REFUSED, RELOADED } from '../admin/answers.js';
import { adminRequest, adminUrl, answerOf } from '../admin/http-client.js';
import { addAdminOptions, adminTargets, type AdminFlags } from './admin-options.js';
import { EXIT_FAILED, EXIT_OK } from './exit-codes.js';
import { terminalOutput } from './output.js';

interface ReloadFlags extends AdminFlags {
  json?: boolean;
  force?: boolean;
}

interface ReplyDiagnostic {
  severity: string;
  message: string;
  path?: string;
  line?: number;
  column?: number;
}

interface ReloadReplyBody {
  generation?: number;
  changed?: string[];
  unchanged?: boolean;
  restartRequired?: string[];
  warnings?: ReplyDiagnostic[];
  error?: string;
  errors?: ReplyDiagnostic[];
}

export function registerReload(program: Command, run: (action: () => Promise<number>) => void): void {
  addAdminOptions(program.command('reload').description('reload the config of running gateways; fails when they refuse it'))
    .option('--json', 'print each gateway\'s answer as JSON')
    .option('--force', 'apply even a config that removes most routes (the mass route removal guard)')
    .addHelpText(
      'after',
      `
Exit status: 0 every gateway runs the file as it is now (applied or
unchanged), 1 a gateway refused it (the errors are printed; it keeps
serving the previous config) or could not be reached.

Examples:
  gatewayctl reload
  gatewayctl reload --admin http://10.0.0.1:9901 --admin http://10.0.0.2:9901`,
    )
    .action((flags: ReloadFlags) => run(() => reloadCommand(flags)));
}

export async function reloadCommand(flags: ReloadFlags): Promise<number> {
  const { urls, access } = adminTargets(flags);
  const io = terminalOutput();
  let refused = 0;
  for (const url of urls) {
    const path = flags.force ? '/reload?force=true' : '/reload';
    // A JSON body: state-changing admin calls may require application/json.
    const response = await adminRequest(url.href, path, { method: 'POST', body: {}, ...(access) });
    const refusedHere = response.status === 422;
    const body = answerOf<ReloadReplyBody>(adminUrl(url.href, path), response, refusedHere ? REFUSED : RELOADED, [422]);
    if (flags.json) io.out(JSON.stringify({ admin: url.origin, status: response.status, ...body }));
    if (refusedHere) {
      refused++;
      if (!flags.json) {
        io.err(`${url.origin}: config refused: ${body.error ?? 'invalid config'}`);
        for (const d of body.errors ?? []) io.err(`  ${describe(d)}`);
        io.err(`${url.origin}: the previous config keeps serving`);
      }
      continue;
    }
    if (flags.json) continue;
    if (body.unchanged) io.out(`${url.origin}: config unchanged (generation ${body.generation})`);
    else io.out(`${url.origin}: config generation ${body.generation} applied: ${body.changed?.join('; ') || 'no routing changes'}`);
    for (const item of body.restartRequired ?? []) io.err(`  ${item}: takes effect after a restart`);
    for (const d of body.warnings ?? []) io.err(`  ${describe(d)}`);
  }
  return refused ? EXIT_FAILED : EXIT_OK;
}

function describe(d: ReplyDiagnostic): string {
  const where = d.line ? `${d.line}:${d.column ?? 1}: ` : '';
  return `${where}${d.severity}: ${d.message}${d.path ? ` (${d.path})` : ''}`;
}
