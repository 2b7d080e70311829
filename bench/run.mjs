#!/usr/bin/env node
// gatewayctl against nginx and a bare Node proxy, in one run, on loopback.
//
//   npm run bench                      full run (5 rounds × 10 s per setup)
//   npm run bench -- --quick           under 2 minutes (3 rounds × 2 s)
//   npm run bench -- --only gw,bare --rounds 2 --duration 5
//   npm run bench -- --profile         node --cpu-prof on bare, gw, gw-shadow, with summaries
//
// Installs nginx and wrk with apt-get when missing, starts the upstreams,
// runs every setup in interleaved rounds and writes bench/results/.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { report as profileReport } from './profile-summary.mjs';
import {
  busyNeighbours,
  commandExists,
  cpuSeconds,
  describeNeighbours,
  freePort,
  groupMembers,
  installCleanup,
  onCleanup,
  sampleRss,
  sleep,
} from './lib/procs.mjs';
import { checkTargets, markdown, summarize } from './lib/report.mjs';
import {
  NotSupportedError,
  shadowCounters,
  startBareProxy,
  startGateway,
  startNginxProxy,
  startSlowShadow,
  startUpstreams,
  variantWords,
} from './lib/servers.mjs';
import { wrk } from './lib/wrk.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
/** The gatewayctl checkout under test: this one, or --gatewayctl DIR. */
let gatewayRoot = root;
const PATH = '/api/items/42?view=full';

