#!/usr/bin/env node
// An unrelated route's latency while another route mirrors heavy answers.
//
//   npm run bench:heavy-shadow                       3 rounds × 5 s per phase, 150 KB and 6 MB, 100 req/s
//   npm run bench:heavy-shadow -- --sizes 6mb --rounds 2 --seconds 3 --rate 50 [--warmup 2] [--workers 2] [--gatewayctl DIR] [--node-flags='--flag ... VAR=VALUE ...'] [--threads] [--bare] [--no-write]
//
// Per answer size: three upstream processes (test/helpers/big-answers.js:
// the heavy route's primary, its shadow answering JSON of the same size
// with one value per thousand items changed, and the light route's own
// upstream) and a gateway with three routes: light
// (small answers, never shadowed), plain (the heavy answers, unshadowed)
// and shadowed (the same, mirrored at 100% and compared with the default
// diff settings). Rounds alternate the phases "no shadow" and "shadow",
// each on a gateway process started for it (so the memory one phase left
// behind is not counted in the other's) and warmed up with --warmup
// seconds of the same load: a paced loader in its own process
// sends --rate req/s to the heavy route while this process probes /light
// every 10 ms, one request at a time. Reported: light p50/p95 per phase,
// their ratio (over all rounds, and round by round), the idle and peak
// RSS of the gateway processes, and the shadow's outcomes and comparisons.
// --threads adds the gateway's CPU per heavy request, by thread: the
// serving thread, the busiest other (the shadow thread, in the shadow
// phase) and the rest (V8's helper threads).
// --bare adds a third phase per round: the bare http-proxy-3 script
// (bench/bare-proxy.mjs) proxying the same heavy answers from the same
// paced loader, as the reference for the CPU and memory a heavy answer
// costs a proxy; it has no light route, so that phase is not probed.
//
// Read the no-shadow row first: when its light p95 is far above a few
// milliseconds, proxying the heavy answers alone already saturates the
// machine (6 MB at 100 req/s is 600 MB/s through the gateway, and as much
// again through the loader and the upstream), and the ratio then measures
// the competition for cores more than the shadow path; a lower --rate
// gives the ratio below saturation.
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { busyNeighbours, describeNeighbours, freePort, groupMembers, installCleanup, rssBytes, sampleRss, sleep, start, threadTicks } from './lib/procs.mjs';
import { startBareProxy, variantWords } from './lib/servers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string', default: '150kb,6mb' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    rate: { type: 'string', default: '100' },
    workers: { type: 'string' },
    gatewayctl: { type: 'string' },
    'node-flags': { type: 'string', default: '' },
    threads: { type: 'boolean', default: false },
    bare: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
  },
});
// The built checkout whose gateway runs (default: this one), to compare a build with another.
const gatewayRoot = opts.gatewayctl ? resolve(opts.gatewayctl) : root;
// Node flags for the gateway process only (some, like --single-threaded-gc, NODE_OPTIONS refuses),
// and VAR=VALUE words for its environment (MALLOC_ARENA_MAX=2, as the systemd unit sets it).
const { flags: gatewayNodeFlags, env: gatewayEnvWords } = variantWords(opts['node-flags']);
const gatewayEnv = Object.keys(gatewayEnvWords).length ? { ...process.env, ...gatewayEnvWords } : undefined;
const rounds = Number(opts.rounds);
const seconds = Number(opts.seconds);
const rate = Number(opts.rate);
const UNITS = { kb: 1024, mb: 1024 * 1024 };
const sizes = opts.sizes.split(',').map((s) => {
  const m = /^(\d+)(kb|mb)$/.exec(s.trim());
  if (!m) throw new Error(`--sizes: "${s}" is not like 150kb or 6mb`);
  return { label: s.trim(), bytes: Number(m[1]) * UNITS[m[2]] };
});

installCleanup();
const say = (m) => process.stderr.write(`${m}\n`);
const loadBefore = os.loadavg().map((x) => x.toFixed(2)).join(' ');
const neighbours = describeNeighbours(await busyNeighbours());
say(`heavy-shadow: load average ${loadBefore}; other processes using the CPU: ${neighbours}`);

function firstJsonLine(handle, predicate, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${handle.name}: no ready line in ${timeoutMs} ms\n${handle.tail.join('\n')}`)), timeoutMs);
    handle.onJson = (record) => {
      if (!predicate(record)) return;
      clearTimeout(timer);
      resolve(record);
    };
  });
}

function startJson(name, args, env) {
  const handle = start(name, process.execPath, args, {
    cwd: root,
    ...(env ? { env } : {}),
    onLine(line) {
      try {
        handle.onJson?.(JSON.parse(line));
      } catch {
        // not JSON
      }
    },
  });
  return handle;
}

function get(url, agent) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('probe timed out')));
    req.once('error', reject);
  });
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
};

async function metricsText(adminPort) {
  return new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${adminPort}/metrics`, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(text));
    }).once('error', reject);
  });
}

const sumMetric = (text, name, filter) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(name + '{') && filter.every((f) => l.includes(f)))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

