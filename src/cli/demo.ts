/**
 * `gatewayctl demo` (and `npm start`): the live demo in one terminal.
 * Shows the running config, then real differences as they happen (at most
 * one a second; the rest are counted), and every few seconds a summary.
 */
import type { Command } from 'commander';
import { formatAddress } from '../config/units.js';
import type { Snapshot } from '../config/compile.js';
import type { DiffEvent } from '../diff/types.js';
import { UsageError } from '../errors.js';
import { Logger } from '../log/logger.js';
import { renderEvent } from './diff.js';
import { EXIT_OK } from './exit-codes.js';
import { prettySink } from '../log/sinks.js';
import { terminalOutput } from './output.js';

interface DemoFlags {
  port: string;
  adminPort: string;
  rate: string;
  duration?: string;
}

export function registerDemo(program: Command, run: (action: () => Promise<number>) => void): void {
  program
    .command('demo')
    .description('live demo: two versions of a shop API, a canary, a dark launch and live diffs (Ctrl-C stops)')
    .option('--port <n>', 'gateway port', '8080')
    .option('--admin-port <n>', 'admin API port', '9901')
    .option('--rate <n>', 'requests per second of built-in traffic (0 for none)', '8')
    .option('--duration <seconds>', 'stop by itself after this many seconds')
    .action((flags: DemoFlags) => run(() => demoCommand(flags)));
}

function port(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) throw new UsageError(`${flag} must be a port number, not "${value}"`);
  return Number(value);
}

function describeRoutes(snapshot: Snapshot): string[] {
  return snapshot.routes.map((r) => {
    const m = r.config.match;
    const where = `${m.methods?.join(',') ?? '*'} ${m.prefix ?? '/'}`;
    const total = r.config.backends.reduce((s, b) => s + b.weight, 0);
    const split = r.config.backends.map((b) => `${b.upstream} ${Math.round((b.weight / total) * 100)}%`).join(' · ');
    const sticky = r.config.sticky ? ` (sticky by ${'header' in r.config.sticky ? r.config.sticky.header : `cookie ${r.config.sticky.cookie}`})` : '';
    const shadow = r.shadows.length
      ? `; shadow → ${r.shadows.map((s) => `${s.upstream.name} ${s.config.percent}%`).join(', ')}${r.baseline ? ` (baseline ${r.baseline.name})` : ''}`
      : '';
    return `  ${r.name.padEnd(9)} ${where.padEnd(20)} → ${split}${sticky}${shadow}`;
  });
}

