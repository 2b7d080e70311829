/**
 * `gatewayctl diff`: follow the live shadow diffs of one or several
 * gateways; `gatewayctl diff summary`: the per-route counts, merged across
 * replicas. Thin: the stream client and the merge are in the core.
 */
import type { ChalkInstance } from 'chalk';
import type { Command } from 'commander';
import { adminJson } from '../admin/http-client.js';
import { followDiffs } from '../diff/follow.js';
import { mergeSummaries, type DiffSummary, type PathSummary, type ShadowSummary } from '../diff/summary.js';
import type { DiffEvent, Difference, JsonValue } from '../diff/types.js';
import { addAdminOptions, adminTargets, wholeNumber, type AdminFlags } from './admin-options.js';
import { EXIT_OK } from './exit-codes.js';
import { table, terminalOutput } from './output.js';

interface FollowFlags extends AdminFlags {
  route?: string;
  shadow?: string;
  json?: boolean;
  count?: string;
  replay?: string;
}

interface SummaryFlags extends AdminFlags {
  route?: string;
  shadow?: string;
  json?: boolean;
  top?: string;
}

export function registerDiff(program: Command, run: (action: () => Promise<number>) => void): void {
  const diff = addAdminOptions(
    program
      .command('diff')
      .description('follow shadow diffs live: each mirrored request whose shadow answered differently')
      // Options after "summary" belong to it, not to "diff".
      .enablePositionalOptions(),
  )
    .option('--route <name>', 'only this route')
    .option('--shadow <upstream>', 'only this shadow target')
    .option('--json', 'one JSON event per line (for scripts)')
    .option('--count <n>', 'exit after N events (default: follow until interrupted)')
    .option('--replay <n>', 'first print up to N recent events of each gateway', '0')
    .addHelpText(
      'after',
      `
Each event: route, method and path, request id, primary and shadow status and
latency, then each difference as "path: primary → shadow". Differences also
seen between the primary and the route's diff.baseline are noise and masked.

Exit status: 0 done (or interrupted), 1 an admin API cannot be reached, 2 usage error.

Examples:
  gatewayctl diff
  gatewayctl diff --route shop --json --count 10 | jq .differences
  gatewayctl diff --admin http://10.0.0.1:9901 --admin http://10.0.0.2:9901
  gatewayctl diff summary --route shop`,
    )
    .action((flags: FollowFlags) => run(() => followCommand(flags)));

  addAdminOptions(diff.command('summary').description('per-route counts: compared, differing, rate, top paths, noise'))
    .option('--route <name>', 'only this route')
    .option('--shadow <upstream>', 'only this shadow target')
    .option('--top <n>', 'paths shown per shadow target', '5')
    .option('--json', 'print the merged summary as JSON')
    .addHelpText(
      'after',
      `
Counts from several --admin replicas are added up; rates and intervals are
computed from the sums. A path's verdict compares the 95% interval of its
difference rate with that of its noise rate (primary vs baseline).

Examples:
  gatewayctl diff summary
  gatewayctl diff summary --route shop --json | jq '.routes[0].shadows[0].paths'`,
    )
    .action((flags: SummaryFlags) => run(() => summaryCommand(flags, diff.opts<AdminFlags>())));
}

export async function followCommand(flags: FollowFlags): Promise<number> {
  const { urls, token } = adminTargets(flags);
  const limit = wholeNumber(flags.count, '--count', 1);
  const replay = wholeNumber(flags.replay, '--replay') ?? 0;
  const io = terminalOutput();
  let printed = 0;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));

  const follower = await followDiffs(urls, {
    ...(token ? { token } : {}),
    ...(flags.route ? { route: flags.route } : {}),
    ...(flags.shadow ? { shadow: flags.shadow } : {}),
    ...(replay ? { replay } : {}),
    onEvent: (event) => {
      if (limit !== undefined && printed >= limit) return;
      printed++;
      if (flags.json) io.out(JSON.stringify(event));
      else for (const line of renderEvent(event, io.color)) io.out(line);
      if (limit !== undefined && printed >= limit) finish(EXIT_OK);
    },
    onLag: (skipped, source) => io.err(`gatewayctl: ${source.origin} skipped ${skipped} events: this terminal reads too slowly`),
    onNotice: (text) => io.err(`gatewayctl: ${text}`),
  });
  const interrupted = () => finish(EXIT_OK);
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    return await finished;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    follower.stop();
  }
}

export async function summaryCommand(flags: SummaryFlags, inherited: AdminFlags = {}): Promise<number> {
  const { urls, token } = adminTargets(flags, inherited);
  const top = wholeNumber(flags.top, '--top') ?? 5;
  const path = '/diffs/summary' + queryString({ route: flags.route, shadow: flags.shadow });
  const summaries = await Promise.all(urls.map((url) => adminJson<DiffSummary>(url.href, path, token ? { token } : {})));
  const merged = urls.length === 1 ? summaries[0]! : mergeSummaries(summaries);
  const io = terminalOutput();
  if (flags.json) io.out(JSON.stringify(merged, null, 2));
  else for (const line of renderSummary(merged, io.color, top)) io.out(line);
  return EXIT_OK;
}

function queryString(params: Record<string, string | undefined>): string {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) query.set(k, v);
  const text = query.toString();
  return text ? `?${text}` : '';
}

// ---- rendering -------------------------------------------------------------

const show = (value: JsonValue): string => JSON.stringify(value);