// ---- options ------------------------------------------------------------------

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    only: { type: 'string' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '1' },
    'nginx-workers': { type: 'string', default: '2' },
    'upstream-workers': { type: 'string', default: '2' },
    'shadow-delay': { type: 'string', default: '500' },
    'no-install': { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    top: { type: 'string', default: '25' },
    callers: { type: 'string', default: '2' },
    'keep-tmp': { type: 'boolean', default: false },
    gatewayctl: { type: 'string' },
    variant: { type: 'string', multiple: true },
    'node-variant': { type: 'string', multiple: true },
    tag: { type: 'string' },
    render: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const quick = opts.quick;
const params = {
  mode: quick ? 'quick' : 'full',
  rounds: Number(opts.rounds ?? (quick ? 3 : 5)),
  duration: Number(opts.duration ?? (quick ? 2 : 10)),
  warmup: Number(opts.warmup ?? (quick ? 2 : 3)),
  connections: Number(opts.connections),
  threads: Number(opts.threads),
  nginxWorkers: Number(opts['nginx-workers']),
  upstreamWorkers: Number(opts['upstream-workers']),
  shadowDelayMs: Number(opts['shadow-delay']),
};
// nginx and the direct upstream have no JIT to warm: a third of it.
params.nginxWarmup = Math.floor(params.warmup / 3);
for (const [k, v] of Object.entries(params)) {
  if (typeof v === 'number' && !(Number.isInteger(v) && v >= 0)) fail(`--${k} must be a whole number, not ${v}`, 2);
}
if (params.duration < 1 || params.rounds < 1) fail('--duration and --rounds must be at least 1', 2);

// ---- setups -----------------------------------------------------------------

/**
 * The setups, as data: what kind of proxy (none: wrk hits the primary), which
 * shadow it copies to (fast nginx, or the 500 ms Node server), how many
 * gatewayctl workers. `node` marks the single-process Node setups --profile takes.
 */
const SETUPS = [
  { name: 'direct', label: 'direct to the upstream (nginx, static 300 B)', kind: 'direct' },
  { name: 'nginx', label: 'nginx proxy, upstream keep-alive', kind: 'nginx' },
  { name: 'nginx-mirror', label: 'nginx + mirror 100% (shadow returns a body)', kind: 'nginx', shadow: 'fast' },
  { name: 'nginx-mirror-slow', label: 'nginx + mirror 100%, shadow answers after 500 ms', kind: 'nginx', shadow: 'slow' },
  { name: 'bare', label: 'bare Node http-proxy-3, keep-alive agent', kind: 'bare', node: true },
  { name: 'bare-shadow', label: 'bare Node http-proxy-3 + undici shadow copy 100%', kind: 'bare', shadow: 'fast', node: true },
  { name: 'gw', label: 'gatewayctl, no shadow', kind: 'gw', node: true },
  { name: 'gw-shadow', label: 'gatewayctl, 100% shadow + comparison', kind: 'gw', shadow: 'fast', node: true },
  { name: 'gw-accesslog', label: 'gatewayctl, JSON access log to a file', kind: 'gw', accessLog: true, node: true },
  { name: 'gw-3endpoints', label: 'gatewayctl, upstream of 3 endpoints (least outstanding)', kind: 'gw', endpoints: 3, node: true },
  { name: 'gw-shadow-slow', label: 'gatewayctl, 100% shadow answering after 500 ms', kind: 'gw', shadow: 'slow', node: true },
  { name: 'gw-w2-shadow', label: 'gatewayctl --workers 2, 100% shadow + comparison', kind: 'gw', shadow: 'fast', workers: 2 },
];

/**
 * Starts a setup's process under test on port: {handle, port, adminPort}.
 * `direct` starts nothing (handle undefined: the primary is measured).
 * extra.nodeArgs go to node (--cpu-prof).
 */
async function startSetup(setup, ctx, dir, port, extra = {}) {
  const shadowPort = setup.shadow === 'fast' ? ctx.shadowPort : setup.shadow === 'slow' ? ctx.slowPort : undefined;
  const primaryPort = ctx.primaryPort;
  switch (setup.kind) {
    case 'direct':
      return { handle: undefined, port: primaryPort };
    case 'nginx': {
      const handle = await startNginxProxy(dir, { port, primaryPort, mirrorPort: shadowPort, workers: params.nginxWorkers });
      return { handle, port };
    }
    case 'bare':
      return { handle: await startBareProxy({ port, primaryPort, shadowPort, ...extra }), port };
    case 'gw': {
      const adminPort = await freePort();
      const g = await startGateway(dir, {
        root: setup.root ?? gatewayRoot,
        port,
        adminPort,
        primaryPort,
        shadowPort,
        workers: setup.workers,
        accessLog: setup.accessLog,
        endpoints: setup.endpoints,
        ...extra,
        nodeArgs: [...(setup.nodeArgs ?? []), ...(extra.nodeArgs ?? [])],
        ...(setup.env ? { env: setup.env } : {}),
      });
      return { handle: g, port: g.port, adminPort: g.adminPort };
    }
    default:
      throw new Error(`unknown setup kind ${setup.kind}`);
  }
}

function setupNames() {
  return SETUPS.map((s) => s.name).join(', ');
}

if (opts.help) {
  process.stdout.write(`usage: npm run bench -- [options]
  --quick              3 rounds × 2 s (2 s warm-up for Node setups, none for nginx): under 2 minutes
  --rounds N           rounds (default 5; quick 3)
  --duration S         measured seconds per setup and round (default 10; quick 2)
  --warmup S           warm-up seconds before each Node setup's measurement, a third of it
                       for nginx and direct (default 3; quick 2)
  --only A,B           only these setups (names below)
  --connections N      wrk connections (default 50); --threads N wrk threads (default 1)
  --nginx-workers N    worker_processes of the nginx proxies (default 2)
  --upstream-workers N worker_processes of the upstream nginx (default 2)
  --shadow-delay MS    the slow shadow's delay (default 500)
  --profile            instead: node --cpu-prof on the Node setups (default bare, gw, gw-shadow;
                       or --only), one run each, and a summary of each profile
  --top N              functions per profile summary (default 25)
  --callers N          caller chains shown under each function (default 2)
  --tag WORD           add WORD to the result file names (e.g. ablation)
  --render FILE.json   print (and rewrite FILE.md) the report of an earlier run
  --strict             exit 1 when a target fails
  --no-install         fail instead of installing nginx and wrk
  --no-write           print only; write nothing under bench/results
  --keep-tmp           keep the temp dir (configs, nginx logs)
  --gatewayctl DIR     the gatewayctl checkout to run (built; default: this one)
  --variant NAME=DIR   also run each selected gatewayctl setup from another built
                       checkout, as rows SETUP@NAME in the same interleaved rounds
                       (repeatable: compare a branch, or a patched build, in one run)
  --node-variant NAME=FLAGS
                       also run each selected gatewayctl setup from this checkout
                       under node FLAGS (e.g. "--max-semi-space-size=4"), as rows
                       SETUP@NAME: the price of a V8 or Node flag, in one run;
                       VAR=VALUE words set environment variables instead
                       (e.g. "MALLOC_ARENA_MAX=2")
setups: ${setupNames()}
`);
  process.exit(0);
}

let setups = SETUPS;
if (opts.only) {
  const names = opts.only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !SETUPS.some((s) => s.name === n));
  if (unknown.length) fail(`unknown setup ${unknown.join(', ')}; setups: ${setupNames()}`, 2);
  setups = SETUPS.filter((s) => names.includes(s.name));
}
const baseSetups = setups;
for (const spec of opts.variant ?? []) {
  const eq = spec.indexOf('=');
  if (eq <= 0) fail(`--variant wants NAME=DIR, not "${spec}"`, 2);
  const [name, dir] = [spec.slice(0, eq), resolve(spec.slice(eq + 1))];
  if (!existsSync(join(dir, 'dist/src/cli/main.js'))) fail(`--variant ${name}: no built gatewayctl in ${dir}`, 2);
  const extra = baseSetups
    .filter((s) => s.kind === 'gw')
    .map((s) => ({ ...s, name: `${s.name}@${name}`, label: `${s.label} [${name}]`, root: dir }));
  setups = [...setups, ...extra];
}
for (const spec of opts['node-variant'] ?? []) {
  const eq = spec.indexOf('=');
  if (eq <= 0) fail(`--node-variant wants NAME=FLAGS, not "${spec}"`, 2);
  const name = spec.slice(0, eq);
  const { words, flags, env } = variantWords(spec.slice(eq + 1));
  const extra = baseSetups
    .filter((s) => s.kind === 'gw')
    .map((s) => ({ ...s, name: `${s.name}@${name}`, label: `${s.label} [${name}: ${words.join(' ')}]`, nodeArgs: flags, env }));
  setups = [...setups, ...extra];
}

