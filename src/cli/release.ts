/**
 * `gatewayctl release`: see and steer progressive releases.
 *   release status  [--admin URL]... [--token T] [--json]
 *   release pause|resume|promote|rollback ROUTE [--admin URL]... [--token T]
 *   release run     --admin URL... | --admin-dns NAME:PORT  [--prometheus URL [--selector S] [--header K:V]...] [--until-done]
 * Every subcommand takes the shared admin flags (admin-options.ts).
 */
import type { Command } from 'commander';
import type { ChalkInstance } from 'chalk';
import { RELEASE, RELEASES } from '../admin/answers.js';
import { adminJson, type AdminAccess } from '../admin/http-client.js';
import { UsageError } from '../errors.js';
import type { ReleaseView } from '../release/controller.js';
import type { EvidenceSource } from '../release/sources.js';
import type { ReleaseAction } from '../release/machine.js';
import { parseDuration } from '../config/units.js';
import { addAdminOptions, adminAccess, adminTargets, adminUrls, type AdminFlags } from './admin-options.js';
import { EXIT_FAILED, EXIT_OK } from './exit-codes.js';
import { makeLogger, terminalOutput } from './output.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface ReleaseFlags extends AdminFlags {
  json?: boolean;
}

/** An admin URL as given back to people and joined with paths: no trailing slash. */
const base = (url: URL) => url.href.replace(/\/$/, '');

export function registerRelease(program: Command, run: (action: () => Promise<number>) => void): void {
  const release = program
    .command('release')
    .description('progressive delivery: dark launch, canary steps, promotion, gated on live evidence');

  addAdminOptions(release.command('status').description('per route: step, weight, time in step, each gate against its limit, verdict'))
    .option('--json', 'print JSON')
    .action((flags: ReleaseFlags) => run(() => statusCommand(flags)));

  for (const action of ['pause', 'resume', 'promote', 'rollback'] as const) {
    addAdminOptions(release.command(`${action} <route>`))
      .description(
        {
          pause: 'hold the current step; nothing is judged until resumed',
          resume: 'continue a paused release, or start a rolled-back one again',
          promote: 'send all of the route to the candidate now',
          rollback: 'send nothing to the candidate and stop mirroring to it',
        }[action],
      )
      .action((route: string, flags: ReleaseFlags) => run(() => actionCommand(action, route, flags)));
  }

  addAdminOptions(
    release.command('run').description('drive releases with "controller: external" across replicas, so all are on the same step'),
    'admin API of each replica, URL or HOST:PORT (repeat; the first leads)',
  )
    .option('--admin-dns <name:port>', 'find the replicas: every address NAME resolves to, on each check (e.g. a headless Service)', collect)
    .option('--prometheus <url>', 'read the evidence from Prometheus (or Mimir, Thanos...) instead of the replicas; a path prefix is kept')
    .option('--selector <matchers>', 'scope every Prometheus query, e.g. \'{job="gatewayctl",namespace="prod"}\'')
    .option('--header <k:v>', 'send this header to Prometheus (repeat), e.g. X-Scope-OrgID:team-a', collect)
    .option('--bearer-token-file <file>', 'send "Authorization: Bearer" with the token in this file (re-read on each query)')
    .option('--prometheus-ca <file>', 'PEM CA that signed the Prometheus certificate (https)')
    .option('--prometheus-insecure', 'do not verify the Prometheus certificate (testing only)')
    .option('--scrape-interval <duration>', "Prometheus' scrape interval of the gateways (default: learnt from the samples)")
    .option('--every <duration>', 'how often to check', '2s')
    .option('--until-done', 'exit once every external release is finished: 0 if all were promoted, 1 if any was rolled back or stopped')
    .option('--log-format <format>', 'json or pretty', process.stdout.isTTY ? 'pretty' : 'json')
    .option('--json', 'same as --log-format json: one JSON object per decision')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .addHelpText(
      'after',
      `
Every check is logged at info level with its gate figures. Errors name the
part that failed: the admin API of a replica, Prometheus, or DNS.

Examples:
  gatewayctl release run --admin http://10.0.0.1:9901 --admin http://10.0.0.2:9901
  gatewayctl release run --admin-dns gatewayctl-admin.prod.svc:9901 \\
      --prometheus https://prometheus.example.com/prometheus --prometheus-ca ca.pem \\
      --selector '{job="gatewayctl",namespace="prod"}' --header X-Scope-OrgID:prod --until-done`,
    )
    .action((flags: RunFlags) => run(() => runCommand(flags)));
}

interface RunFlags extends ReleaseFlags {
  adminDns?: string[];
  prometheus?: string;
  selector?: string;
  header?: string[];
  bearerTokenFile?: string;
  prometheusCa?: string;
  prometheusInsecure?: boolean;
  scrapeInterval?: string;
  every: string;
  untilDone?: boolean;
  logFormat: string;
  logLevel: string;
}