function label(d: Difference): string {
  switch (d.kind) {
    case 'status':
      return 'status';
    case 'error':
      return 'error';
    case 'header':
      return `header ${d.path}`;
    case 'body':
      return d.path === '' ? 'body' : d.path;
    case 'call': {
      const c = d.call;
      const call = c ? `call ${c.dependency} ${c.method} ${c.path}` : 'call';
      return d.path === '' ? call : `${call} ${d.path}`;
    }
  }
}

function sides(d: Difference): [string, string] {
  if (d.kind === 'error') return [String(d.primary), String(d.shadow)];
  switch (d.change) {
    case 'missing':
      return [show(d.primary), '(absent)'];
    case 'extra':
      return ['(absent)', show(d.shadow)];
    case 'order':
      return ['(order)', '(same elements, other order)'];
    default:
      return [show(d.primary), show(d.shadow)];
  }
}

const ms = (v: number) => `${v < 10 ? v.toFixed(1) : Math.round(v)}ms`;

/** One event as a few readable lines; old values red, new green. */
export function renderEvent(event: DiffEvent, color: ChalkInstance): string[] {
  const time = event.time.slice(11, 23);
  const p = event.primary;
  const s = event.shadow;
  const shadowState = s.status === null ? color.red(s.error ?? 'no answer') : String(s.status);
  const extras: string[] = [];
  if (event.differenceCount > event.differences.length) extras.push(`${event.differenceCount} differences, ${event.differences.length} shown`);
  if (event.noise) extras.push(`${event.noise} masked as noise`);
  if (event.truncated) extras.push('bodies cut at diff.maxBodyBytes');
  if (event.limited) extras.push(`compared up to the ${event.limited} limit`);
  const lines = [
    `${color.dim(time)} ${color.bold(event.route)} ${event.method} ${event.path} ${color.dim(`id=${event.requestId}`)}`,
    `  ${p.upstream} ${p.status} ${ms(p.latencyMs)} → ${s.upstream} ${shadowState} ${ms(s.latencyMs)}` +
      (extras.length ? color.dim(`  (${extras.join('; ')})`) : ''),
  ];
  for (const d of event.differences) {
    const [old, now] = sides(d);
    const note = d.note ? color.dim(`  (${d.note})`) : '';
    lines.push(`  ${label(d)}: ${color.red(old)} → ${color.green(now)}${note}`);
  }
  return lines;
}

const percent = (v: number) => `${(v * 100).toFixed(v > 0 && v < 0.001 ? 2 : 1)}%`;
const interval = (ci: readonly [number, number]) => `${percent(ci[0])}–${percent(ci[1])}`;

function pathLabel(p: PathSummary): string {
  if (p.kind === 'body') return p.path === '' ? 'body' : p.path;
  if (p.kind === 'header') return `header ${p.path}`;
  return p.kind;
}

function latencyLine(s: ShadowSummary): string {
  const l = s.latency;
  const fmt = (v: number | null) => (v === null ? '–' : `≤${v}ms`);
  return `latency p50/p95: primary ${fmt(l.primary.p50Ms)}/${fmt(l.primary.p95Ms)}, shadow ${fmt(l.shadow.p50Ms)}/${fmt(l.shadow.p95Ms)}`;
}

/** The per-route table, then each target's top paths. */
export function renderSummary(summary: DiffSummary, color: ChalkInstance, top: number): string[] {
  if (summary.routes.length === 0) return ['no mirrored pairs compared yet'];
  const rows: string[][] = [['ROUTE', 'SHADOW', 'COMPARED', 'DIFFERING', 'RATE', '95% CI', 'NOISE MASKED', 'DROPPED', 'BASELINE']];
  for (const r of summary.routes) {
    for (const s of r.shadows) {
      rows.push([
        r.route,
        s.shadow,
        String(s.compared),
        String(s.differing),
        percent(s.diffRate),
        interval(s.diffRateCi),
        String(s.noiseMasked),
        String(s.dropped),
        s.baseline ?? '–',
      ]);
    }
  }
  const lines = table(rows, (text, row, column) => (row === 0 ? color.bold(text) : column === 4 && text.trim() !== '0.0%' ? color.yellow(text) : text));
  for (const r of summary.routes) {
    for (const s of r.shadows) {
      lines.push('', `${color.bold(r.route)} → ${color.bold(s.shadow)}: ${latencyLine(s)}`);
      const paths = s.paths.slice(0, top);
      if (paths.length === 0) {
        lines.push('  no differing paths');
        continue;
      }
      const pathRows = [['  PATH', 'DIFFERING', 'RATE', '95% CI', 'NOISE', 'VERDICT']];
      for (const p of paths) {
        pathRows.push([`  ${pathLabel(p)}`, String(p.differing), percent(p.rate), interval(p.ci), s.baselined ? percent(p.noiseRate) : '–', p.verdict]);
      }
      const verdictColor = { regression: color.red, noise: color.dim, uncertain: color.yellow, unverified: color.yellow } as const;
      lines.push(
        ...table(pathRows, (text, row, column) =>
          row === 0 ? color.bold(text) : column === 5 ? verdictColor[text.trim() as keyof typeof verdictColor](text) : text,
        ),
      );
      const more = s.paths.length - paths.length + s.pathsOmitted;
      if (more > 0) lines.push(color.dim(`  … ${more} more paths (--top N, or --json)`));
    }
  }
  return lines;
}