// ---- helpers --------------------------------------------------------------------

function fail(message, code = 1) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(code);
}

function say(message) {
  process.stderr.write(`${message}\n`);
}

function nginxPath() {
  if (commandExists('nginx')) return true;
  // Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
  if (spawnSync('/usr/sbin/nginx', ['-v']).status === 0) {
    process.env.PATH = `${process.env.PATH}:/usr/sbin`;
    return true;
  }
  return false;
}

/** nginx and wrk: present, or installed with apt-get (loudly), or a clear failure. */
function ensureTools() {
  const missing = [];
  if (!nginxPath()) missing.push('nginx');
  if (!commandExists('wrk')) missing.push('wrk');
  if (missing.length === 0) return;
  const how = `apt-get install -y ${missing.join(' ')}`;
  if (opts['no-install']) fail(`missing ${missing.join(' and ')}; install with: ${how}`);
  if (!commandExists('apt-get')) {
    fail(`missing ${missing.join(' and ')} and no apt-get here: install ${missing.length > 1 ? 'them' : 'it'} and run again`);
  }
  const asRoot = process.getuid?.() === 0;
  const sudo = asRoot ? [] : commandExists('sudo') ? ['sudo', '-n'] : undefined;
  if (!sudo) fail(`missing ${missing.join(' and ')}; installing needs root: run "sudo ${how}" and run again`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['apt-get', 'update'], ['apt-get', 'install', '-y', '--no-install-recommends', ...missing]]) {
    const command = [...sudo, ...args];
    say(`bench: missing ${missing.join(', ')}: running ${command.join(' ')}`);
    const result = spawnSync(command[0], command.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (result.status !== 0) fail(`"${command.join(' ')}" failed (exit ${result.status ?? result.signal}); install ${missing.join(' and ')} by hand`);
  }
  if (!nginxPath() || !commandExists('wrk')) fail(`${missing.join(' and ')} still not found after apt-get install`);
}

function tryOutput(command, args) {
  try {
    const r = spawnSync(command, args, { encoding: 'utf8', cwd: gatewayRoot });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  } catch {
    return '';
  }
}

