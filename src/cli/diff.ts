/**
 * `gatewayctl diff`: follow the live shadow diffs of one or several
 * gateways; `gatewayctl diff summary`: the per-route counts, merged across
 * replicas. Thin: the stream client and the merge are in the core.
 */
import type { ChalkInstance } from 'chalk';
import type { Command } from 'commander';
import { SUMMARY } from '../admin/answers.js';
import { adminJson } from '../admin/http-client.js';
import { followDiffs } from '../admin/follow-diffs.js';
import { mergeSummaries, type DiffSummary, type Finding, type PathSummary, type ShadowSummary } from '../diff/summary.js';
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
  paths?: boolean;
}

/** Registers `diff` and `diff summary`; returns `diff`, for its other subcommands. */
export function registerDiff(program: Command, run: (action: () => Promise<number>) => void): Command {
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
Each event: route, method and path, request id, the endpoint template when it
says more than the path, primary and shadow status and latency, then each
difference as "path: primary → shadow" (a JSON Pointer, an HTML/XML node path,
a header, status, error, or latency for an endpoint confidently slower than
diff.latency.maxRatio). Noise, learned per endpoint from the route's
diff.baseline (or, without one, from repeated requests), is masked.

Exit status: 0 done (or interrupted), 1 an admin API cannot be reached, 2 usage error.

Examples:
  gatewayctl diff
  gatewayctl diff --route shop --json --count 10 | jq .differences
  gatewayctl diff --admin http://10.0.0.1:9901 --admin http://10.0.0.2:9901
  gatewayctl diff summary --route shop`,
    )
    .action((flags: FollowFlags) => run(() => followCommand(flags)));

  addAdminOptions(diff.command('summary').description('is the shadow safe: findings per endpoint (what, how many requests, an example), noise collapsed, latency'))
    .option('--route <name>', 'only this route')
    .option('--shadow <upstream>', 'only this shadow target')
    .option('--top <n>', 'findings (and with --paths, paths) shown per shadow target', '10')
    .option('--paths', 'also list each endpoint\'s differing paths with their verdicts')
    .option('--json', 'print the merged summary as JSON')
    .addHelpText(
      'after',
      `
First the answer: is the shadow safe, and if not, what is wrong, on which
endpoint, on how many requests, with an example request id. Findings come
first, most affected requests first; differences that share a cause (a 500's
body and headers) are listed under it; noise is collapsed into one line.
Counts from several --admin replicas are added up; rates and intervals are
computed from the sums. A verdict compares the 95% interval of a path's
difference rate with that of its noise rate (primary vs baseline, or
without a baseline, the primary's answers to repeated requests).

Examples:
  gatewayctl diff summary
  gatewayctl diff summary --route shop --json | jq '.routes[0].shadows[0].paths'`,
    )
    .action((flags: SummaryFlags) => run(() => summaryCommand(flags, diff.opts<AdminFlags>())));
  return diff;
}

export async function followCommand(flags: FollowFlags): Promise<number> {
  const { urls, access } = adminTargets(flags);
  const limit = wholeNumber(flags.count, '--count', 1);
  const replay = wholeNumber(flags.replay, '--replay') ?? 0;
  const io = terminalOutput();
  let printed = 0;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));

  const follower = await followDiffs(urls, {
    ...(access),
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
  const { urls, access } = adminTargets(flags, inherited);
  const top = wholeNumber(flags.top, '--top') ?? 10;
  const path = '/diffs/summary' + queryString({ route: flags.route, shadow: flags.shadow });
  const summaries = await Promise.all(urls.map((url) => adminJson<DiffSummary>(url.href, path, access, SUMMARY)));
  const merged = urls.length === 1 ? summaries[0]! : mergeSummaries(summaries);
  const io = terminalOutput();
  if (flags.json) io.out(JSON.stringify(merged, null, 2));
  else for (const line of renderSummary(merged, io.color, top, flags.paths ?? false)) io.out(line);
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
    case 'latency':
      return 'latency';
    case 'call': {
      const c = d.call;
      const call = c ? `call ${c.dependency} ${c.method} ${c.path}` : 'call';
      return d.path === '' ? call : `${call} ${d.path}`;
    }
  }
}

function sides(d: Difference): [string, string] {
  if (d.kind === 'error') return [String(d.primary), String(d.shadow)];
  if (d.kind === 'latency') return [`limit ${String(d.primary)}×`, `${String(d.shadow)}× primary`];
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
  if (event.evidence === 'none') extras.push('no noise evidence yet');
  // The endpoint, when it says more than the path itself.
  const endpoint = event.endpoint && event.endpoint !== event.path.split('?')[0] ? `  ${color.cyan(event.endpoint)}` : '';
  const lines = [
    `${color.dim(time)} ${color.bold(event.route)} ${event.method} ${event.path} ${color.dim(`id=${event.requestId}`)}${endpoint}`,
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

function verdictLine(s: ShadowSummary, color: ChalkInstance): string {
  const regressions = (s.findings ?? []).filter((f) => f.verdict === 'regression').length;
  const headline = `${percent(s.diffRate)} of ${s.compared} pairs really differ (95% CI ${interval(s.diffRateCi)}); noise alone on ${percent(s.noiseRate ?? 0)}, not counted`;
  switch (s.verdict) {
    case 'regression':
      return `${color.red.bold('NOT SAFE')}: ${regressions} regression${regressions === 1 ? '' : 's'}. ${headline}`;
    case 'unverified':
      return `${color.yellow.bold('CHECK')}: differences with no noise evidence to judge them (add a diff.baseline). ${headline}`;
    case 'uncertain':
      return `${color.yellow.bold('TOO EARLY')}: ${s.compared} pairs compared. ${headline}`;
    case 'safe':
      return `${color.green.bold('SAFE')}: no regression found. ${headline}`;
    default:
      return headline;
  }
}

function findingRows(findings: readonly Finding[], color: ChalkInstance): string[] {
  const rows = [['  ENDPOINT', 'FINDING', 'REQUESTS', 'RATE', 'VERDICT', 'EXAMPLE']];
  for (const f of findings) {
    const title = f.with && f.with.length ? `${f.title} (with ${f.with.join(', ')})` : f.title;
    rows.push([`  ${f.endpoint}`, title, String(f.requests), f.kind === 'latency' ? '–' : percent(f.rate), f.verdict, f.example ? `id=${f.example}` : '–']);
  }
  const paint = { regression: color.red, unverified: color.yellow, uncertain: color.yellow } as const;
  const lines = table(rows, (text, row, column) =>
    row === 0 ? color.bold(text) : column === 4 ? (paint[text.trim() as keyof typeof paint] ?? ((t: string) => t))(text) : text,
  );
  for (const f of findings) if (f.detail) lines.push(color.dim(`  ${f.endpoint} ${f.title}: ${f.detail}`));
  return lines;
}

function noiseLine(s: ShadowSummary): string | undefined {
  const n = s.noise;
  if (!n || n.paths === 0) return undefined;
  const top = n.top.map((t) => `${t.endpoint} ${t.kind === 'body' ? t.path : `${t.kind} ${t.path}`}`).join(', ');
  const evidence = s.baseline ? `against baseline ${s.baseline}` : 'from repeated requests';
  return `  noise (${evidence}): ${n.masked} differences on ${n.paths} paths, collapsed: ${top}${n.paths > n.top.length ? ', …' : ''}`;
}

/** Per route and target: the verdict, the findings, the noise in one line, latency; paths on request. */
export function renderSummary(summary: DiffSummary, color: ChalkInstance, top: number, withPaths = false): string[] {
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
      lines.push('', `${color.bold(r.route)} → ${color.bold(s.shadow)}: ${verdictLine(s, color)}`);
      const findings = s.findings ?? [];
      if (findings.length > 0) {
        lines.push(...findingRows(findings.slice(0, top), color));
        if (findings.length > top) lines.push(color.dim(`  … ${findings.length - top} more findings (--top N, or --json)`));
      }
      const noise = noiseLine(s);
      if (noise) lines.push(color.dim(noise));
      lines.push(`  ${latencyLine(s)}`);
      if (withPaths) lines.push(...pathTables(s, color, top));
    }
  }
  return lines;
}

function pathTables(s: ShadowSummary, color: ChalkInstance, top: number): string[] {
  const lines: string[] = [];
  const verdictColor = { regression: color.red, noise: color.dim, uncertain: color.yellow, unverified: color.yellow } as const;
  const endpoints = s.endpoints ?? [];
  for (const e of endpoints) {
    const paths = e.paths.filter((p) => p.differing > 0 || p.masked > 0).slice(0, top);
    if (paths.length === 0) continue;
    lines.push(`  ${color.cyan(e.endpoint)}: ${e.compared} compared, ${percent(e.diffRate)} differ, evidence: ${e.evidence}`);
    const pathRows = [['    PATH', 'DIFFERING', 'RATE', '95% CI', 'NOISE', 'VERDICT']];
    for (const p of paths) {
      const noise = e.baselined ? percent(p.noiseRate) : e.repeated ? `${p.repeatNoise ?? 0} repeats` : '–';
      const learned = p.learned ? ` (learned ${p.learned.unordered ? 'set' : `tolerance ${p.learned.tolerance}`})` : '';
      pathRows.push([`    ${pathLabel(p)}${learned}`, String(p.differing), percent(p.rate), interval(p.ci), noise, p.verdict]);
    }
    lines.push(
      ...table(pathRows, (text, row, column) =>
        row === 0 ? color.bold(text) : column === 5 ? verdictColor[text.trim() as keyof typeof verdictColor](text) : text,
      ),
    );
  }
  return lines;
}