async function runSize(size, tmp) {
  // Three upstream processes, as three services would be: the heavy route's
  // primary, its shadow (the version under test) and the light route's own,
  // so the light answers never wait behind the heavy ones in an upstream's
  // event loop. (Measured against one shared process: the ratios stayed
  // within the rounds' spread.)
  const upstreams = ['primary', 'shadow', 'light'].map((role) =>
    startJson(`big-answers ${size.label} (${role})`, [join(root, 'dist/test/helpers/big-answers.js'), '--bytes', String(size.bytes)]),
  );
  const [primaryPorts, shadowPorts, lightPorts] = await Promise.all(upstreams.map((u) => firstJsonLine(u, (r) => typeof r.primary === 'number')));
  const adminPort = await freePort();
  const dir = join(tmp, size.label);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    `listen: 127.0.0.1:0
admin: 127.0.0.1:${adminPort}
upstreams: { primary: http://127.0.0.1:${primaryPorts.primary}, shadow: http://127.0.0.1:${shadowPorts.shadow}, light: http://127.0.0.1:${lightPorts.primary} }
routes:
  - { name: light, match: { prefix: /light }, backends: [{ upstream: light }] }
  - { name: plain, match: { prefix: /plain }, backends: [{ upstream: primary }] }
  - { name: shadowed, match: { prefix: /shadowed }, backends: [{ upstream: primary }], shadow: [{ upstream: shadow }] }
`,
  );
  const startGateway = async (configFile) => {
    const gwArgs = [...gatewayNodeFlags, join(gatewayRoot, 'bin/gatewayctl'), 'serve', '-c', configFile, '--log-format', 'json'];
    if (opts.workers) gwArgs.push('--workers', opts.workers);
    const gateway = startJson('gatewayctl', gwArgs, gatewayEnv);
    const listening = await firstJsonLine(gateway, (r) => r.event === 'gateway.listening');
    await sleep(opts.workers ? 2000 : 300);
    return { pid: gateway.pid, port: listening.listen?.port, stop: (ms) => gateway.stop(ms) };
  };
  // The bare script proxies every path to the heavy route's primary.
  const startBare = async () => {
    const port = await freePort();
    const handle = await startBareProxy({ port, primaryPort: primaryPorts.primary });
    return { pid: handle.pid, port, stop: (ms) => handle.stop(ms) };
  };
  const newPhase = (route, bare = false) => ({ route, bare, latencies: [], roundP95: [], rss: 0, rssTotal: 0, idleRss: 0, load: [], ticks: { serving: 0, busiest: 0, rest: 0 } });
  const phases = { 'no shadow': newPhase('plain'), shadow: newPhase('shadowed'), ...(opts.bare ? { 'bare script': newPhase('plain', true) } : {}) };
  const order = Object.keys(phases);
  const shadow = { completed: 0, dropped: 0, compared: 0, compareDropped: 0 };
  for (let round = 0; round < rounds * order.length; round++) {
    const phase = phases[order[round % order.length]];
    // A process of its own per phase and round: what one phase left in memory is not counted in the other's.
    const gateway = phase.bare ? await startBare() : await startGateway(file);
    phase.idleRss = Math.max(phase.idleRss, ...groupMembers([gateway.pid]).map(rssBytes));
    // A new process (and its shadow threads) compiles its code under the first requests: that is not what a phase measures.
    const warm = startJson('paced-load', [join(root, 'bench/lib/paced-load.mjs'), '--url', `http://127.0.0.1:${gateway.port}/${phase.route}/export`, '--rate', String(rate), '--seconds', opts.warmup]);
    await firstJsonLine(warm, (r) => typeof r.sent === 'number', (Number(opts.warmup) + 60) * 1000);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    if (!phase.bare) for (let i = 0; i < 20; i++) await get(`http://127.0.0.1:${gateway.port}/light/item`, agent);
    const rss = sampleRss(groupMembers([gateway.pid]));
    const ticks0 = threadTicks(gateway.pid);
    const loader = startJson('paced-load', [join(root, 'bench/lib/paced-load.mjs'), '--url', `http://127.0.0.1:${gateway.port}/${phase.route}/export`, '--rate', String(rate), '--seconds', String(seconds)]);
    const loaded = firstJsonLine(loader, (r) => typeof r.sent === 'number', (seconds + 60) * 1000);
    const until = performance.now() + seconds * 1000;
    const latencies = [];
    while (!phase.bare && performance.now() < until) {
      const t0 = performance.now();
      await get(`http://127.0.0.1:${gateway.port}/light/item`, agent);
      latencies.push(performance.now() - t0);
      await sleep(10);
    }
    phase.latencies.push(...latencies);
    if (!phase.bare) phase.roundP95.push(percentile(latencies, 95));
    phase.load.push(await loaded);
    const spent = [...threadTicks(gateway.pid)].map(([thread, ticks]) => [thread, ticks - (ticks0.get(thread) ?? 0)]);
    const others = spent.filter(([thread]) => thread !== 0).map(([, ticks]) => ticks).sort((a, b) => b - a);
    phase.ticks.serving += spent.find(([thread]) => thread === 0)?.[1] ?? 0;
    phase.ticks.busiest += others[0] ?? 0;
    phase.ticks.rest += others.slice(1).reduce((sum, ticks) => sum + ticks, 0);
    const peak = rss.stop();
    phase.rss = Math.max(phase.rss, peak.peakOne);
    phase.rssTotal = Math.max(phase.rssTotal, peak.peakTotal);
    agent.destroy();
    if (phase.route === 'shadowed') {
      // Copies still in flight may finish: give them a moment before counting.
      await sleep(500);
      const metrics = await metricsText(adminPort);
      shadow.completed += sumMetric(metrics, 'gatewayctl_shadow_requests_total', ['route="shadowed"', 'outcome="completed"']);
      shadow.dropped += sumMetric(metrics, 'gatewayctl_shadow_requests_total', ['route="shadowed"', 'outcome="dropped"']);
      shadow.compared += sumMetric(metrics, 'gatewayctl_shadow_comparisons_total', ['route="shadowed"']);
      shadow.compareDropped += sumMetric(metrics, 'gatewayctl_shadow_compare_dropped_total', ['route="shadowed"']);
    }
    await gateway.stop(3000);
  }
  await Promise.all(upstreams.map((u) => u.stop(1000)));
  return { size: size.label, phases, shadow };
}