function machineInfo() {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const commit = tryOutput('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = tryOutput('git', ['status', '--porcelain', '--', 'src', 'bin', 'package.json']) ? ' (with uncommitted changes)' : '';
  const where = gatewayRoot === root ? '' : ` at ${gatewayRoot}`;
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: cpu.trim(),
    memGb: Math.round(os.totalmem() / 1024 ** 3),
    kernel: os.release(),
    node: process.version,
    nginx: /nginx\/(\S+)/.exec(tryOutput('nginx', ['-v']))?.[1] ?? 'unknown',
    wrk: tryOutput('wrk', ['-v']).split('\n')[0].replace(/ Copyright.*$/, ''),
    gatewayctl: `${commit || 'unknown commit'}${dirty}${where}`,
    loadBefore: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

function stamp() {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

// ---- one measured run -------------------------------------------------------------

/**
 * Warm-up seconds before a setup's measurement: the Node setups need their
 * JIT and pools warm; nginx (and the direct upstream) only connections, so a
 * third of it (none in --quick) is enough.
 */
function warmupFor(setup) {
  return setup.kind === 'bare' || setup.kind === 'gw' ? params.warmup : params.nginxWarmup;
}

/**
 * Starts a setup, warms it up, measures one wrk run with CPU and RSS, stops
 * it. Returns the round's figures, {unsupported}, or {error}.
 */
async function measure(setup, ctx, round) {
  const dir = join(ctx.tmp, `${setup.name}-${round}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  let started;
  try {
    started = await startSetup(setup, ctx, dir, await freePort());
  } catch (err) {
    if (err instanceof NotSupportedError) return { unsupported: err.message.split('\n')[0], detail: err.message };
    return { error: err.message };
  }
  const { handle, port } = started;
  const sutGroup = handle ? handle.pid : ctx.upstreams.pid;
  const serverGroups = [...new Set([sutGroup, ctx.upstreams.pid, ctx.slow.pid])];
  const url = `http://127.0.0.1:${port}${PATH}`;
  const rss = sampleRss(groupMembers([sutGroup]));
  try {
    const warmup = warmupFor(setup);
    if (warmup > 0) await wrk(url, { seconds: warmup, threads: params.threads, connections: params.connections });
    const sut = groupMembers([sutGroup]);
    const servers = groupMembers(serverGroups);
    rss.setPids(sut);
    const cpu0 = cpuSeconds(sut);
    const all0 = cpuSeconds(servers);
    const result = await wrk(url, { seconds: params.duration, threads: params.threads, connections: params.connections });
    const cpu1 = cpuSeconds(sut);
    const all1 = cpuSeconds(servers);
    const { peakTotal, peakOne } = rss.stop();
    const requests = Math.max(1, result.requests);
    const errors = Object.values(result.errors).reduce((a, b) => a + b, 0);
    const figures = {
      rps: result.rps,
      p50: result.p50,
      p90: result.p90,
      p99: result.p99,
      requests: result.requests,
      errors,
      errorDetail: result.errors,
      peakRss: peakTotal,
      peakRssOne: peakOne,
      cpuUsPerReq: ((cpu1 - cpu0) * 1e6) / requests,
      cpuAllUsPerReq: ((all1 - all0) * 1e6) / requests,
      processes: sut.length,
    };
    if (started.adminPort && !setup.workers) figures.shadow = await shadowCounters(started.adminPort);
    return figures;
  } catch (err) {
    rss.stop();
    return { error: err.message };
  } finally {
    if (handle) await handle.stop(3000);
  }
}

function progress(round, setup, r) {
  const head = `round ${round + 1}/${params.rounds}  ${setup.name.padEnd(18)}`;
  if (r.unsupported) return `${head} n/a (${r.unsupported})`;
  if (r.error) return `${head} error: ${r.error.split('\n')[0]}`;
  const shadow = r.shadow && Object.keys(r.shadow).length ? `  shadow ${JSON.stringify(r.shadow)}` : '';
  return (
    `${head} ${Math.round(r.rps).toString().padStart(7)} req/s  p50 ${r.p50?.toFixed(2)} ms  p99 ${r.p99?.toFixed(2)} ms  ` +
    `rss ${(r.peakRss / 1048576).toFixed(0)} MB  cpu ${r.cpuUsPerReq.toFixed(0)} µs/req` +
    (r.errors ? `  errors ${r.errors}` : '') +
    shadow
  );
}

// ---- modes --------------------------------------------------------------------------

/** Medians, targets and the Markdown report from a run's rounds. */
function render({ title, machine, params, setups, rounds }) {
  const rows = summarize(setups, rounds);
  const checks = checkTargets(rows, rounds);
  return { text: markdown({ title, machine, params, setups, rows, checks, rounds }), rows, checks };
}

/** --render FILE.json: the report of an earlier run again, with this version's report code. */
function rerender(file) {
  const run = JSON.parse(readFileSync(file, 'utf8'));
  const setupsOfRun = run.setups.map((name) => ({
    name,
    label: run.labels?.[name] ?? SETUPS.find((s) => s.name === name)?.label ?? name,
  }));
  const title = run.title ?? `gatewayctl benchmark, ${run.params.mode} run (${basename(file, '.json')})`;
  const { text } = render({ title, machine: run.machine, params: run.params, setups: setupsOfRun, rounds: run.rounds });
  process.stdout.write(text);
  if (!opts['no-write']) {
    writeFileSync(file.replace(/\.json$/, '.md'), text);
    say(`bench: wrote ${file.replace(/\.json$/, '.md')}`);
  }
}

async function benchmark(ctx, machine) {
  const started = Date.now();
  const rounds = [];
  const unsupported = new Map();
  for (let round = 0; round < params.rounds; round++) {
    const results = {};
    // Rotate the order each round so drift and warm caches hit every setup alike.
    const order = setups.map((_, i) => setups[(i + round) % setups.length]);
    for (const setup of order) {
      const r = unsupported.has(setup.name) ? unsupported.get(setup.name) : await measure(setup, ctx, round);
      if (r.unsupported) unsupported.set(setup.name, r);
      results[setup.name] = r;
      if (r.detail && !unsupported.get(setup.name)?.reported) {
        say(`  ${r.detail.replace(/\n/g, '\n  ')}`);
        r.reported = true;
      }
      say(progress(round, setup, r));
    }
    rounds.push(results);
  }
  machine.loadAfter = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const title = `gatewayctl benchmark, ${params.mode} run, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const { text, rows, checks } = render({ title, machine, params, setups, rounds });
  process.stdout.write(`\n${text}`);
  say(`bench: ${((Date.now() - started) / 1000).toFixed(0)} s of measurement`);
  if (!opts['no-write']) {
    const dir = join(root, 'bench/results');
    mkdirSync(dir, { recursive: true });
    const base = join(dir, `${stamp()}-${params.mode}${opts.tag ? `-${opts.tag.replace(/[^\w.-]/g, '_')}` : ''}`);
    writeFileSync(`${base}.md`, text);
    const labels = Object.fromEntries(setups.map((s) => [s.name, s.label]));
    const json = { title, machine, params, setups: setups.map((s) => s.name), labels, rows, checks, rounds };
    writeFileSync(`${base}.json`, JSON.stringify(json, null, 2) + '\n');
    say(`bench: wrote ${base}.md and .json`);
  }
  if (opts.strict && checks.some((c) => c.verdict === 'FAIL')) process.exitCode = 1;
}

/** node --cpu-prof on the Node setups under load (gatewayctl without and with a 100% shadow, and the bare floor). */
async function profile(ctx, machine) {
  const outDir = join(root, 'bench/results/profiles');
  mkdirSync(outDir, { recursive: true });
  const at = stamp();
  const sections = [
    `# gatewayctl CPU profiles, ${at}`,
    '',
    `gatewayctl ${machine.gatewayctl}, node ${machine.node}, ${machine.nproc} cores (${machine.cpu}). ` +
      `Load: wrk -t${params.threads} -c${params.connections}, ${params.warmup}s warm-up then ${params.duration}s, inside one profile.`,
    '',
  ];
  const chosen = opts.only ? setups : setups.filter((s) => ['bare', 'gw', 'gw-shadow'].includes(s.name.split('@')[0]));
  for (const setup of chosen) {
    const name = setup.name;
    if (!setup.node) fail(`--profile takes single-process Node setups, not ${name}`, 2);
    const file = `${at}-${name}.cpuprofile`;
    const dir = join(ctx.tmp, `profile-${name}`);
    mkdirSync(dir, { recursive: true });
    const { handle, port } = await startSetup(setup, ctx, dir, await freePort(), {
      nodeArgs: ['--cpu-prof', '--cpu-prof-dir', outDir, '--cpu-prof-name', file],
    });
    const url = `http://127.0.0.1:${port}${PATH}`;
    let result;
    let requests = 0;
    try {
      if (params.warmup > 0) {
        requests += (await wrk(url, { seconds: params.warmup, threads: params.threads, connections: params.connections })).requests;
      }
      result = await wrk(url, { seconds: params.duration, threads: params.threads, connections: params.connections });
      requests += result.requests;
    } finally {
      // The profile is written when the process exits: let it drain and exit.
      await handle.stop(15_000);
    }
    const data = JSON.parse(readFileSync(join(outDir, file), 'utf8'));
    const text = profileReport(data, {
      top: Number(opts.top),
      callers: Number(opts.callers),
      requests,
      title: `${name} (${setup.label})`,
    });
    say(`${name}: ${Math.round(result.rps)} req/s under the profiler, p99 ${result.p99?.toFixed(2)} ms`);
    process.stdout.write(`\n${text}`);
    sections.push(`## ${name}: ${setup.label}`, '', `${Math.round(result.rps)} req/s under the profiler; profile: bench/results/profiles/${file}`, '', '```', text.trimEnd(), '```', '');
  }
  if (!opts['no-write']) {
    const md = join(root, `bench/results/${at}-profile.md`);
    writeFileSync(md, sections.join('\n'));
    say(`bench: wrote ${md}`);
  }
}

// ---- main ---------------------------------------------------------------------------------

async function main() {
  if (opts.render) {
    rerender(resolve(opts.render));
    return;
  }
  installCleanup();
  ensureTools();
  if (opts.gatewayctl) gatewayRoot = resolve(opts.gatewayctl);
  if (!existsSync(join(gatewayRoot, 'dist/src/cli/main.js'))) {
    fail(`gatewayctl is not built in ${gatewayRoot}: run npm ci (or npm run build) there first`);
  }
  const machine = machineInfo();
  machine.neighbours = describeNeighbours(await busyNeighbours());
  const tmp = mkdtempSync(join(os.tmpdir(), 'gatewayctl-bench-'));
  // nginx workers run as an unprivileged user when started as root.
  chmodSync(tmp, 0o755);
  if (!opts['keep-tmp']) onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  else say(`bench: temp dir ${tmp} is kept`);

  const ctx = { tmp, primaryPort: await freePort(), shadowPort: await freePort(), slowPort: await freePort() };
  say(`bench: ${machine.nproc} cores, node ${machine.node}, nginx ${machine.nginx}; load average ${machine.loadBefore}; other processes using the CPU: ${machine.neighbours}`);
  say(
    `bench: upstreams on 127.0.0.1: primary :${ctx.primaryPort}, shadow :${ctx.shadowPort} (nginx), ` +
      `slow shadow :${ctx.slowPort} (node, ${params.shadowDelayMs} ms)`,
  );
  const upstreamDir = join(tmp, 'upstreams');
  mkdirSync(upstreamDir, { mode: 0o755 });
  ctx.upstreams = await startUpstreams(upstreamDir, {
    primaryPort: ctx.primaryPort,
    shadowPort: ctx.shadowPort,
    workers: params.upstreamWorkers,
  });
  ctx.slow = await startSlowShadow({ port: ctx.slowPort, delayMs: params.shadowDelayMs });
  if (!opts.profile) {
    const planned = setups.reduce((sum, s) => sum + params.rounds * (warmupFor(s) + params.duration + 1), 0);
    say(
      `bench: ${params.mode}: ${setups.length} setups × ${params.rounds} rounds, ${params.warmup}s warm-up (Node) + ${params.duration}s each ` +
        `(about ${Math.ceil(planned / 60)} min)`,
    );
  }
  try {
    if (opts.profile) await profile(ctx, machine);
    else await benchmark(ctx, machine);
  } finally {
    await ctx.slow.stop(2000);
    await ctx.upstreams.stop(2000);
  }
}

await main();
// Anything still registered is killed by the exit hook.
process.exit(process.exitCode ?? 0);
