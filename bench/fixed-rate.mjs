#!/usr/bin/env node
// CPU per request and peak RSS of gatewayctl at a fixed request rate, builds
// or node flags side by side in interleaved rounds.
//
//   npm run build && node bench/fixed-rate.mjs --shadow fast --rate 2000 --seconds 5 --rounds 3 \
//       --variant before=../base-checkout --node-variant semi8=--max-semi-space-size=8 [--threads] [--bare]
//
// wrk (bench/run.mjs) saturates the machine: req/s then says as much about
// whoever else runs on its cores as about the gateway, and a busier gateway
// batches more, so its cost per request falls. At a fixed rate below
// saturation the CPU time a request costs is steadier, and a flag that only
// moves memory can be told from one that also costs CPU.
//
// Upstreams as in bench/run.mjs (nginx answering 300 bytes; the shadow's
// differs in one field; `--shadow slow` answers after 500 ms). The paced
// loader (bench/lib/paced-load.mjs) runs in its own process; a 3 s warm-up at
// the same rate precedes each measured run. --threads prints the CPU of each
// thread of the gateway process, in µs per request, by thread number within
// the process (0 is the serving thread; V8's helper threads and the shadow
// threads follow).
//
// --new-connections makes the loader open a connection per request (clients
// that do not keep alive); by default it keeps them alive.
//
// --bare adds the bare http-proxy-3 script (bench/bare-proxy.mjs, with an
// undici shadow when --shadow is not none) as a reference variant, run by the
// same Node.
//
// --gc runs each gateway under --trace-gc-nvp and adds, for its serving
// thread (the isolate that allocated most) in the measured window: what
// its scavenges promoted, their count and pauses, its mark-compacts, and
// the users' p50 and p99. Promotion is what made a shadow cost users
// latency below saturation (bench/README.md, "Young-generation survival").
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { busyNeighbours, cpuSeconds, describeNeighbours, freePort, groupMembers, installCleanup, killAll, sampleRss, start, threadTicks } from './lib/procs.mjs';
import { startBareProxy, startGateway, startSlowShadow, startUpstreams, variantWords } from './lib/servers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    shadow: { type: 'string', default: 'fast' },
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    variant: { type: 'string', multiple: true },
    'node-variant': { type: 'string', multiple: true },
    threads: { type: 'boolean', default: false },
    gc: { type: 'boolean', default: false },
    bare: { type: 'boolean', default: false },
    'new-connections': { type: 'boolean', default: false },
  },
});
if (!['none', 'fast', 'slow'].includes(opts.shadow)) throw new Error('--shadow is none, fast or slow');

const split = (spec, what) => {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new Error(`${what} wants NAME=VALUE, not "${spec}"`);
  return [spec.slice(0, eq), spec.slice(eq + 1)];
};
const variants = [
  { name: 'this', root, args: [] },
  ...(opts.variant ?? []).map((s) => split(s, '--variant')).map(([name, dir]) => ({ name, root: resolve(dir), args: [] })),
  ...(opts['node-variant'] ?? []).map((s) => split(s, '--node-variant')).map(([name, text]) => {
    const { flags, env } = variantWords(text);
    return { name, root, args: flags, env };
  }),
  ...(opts.bare ? [{ name: 'bare', root, args: [], bare: true }] : []),
];