const mb = (b) => (b / 1048576).toFixed(0);
const tmp = mkdtempSync(join(os.tmpdir(), 'gatewayctl-heavy-shadow-'));
const results = [];
try {
  for (const size of sizes) {
    say(`heavy-shadow: ${size.label} answers at ${rate} req/s, ${rounds} rounds × ${seconds} s per phase`);
    results.push(await runSize(size, tmp));
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const lines = [
  `# Unrelated-route latency with heavy shadow answers`,
  '',
  `${new Date().toISOString()}; ${os.availableParallelism()} cores, load average before ${loadBefore}, after ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; other processes using the CPU before: ${neighbours}; node ${process.version}; ` +
    `${rate} req/s on the heavy route, ${rounds} rounds × ${seconds} s per phase (each after a ${opts.warmup} s warm-up on a new gateway process), interleaved${opts.bare ? '; a third phase per round: the bare http-proxy-3 script (bench/bare-proxy.mjs), not probed' : ''}${opts.workers ? `; serve --workers ${opts.workers}` : ''}${gatewayNodeFlags.length ? `; gateway run with node ${gatewayNodeFlags.join(' ')}` : ''}${gatewayEnv ? `; gateway environment ${Object.entries(gatewayEnvWords).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}.`,
  '',
  `| answers | phase | light p50 ms | light p95 ms | p95 ratio | heavy ok/sent | peak RSS per process MB (all) | idle RSS MB | shadow completed / dropped | compared / compare dropped |${opts.threads ? ' CPU µs per heavy request: serving / busiest other thread / rest |' : ''}`,
  `| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |${opts.threads ? ' --- |' : ''}`,
];
for (const r of results) {
  const base = percentile(r.phases['no shadow'].latencies, 95);
  for (const [name, phase] of Object.entries(r.phases)) {
    const p95 = percentile(phase.latencies, 95);
    const light = phase.bare ? '— | — | —' : `${percentile(phase.latencies, 50).toFixed(2)} | ${p95.toFixed(2)} | ${(p95 / base).toFixed(2)}×`;
    const ok = phase.load.reduce((s, l) => s + l.ok, 0);
    const sent = phase.load.reduce((s, l) => s + l.sent, 0);
    const shadowCols = name === 'shadow' ? `${r.shadow.completed} / ${r.shadow.dropped} | ${r.shadow.compared} / ${r.shadow.compareDropped}` : '— | —';
    // Ticks are 1/100 s.
    const perRequest = (ticks) => Math.round((ticks * 1e4) / Math.max(1, ok));
    const threadCols = opts.threads ? ` ${perRequest(phase.ticks.serving)} / ${perRequest(phase.ticks.busiest)} / ${perRequest(phase.ticks.rest)} |` : '';
    lines.push(
      `| ${r.size} | ${name} | ${light} | ${ok}/${sent} | ${mb(phase.rss)} (${mb(phase.rssTotal)}) | ${mb(phase.idleRss)} | ${shadowCols} |${threadCols}`,
    );
  }
}
// Each round runs both phases back to back: its own ratio shows how far one run's figure can move.
lines.push('');
for (const r of results) {
  const without = r.phases['no shadow'].roundP95;
  const ratios = r.phases.shadow.roundP95.map((p95, i) => `${(p95 / without[i]).toFixed(2)}×`);
  lines.push(`${r.size}: light p95 ratio per round (shadow / no shadow of the same round): ${ratios.join(', ')}`);
}
const report = lines.join('\n') + '\n';
process.stdout.write(report);
if (!opts['no-write']) {
  const out = join(root, 'bench/results', `${new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}-heavy-shadow.md`);
  writeFileSync(out, report);
  say(`wrote ${out}`);
}
