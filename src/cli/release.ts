/**
 * `gatewayctl release`: see and steer progressive releases.
 *   release status  [--admin URL]... [--json]
 *   release pause|resume|promote|rollback ROUTE [--admin URL]...
 *   release run     --admin URL... [--prometheus URL]
 */
import type { Command } from 'commander';
import type { ChalkInstance } from 'chalk';
import { adminJson, adminToken, DEFAULT_ADMIN_URL } from '../admin/http-client.js';
import { UsageError } from '../errors.js';
import type { ReleaseView } from '../release/controller.js';
import { ExternalReleaseRunner } from '../release/external.js';
import type { ReleaseAction } from '../release/machine.js';
import { parseDuration } from '../config/units.js';
import { EXIT_OK } from './exit-codes.js';
import { terminalOutput } from './output.js';
import { makeLogger } from './serve.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface AdminFlags {
  admin?: string[];
  token?: string;
  json?: boolean;
}

export function registerRelease(program: Command, run: (action: () => Promise<number>) => void): void {
  const release = program
    .command('release')
    .description('progressive delivery: dark launch, canary steps, promotion, gated on live evidence');

  release
    .command('status')
    .description('per route: step, weight, time in step, each gate against its limit, verdict')
    .option('--admin <url>', `admin API of a gateway; repeat for each replica (default ${DEFAULT_ADMIN_URL})`, collect)
    .option('--json', 'print JSON')
    .action((flags: AdminFlags) => run(() => statusCommand(flags)));

  for (const action of ['pause', 'resume', 'promote', 'rollback'] as const) {
    release
      .command(`${action} <route>`)
      .description(
        {
          pause: 'hold the current step; nothing is judged until resumed',
          resume: 'continue a paused release, or start a rolled-back one again',
          promote: 'send all of the route to the candidate now',
          rollback: 'send nothing to the candidate and stop mirroring to it',
        }[action],
      )
      .option('--admin <url>', `admin API of a gateway; repeat for each replica (default ${DEFAULT_ADMIN_URL})`, collect)
      .option('--token <token>', 'admin token (default $GATEWAYCTL_ADMIN_TOKEN)')
      .action((route: string, flags: AdminFlags) => run(() => actionCommand(action, route, flags)));
  }

  release
    .command('run')
    .description('drive releases with "controller: external" across replicas, so all are on the same step')
    .option('--admin <url>', 'admin API of each replica (repeat; the first leads)', collect)
    .option('--prometheus <url>', 'read the evidence from Prometheus instead of the replicas')
    .option('--token <token>', 'admin token (default $GATEWAYCTL_ADMIN_TOKEN)')
    .option('--every <duration>', 'how often to check', '2s')
    .option('--log-format <format>', 'json or pretty', process.stdout.isTTY ? 'pretty' : 'json')
    .addHelpText(
      'after',
      `
Example:
  gatewayctl release run --admin http://10.0.0.1:9901 --admin http://10.0.0.2:9901`,
    )
    .action((flags: AdminFlags & { prometheus?: string; every: string; logFormat: string }) => run(() => runCommand(flags)));
}

async function statusCommand(flags: AdminFlags): Promise<number> {
  const admins = flags.admin?.length ? flags.admin : [DEFAULT_ADMIN_URL];
  const io = terminalOutput();
  const replies = await Promise.all(admins.map(async (admin) => ({ admin, ...(await adminJson<{ releases: ReleaseView[] }>(admin, '/releases')) })));
  if (flags.json) {
    io.out(JSON.stringify(admins.length === 1 ? replies[0]!.releases : replies, null, 2));
    return EXIT_OK;
  }
  const routes = [...new Set(replies.flatMap((r) => r.releases.map((v) => v.route)))];
  if (routes.length === 0) io.out('no releases (add a "release" block to a route)');
  for (const route of routes) {
    const views = replies.map((r) => ({ admin: r.admin, view: r.releases.find((v) => v.route === route) }));
    const first = views.find((v) => v.view)!.view!;
    io.out(renderRelease(first, io.color));
    const positions = new Set(views.map((v) => (v.view ? `${v.view.status}:${v.view.stepIndex}` : 'missing')));
    if (positions.size > 1) {
      io.out(io.color.yellow(`  replicas disagree: ${views.map((v) => `${v.admin} ${v.view ? `${v.view.step} ${v.view.status}` : 'no release'}`).join('; ')}`));
    }
  }
  return EXIT_OK;
}

export function renderRelease(v: ReleaseView, color: ChalkInstance): string {
  const statusColor = v.status === 'rolled-back' ? color.red : v.status === 'promoted' ? color.green : v.status === 'paused' ? color.yellow : color.cyan;
  const steps = v.steps.map((s, i) => (i === v.stepIndex && v.status !== 'promoted' && v.status !== 'rolled-back' ? color.bold(`[${s}]`) : s)).join(' → ');
  const lines = [
    `${color.bold(v.route)}  ${v.candidate}  ${statusColor(v.status)}  weight ${v.weight}%${v.shadow ? ' + shadow' : ''}  (${v.controller} controller)`,
    `  steps: ${steps}`,
    `  in step ${formatMs(v.timeInStepMs)} of at least ${formatMs(v.intervalMs)}; ${v.candidateRequests}/${v.minRequests} requests`,
  ];
  for (const g of v.gates) {
    const mark = g.status === 'pass' ? color.green('pass') : g.status === 'fail' ? color.red('FAIL') : g.status === 'wait' ? color.yellow('wait') : color.dim('n/a ');
    lines.push(`  ${mark}  ${g.gate.padEnd(18)} ${g.detail}`);
  }
  lines.push(`  verdict: ${v.verdict}: ${v.reason}`);
  return lines.join('\n');
}

function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)}s`;
  return `${Math.round(ms / 60_000)}m`;
}

async function actionCommand(action: ReleaseAction, route: string, flags: AdminFlags): Promise<number> {
  const admins = flags.admin?.length ? flags.admin : [DEFAULT_ADMIN_URL];
  const token = adminToken(flags.token);
  const io = terminalOutput();
  for (const admin of admins) {
    const view = await adminJson<ReleaseView>(admin, `/releases/${encodeURIComponent(route)}/${action}`, {
      method: 'POST',
      ...(token ? { token } : {}),
    });
    const where = view.status === 'running' || view.status === 'paused' ? ` at ${view.step}` : '';
    io.out(`${admin}: ${view.route} ${view.status}${where} (weight ${view.weight}%)`);
  }
  return EXIT_OK;
}

async function runCommand(flags: AdminFlags & { prometheus?: string; every: string; logFormat: string }): Promise<number> {
  if (!flags.admin?.length) throw new UsageError('release run needs --admin URL for each replica');
  const every = parseDuration(flags.every);
  if (!every.ok) throw new UsageError(`--every: ${every.error}`);
  const logger = makeLogger({ logFormat: flags.logFormat });
  const token = adminToken(flags.token);
  const runner = new ExternalReleaseRunner({
    admins: flags.admin,
    ...(flags.prometheus ? { prometheus: flags.prometheus } : {}),
    ...(token ? { token } : {}),
    logger,
  });
  logger.info('release.run', `driving external releases on ${flags.admin.join(', ')} every ${flags.every}`);
  let stopped = false;
  const stop = () => (stopped = true);
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  while (!stopped) {
    try {
      await runner.tick();
    } catch (err) {
      logger.error('release.run', (err as Error).message);
    }
    await new Promise((r) => setTimeout(r, every.ok ? every.value : 2000));
  }
  return EXIT_OK;
}
