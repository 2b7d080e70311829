/**
 * `gatewayctl status`: routes, weights, shadow targets and live rates of
 * one or several gateways (merged), in one screen.
 */
import type { ChalkInstance } from 'chalk';
import type { Command } from 'commander';
import { STATUS } from '../admin/answers.js';
import { adminJson } from '../admin/http-client.js';
import { mergeStatus, type GatewayStatus, type RouteStatus } from '../admin/status.js';
import { addAdminOptions, adminTargets, type AdminFlags } from './admin-options.js';
import { EXIT_OK } from './exit-codes.js';
import { table, terminalOutput } from './output.js';

interface StatusFlags extends AdminFlags {
  json?: boolean;
}

export function registerStatus(program: Command, run: (action: () => Promise<number>) => void): void {
  addAdminOptions(program.command('status').description('routes, weights, shadow targets and live rates, in one screen'))
    .option('--json', 'print the (merged) status as JSON')
    .addHelpText(
      'after',
      `
Rates are over the gateway's last few seconds (see "window"). With several
--admin replicas, requests and rates are added up.

Examples:
  gatewayctl status
  gatewayctl status --admin http://10.0.0.1:9901 --admin http://10.0.0.2:9901 --json`,
    )
    .action((flags: StatusFlags) => run(() => statusCommand(flags)));
}

export async function statusCommand(flags: StatusFlags): Promise<number> {
  const { urls, access } = adminTargets(flags);
  const all = await Promise.all(urls.map((url) => adminJson<GatewayStatus>(url.href, '/status', access, STATUS)));
  const status = mergeStatus(all);
  const io = terminalOutput();
  if (flags.json) io.out(JSON.stringify(status, null, 2));
  else for (const line of renderStatus(status, io.color, urls.map((u) => u.origin))) io.out(line);
  return EXIT_OK;
}

const pct = (v: number | null) => (v === null ? '–' : `${(v * 100).toFixed(1)}%`);
const ms = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${v}ms`);

function matchText(route: RouteStatus): string {
  const m = route.match;
  const parts = [m.host ?? '', m.prefix ?? (m.host ? '' : '/'), m.methods?.join(',') ?? ''];
  if (m.headers) parts.push(...Object.entries(m.headers).map(([k, v]) => `${k}=${v}`));
  return parts.filter(Boolean).join(' ');
}

export function renderStatus(status: GatewayStatus, color: ChalkInstance, sources: readonly string[]): string[] {
  const where = sources.length === 1 ? sources[0]! : `${sources.length} replicas`;
  const lines = [
    `${color.bold(where)}: config generation ${status.generation} (${status.hash.slice(0, 12)}), rates over the last ${status.windowSeconds}s`,
  ];
  for (const route of status.routes) {
    lines.push('', `${color.bold(route.name)}  ${matchText(route)}${route.sticky ? color.dim(`  sticky ${route.sticky}`) : ''}`);
    const rows: string[][] = [['  BACKEND', 'WEIGHT', 'SHARE', 'REQ/S', '5XX', 'MEAN', 'P50', 'P99']];
    for (const b of route.backends) {
      rows.push([`  ${b.upstream}`, String(b.weight), pct(b.share), b.rps.toFixed(1), pct(b.errorRate), ms(b.meanLatencyMs), ms(b.p50Ms), ms(b.p99Ms)]);
    }
    if (route.shadows.length) {
      rows.push(['  SHADOW', 'PERCENT', '', 'COPIES/S', 'FAILED', 'DIFF RATE', '', '']);
      for (const s of route.shadows) {
        const failed = (s.outcomes['error'] ?? 0) + (s.outcomes['timeout'] ?? 0);
        const dropped = s.outcomes['dropped'] ?? 0;
        rows.push([
          `  ${s.upstream}`,
          `${s.percent}%`,
          '',
          s.rps.toFixed(1),
          String(failed) + (dropped ? ` (+${dropped} dropped)` : ''),
          route.diff ? pct(s.diffRate) : 'off',
          '',
          '',
        ]);
      }
    }
    const headerRows = new Set([0, route.backends.length + 1]);
    lines.push(...table(rows, (text, row) => (headerRows.has(row) ? color.bold(text) : text)));
    if (route.baseline) lines.push(color.dim(`  diff baseline: ${route.baseline}`));
  }
  // Endpoint health, for upstreams of more than one instance or with one out of rotation.
  const pools = (status.upstreams ?? []).filter((u) => u.endpoints.length > 1 || u.endpoints.some((e) => !e.healthy));
  if (pools.length) {
    const rows: string[][] = [['UPSTREAM', 'ENDPOINT', 'URL', 'WEIGHT', 'HEALTH']];
    for (const u of pools) {
      for (const e of u.endpoints) rows.push([u.name, e.endpoint, e.url, String(e.weight), e.healthy ? 'healthy' : color.red('out')]);
    }
    lines.push('', ...table(rows, (text, row) => (row === 0 ? color.bold(text) : text)));
  }
  if (status.dependencies) {
    const rows: string[][] = [['  DEPENDENCY', 'LIVE CALLS', 'DARK CALLS', 'RECORDINGS']];
    for (const [name, d] of Object.entries(status.dependencies)) {
      const dark = Object.entries(d.dark).map(([outcome, n]) => `${outcome} ${n}`).join(', ') || '0';
      rows.push([`  ${name}`, String(d.live), dark, String(d.recordings)]);
    }
    lines.push('', color.bold('egress'), ...table(rows, (text, row) => (row === 0 ? color.bold(text) : text)));
  }
  return lines;
}