export async function demoCommand(flags: DemoFlags): Promise<number> {
  const io = terminalOutput();
  const c = io.color;
  const rate = Number(flags.rate);
  if (!Number.isFinite(rate) || rate < 0 || rate > 1000) throw new UsageError('--rate must be 0 to 1000');
  // Only warnings and errors: the demo's own screen says what happens.
  const logger = new Logger(prettySink(process.stderr), 'warn');
  const { startDemo } = await import('../demo/run.js');
  const demo = await startDemo({ port: port(flags.port, '--port'), adminPort: port(flags.adminPort, '--admin-port'), logger, rate });
  const snapshot = demo.server.gateway.served();
  const admin = formatAddress(demo.server.gateway.addresses!.admin);

  io.out(c.bold('gatewayctl demo') + c.dim(`  (config: config/demo.yaml; three shop services on ${demo.shops.map((s) => s.port).join(', ')})`));
  io.out('');
  io.out(c.bold('Routes'));
  for (const line of describeRoutes(snapshot)) io.out(line);
  io.out('');
  io.out(c.bold('Web console') + `  ${demo.consoleUrl}  ` + c.dim('(open it in a browser: canary share, findings with example pairs, the release)'));
  io.out('');
  io.out(c.bold('Try in another terminal'));
  io.out(`  curl -s ${demo.url}/api/products/1 -H 'x-user-id: alice'     ${c.dim('# canary: the same user always gets the same version')}`);
  io.out(`  npx gatewayctl diff --admin http://${admin}              ${c.dim('# follow the live diffs')}`);
  io.out(`  npx gatewayctl diff summary --admin http://${admin}      ${c.dim('# which paths differ, how often, what is noise')}`);
  io.out(`  npx gatewayctl status --admin http://${admin}            ${c.dim('# routes, weights, live rates')}`);
  io.out(`  npx gatewayctl release status --admin http://${admin}    ${c.dim('# the product pages release: step, gates')}`);
  io.out(`  curl -s http://${admin}/metrics | grep gatewayctl_       ${c.dim('# Prometheus metrics')}`);
  io.out(`  curl -s ${demo.url}/api/checkout -d '{"product":"grinder"}'  ${c.dim('# a checkout: v1 charges 10.00; v2 would charge 12.00')}`);
  io.out(`  npx gatewayctl record export payments --admin http://${admin}  ${c.dim('# the live payment calls, as a Hoverfly simulation')}`);
  io.out('');
  io.out(c.bold('Live differences between v1 (users see it) and v2 (dark)') + c.dim('  — at most one a second; Ctrl-C stops'));

  // The first seconds teach the engine which paths the baseline shows as
  // noise (a millisecond timestamp can match by chance before that).
  io.out(c.dim('  (learning what is noise from the baseline for a few seconds...)'));
  const learningUntil = Date.now() + 3000;
  let lastShown = 0;
  let skipped = 0;
  const unsubscribe = demo.server.diffs.store.subscribe({
    filter: {},
    deliver(event: DiffEvent) {
      const now = Date.now();
      if (now < learningUntil) return;
      if (now - lastShown < 1000) {
        skipped++;
        return;
      }
      lastShown = now;
      for (const line of renderEvent(event, c)) io.out(line);
    },
  });

  let previous = { sent: 0, v1: 0, v2: 0 };
  const summary = setInterval(() => {
    const t = demo.traffic?.stats;
    const s = demo.server.diffs.store.summary({});
    const shadows = s.routes.flatMap((r) => r.shadows);
    const compared = shadows.reduce((n, x) => n + x.compared, 0);
    const differing = shadows.reduce((n, x) => n + x.differing, 0);
    const masked = shadows.reduce((n, x) => n + x.noiseMasked, 0);
    const v1 = t?.byUpstreamVersion['v1'] ?? 0;
    const v2 = t?.byUpstreamVersion['v2'] ?? 0;
    const canary = v1 + v2 - previous.v1 - previous.v2 > 0 ? (v2 - previous.v2) / (v1 + v2 - previous.v1 - previous.v2) : 0;
    const regressions = shadows
      .flatMap((x) =>
        x.paths
          .filter((p) => p.verdict === 'regression')
          .map((p) => (p.kind === 'body' ? p.path || 'body' : p.kind === 'header' ? `header ${p.path}` : p.kind === 'call' ? `call ${p.path}` : p.kind)),
      )
      .slice(0, 5);
    const checkoutShadow = s.routes.find((r) => r.route === 'checkout')?.shadows[0];
    io.out(
      c.cyan(
        `── ${t ? `${t.sent} requests (${t.sent - previous.sent} in 5s, ${t.failed} 5xx)` : 'no built-in traffic'} · ` +
          `canary share of product pages ${(canary * 100).toFixed(0)}% · ` +
          `shadow: ${compared} compared, ${compared ? ((differing / compared) * 100).toFixed(0) : 0}% differ, ${masked} noise masked` +
          (skipped ? ` · ${skipped} more diffs not shown` : '') +
          (t
            ? `\n   checkout: ${t.checkouts} checkouts, the payment provider received ${demo.charges()} charges` +
              ` (the dark v2 charged nobody); v2 would have charged a different amount on ${checkoutShadow?.kinds.call ?? 0} of ${checkoutShadow?.compared ?? 0}`
            : '') +
          (regressions.length ? `\n   real differences: ${regressions.join(', ')}` : ''),
      ),
    );
    skipped = 0;
    previous = { sent: t?.sent ?? 0, v1, v2 };
  }, 5000);

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (flags.duration) setTimeout(stop, Number(flags.duration) * 1000).unref();
  });
  clearInterval(summary);
  unsubscribe();
  io.out(c.dim('\nstopping: closing the gateway and the shop services'));
  await demo.close();
  return EXIT_OK;
}