async function statusCommand(flags: ReleaseFlags): Promise<number> {
  const { urls, access } = adminTargets(flags);
  const admins = urls.map(base);
  const io = terminalOutput();
  const replies = await Promise.all(admins.map(async (admin) => ({ admin, ...(await adminJson<{ releases: ReleaseView[] }>(admin, '/releases', access, RELEASES)) })));
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

async function actionCommand(action: ReleaseAction, route: string, flags: ReleaseFlags): Promise<number> {
  const { urls, access } = adminTargets(flags);
  const io = terminalOutput();
  for (const admin of urls.map(base)) {
    const view = await adminJson<ReleaseView>(admin, `/releases/${encodeURIComponent(route)}/${action}`, { ...access, method: 'POST' }, RELEASE);
    const where = view.status === 'running' || view.status === 'paused' ? ` at ${view.step}` : '';
    io.out(`${admin}: ${view.route} ${view.status}${where} (weight ${view.weight}%)`);
  }
  return EXIT_OK;
}

function durationFlag(flag: string, value: string): number {
  const parsed = parseDuration(value);
  if (!parsed.ok) throw new UsageError(`${flag}: ${parsed.error}`);
  return parsed.value;
}

async function evidenceSource(flags: RunFlags): Promise<EvidenceSource | undefined> {
  if (!flags.prometheus) {
    for (const [flag, given] of [
      ['--selector', flags.selector],
      ['--header', flags.header?.length],
      ['--bearer-token-file', flags.bearerTokenFile],
      ['--prometheus-ca', flags.prometheusCa],
      ['--scrape-interval', flags.scrapeInterval],
    ] as const) {
      if (given) throw new UsageError(`${flag} applies to --prometheus, which is not given`);
    }
    return undefined;
  }
  const [{ parseHeader, PrometheusClient }, { parseSelector }, { PrometheusEvidence }] = await Promise.all([
    import('../release/prometheus.js'),
    import('../release/promql.js'),
    import('../release/sources.js'),
  ]);
  const headers: Record<string, string> = {};
  for (const h of flags.header ?? []) {
    const parsed = parseHeader(h);
    if (!parsed) throw new UsageError(`--header ${h}: expected NAME:VALUE, e.g. X-Scope-OrgID:team-a`);
    headers[parsed[0]] = parsed[1];
  }
  const client = new PrometheusClient({
    url: flags.prometheus,
    headers,
    ...(flags.bearerTokenFile ? { bearerTokenFile: flags.bearerTokenFile } : {}),
    ...(flags.prometheusCa ? { caFile: flags.prometheusCa } : {}),
    ...(flags.prometheusInsecure ? { insecure: true } : {}),
  });
  const interval = flags.scrapeInterval ? durationFlag('--scrape-interval', flags.scrapeInterval) : undefined;
  return new PrometheusEvidence(client, parseSelector(flags.selector), interval);
}

async function runCommand(flags: RunFlags): Promise<number> {
  if (!flags.admin?.length && !flags.adminDns?.length) {
    throw new UsageError('release run needs --admin URL for each replica, or --admin-dns NAME:PORT to find them');
  }
  const every = durationFlag('--every', flags.every);
  const logger = makeLogger({ logFormat: flags.json ? 'json' : flags.logFormat, logLevel: flags.logLevel });
  const access: AdminAccess = adminAccess(flags);
  const admins = adminUrls(flags.admin ?? []).map(base);
  const evidence = await evidenceSource(flags);
  // The runner is loaded for `release run` alone: the other commands never load it.
  const { ExternalReleaseRunner, releasesDone } = await import('../release/external.js');
  const runner = new ExternalReleaseRunner({
    admins,
    ...(flags.adminDns?.length ? { adminDns: flags.adminDns } : {}),
    ...(evidence ? { evidence } : {}),
    access,
    logger,
  });
  const where = [...admins, ...(flags.adminDns ?? []).map((d) => `${d} (DNS)`)].join(', ');
  logger.info('release.run', `driving external releases on ${where} every ${flags.every}, evidence from ${evidence?.description ?? "the replicas' /metrics"}`);
  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopped = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  while (!stopped) {
    try {
      const outcome = await runner.tick();
      if (flags.untilDone) {
        const { done, ok } = releasesDone(outcome);
        if (done) {
          logger.info('release.done', `every external release is finished: ${[...outcome.statuses].map(([r, s]) => `${r} ${s.status}`).join(', ')}`);
          return ok ? EXIT_OK : EXIT_FAILED;
        }
      }
    } catch (err) {
      const component = (err as { code?: string }).code === 'GW_PROMETHEUS_FAILED' ? 'prometheus' : 'admin';
      logger.error('release.run', (err as Error).message, { component });
    }
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, every);
    });
  }
  return EXIT_OK;
}