/** The serving thread's collections in --trace-gc-nvp lines: the isolate that allocated most. */
function servingThreadGc(lines) {
  const byIsolate = new Map();
  for (const line of lines) {
    // [pid:isolate] on Node 20, [pid:isolate:thread] on Node 24.
    const isolate = /^\[\d+:(0x[0-9a-f]+)(?::\d+)?\]/.exec(line)?.[1];
    const kind = / gc=(\S+)/.exec(line)?.[1];
    if (!isolate || !kind) continue;
    const field = (name) => Number(new RegExp(` ${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
    const gc = byIsolate.get(isolate) ?? { allocated: 0, promoted: 0, scavenges: 0, scavengeMs: 0, markCompacts: 0 };
    gc.allocated += field('allocated');
    if (kind === 's') {
      gc.scavenges++;
      gc.scavengeMs += field('pause');
      gc.promoted += field('promoted');
    } else if (kind === 'mc' || kind === 'mmc') gc.markCompacts++;
    byIsolate.set(isolate, gc);
  }
  return [...byIsolate.values()].sort((a, b) => b.allocated - a.allocated)[0];
}

function load(port, seconds) {
  const url = `http://127.0.0.1:${port}/api/items/42?view=full`;
  return new Promise((done, fail) => {
    const handle = start('paced-load', process.execPath, [join(root, 'bench/lib/paced-load.mjs'), '--url', url, '--rate', opts.rate, '--seconds', String(seconds), ...(opts['new-connections'] ? ['--new-connections'] : [])], {
      onLine(line) {
        try {
          const result = JSON.parse(line);
          if (typeof result.sent === 'number') done(result);
        } catch {
          // not the result line
        }
      },
    });
    void handle.exited.then(({ code }) => code !== 0 && fail(new Error(`the loader exited with ${code}`)));
  });
}

installCleanup();
const neighbours = describeNeighbours(await busyNeighbours());
const tmp = mkdtempSync(join(os.tmpdir(), 'gatewayctl-fixed-rate-'));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const results = new Map(variants.map((v) => [v.name, []]));
try {
  const primaryPort = await freePort();
  const shadowPort = await freePort();
  await startUpstreams(join(tmp, 'upstreams'), { primaryPort, shadowPort, workers: 2 });
  let shadow = opts.shadow === 'fast' ? shadowPort : undefined;
  if (opts.shadow === 'slow') {
    shadow = await freePort();
    await startSlowShadow({ port: shadow, delayMs: 500 });
  }
  const rounds = Number(opts.rounds);
  for (let round = 0; round < rounds; round++) {
    // Rotated each round, so drift on a shared machine hits every variant alike.
    const order = variants.map((_, i) => variants[(i + round) % variants.length]);
    for (const v of order) {
      const gcLines = [];
      let gcWindow = false;
      const setup = {
        port: await freePort(),
        primaryPort,
        shadowPort: shadow,
        nodeArgs: opts.gc ? [...v.args, '--trace-gc-nvp'] : v.args,
        onOutput: (line) => gcWindow && line.startsWith('[') && gcLines.push(line),
      };
      const gateway = v.bare
        ? Object.assign(await startBareProxy(setup), { port: setup.port })
        : await startGateway(join(tmp, `${v.name}-${round}`), { ...setup, root: v.root, adminPort: await freePort(), ...(v.env ? { env: v.env } : {}) });
      await load(gateway.port, 3);
      gcWindow = true;
      const pids = groupMembers([gateway.pid]);
      const rss = sampleRss(pids);
      const ticks0 = threadTicks(gateway.pid);
      const cpu0 = cpuSeconds(pids);
      const got = await load(gateway.port, Number(opts.seconds));
      gcWindow = false;
      const cpu = cpuSeconds(pids) - cpu0;
      const ticks1 = threadTicks(gateway.pid);
      const peak = rss.stop();
      const row = { cpuUs: Math.round((cpu * 1e6) / got.ok), rssMb: Math.round(peak.peakTotal / 1048576), ok: got.ok, failed: got.failed, p50: got.p50, p99: got.p99, gc: opts.gc ? servingThreadGc(gcLines) : undefined };
      results.get(v.name).push(row);
      const perThread = opts.threads
        ? ' threads ' + [...ticks1].map(([t, n]) => [t, Math.round(((n - (ticks0.get(t) ?? 0)) * 1e6) / 100 / got.ok)]).filter(([, us]) => us > 0).map(([t, us]) => `${t}:${us}`).join(' ')
        : '';
      const gc = row.gc
        ? `  user p50 ${row.p50} p99 ${row.p99} ms  serving thread: promoted ${(row.gc.promoted / 1048576).toFixed(1)} MB, scavenges ${row.gc.scavenges} (${row.gc.scavengeMs.toFixed(0)} ms), mark-compacts ${row.gc.markCompacts}`
        : '';
      process.stderr.write(`round ${round + 1}/${rounds} ${v.name.padEnd(10)} ${row.cpuUs} µs/req  rss ${row.rssMb} MB  ok ${row.ok} failed ${row.failed}${perThread}${gc}\n`);
      await gateway.stop(3000);
    }
  }
} finally {
  killAll();
  rmSync(tmp, { recursive: true, force: true });
}
const base = median(results.get('this').map((r) => r.cpuUs));
console.log(`shadow ${opts.shadow}, ${opts.rate} req/s, ${opts.rounds} rounds × ${opts.seconds} s; node ${process.version}; ${os.availableParallelism()} cores; other processes using the CPU before: ${neighbours}`);
const gcHead = opts.gc ? ' user p99 ms | promoted MB | mark-compacts |' : '';
console.log(`| variant | CPU µs/req (median) | vs this | rounds | peak RSS MB |${gcHead}`);
console.log(`| --- | ---: | ---: | --- | --- |${opts.gc ? ' --- | --- | --- |' : ''}`);
for (const v of variants) {
  const rows = results.get(v.name);
  const cpu = median(rows.map((r) => r.cpuUs));
  const gcCells = opts.gc
    ? ` ${rows.map((r) => r.p99).join(', ')} | ${rows.map((r) => (r.gc ? (r.gc.promoted / 1048576).toFixed(1) : '?')).join(', ')} | ${rows.map((r) => r.gc?.markCompacts ?? '?').join(', ')} |`
    : '';
  console.log(`| ${v.name}${v.args.length ? ` (${v.args.join(' ')})` : ''} | ${cpu} | ${(cpu / base).toFixed(2)}× | ${rows.map((r) => r.cpuUs).join(', ')} | ${rows.map((r) => r.rssMb).join(', ')} |${gcCells}`);
}
process.exit(0);
