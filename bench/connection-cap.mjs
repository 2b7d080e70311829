#!/usr/bin/env node
/**
 * What a flood of silent connections does to normal clients at a
 * connection cap, side by side, in interleaved rounds:
 *
 * - evict:  the gateway's ConnectionGuard: at the cap the connection resting
 *           longest is closed for the new one; refused (503) only when every
 *           connection is busy.
 * - refuse: Node's own `server.maxConnections`: beyond the cap a new
 *           connection is closed at once, in C++, with no answer.
 * - none:   no cap at all (the flood is only bounded by the descriptor limit).
 *
 * Pausing accept (HAProxy's way at maxconn) has no public Node API short of
 * closing the listener, so it is not a row; what it would do follows from
 * the `refuse` row: the same clients would wait in the backlog instead.
 *
 *   npm run build && node bench/connection-cap.mjs [--rounds 3] [--flood 5000] [--cap 1000]
 *
 * Loopback only; every process is stopped at the end.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROUNDS = option('rounds', 3);
const FLOOD = option('flood', 5000);
const CAP = option('cap', 1000);
const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const FLOOD_SCRIPT = `${dist}test/helpers/flood.js`;

/** The server under test, in its own process: plain HTTP, answers 200 at once. */
const SERVER = `
import http from 'node:http';
const [mode, cap] = [process.argv[1], Number(process.argv[2])];
const { ConnectionGuard } = await import(${JSON.stringify(dist + 'src/proxy/connections.js')});
const { GatewayMetrics } = await import(${JSON.stringify(dist + 'src/metrics/registry.js')});
const server = http.createServer({ keepAliveTimeout: 60_000, headersTimeout: 10_500 }, (req, res) => res.end('ok'));
if (mode === 'evict') {
  const guard = new ConnectionGuard({ listener: 'gateway', metrics: new GatewayMetrics({ collectDefaults: false }),
    settings: () => ({ headerMs: 10_000, idleMs: 60_000, maxConnections: cap, maxPerClient: 0 }) });
  guard.attach(server);
} else if (mode === 'refuse') server.maxConnections = cap;
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
`;

function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in ticks of 10 ms
}

function get(port) {
  return new Promise((resolve) => {
    const t = performance.now();
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: res.statusCode === 200, ms: performance.now() - t }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ ok: false, ms: performance.now() - t }));
  });
}

const pct = (values, p) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};

async function round(mode) {
  const server = spawn(process.execPath, ['--input-type=module', '-e', SERVER, mode, String(CAP)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => server.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  const cpuBefore = cpuMs(server.pid);
  const flood = spawn(process.execPath, [FLOOD_SCRIPT, String(port), String(FLOOD), '250'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let done = false;
  const report = new Promise((resolve) => flood.stdout.once('data', (d) => resolve(JSON.parse(String(d)))));
  void report.then(() => (done = true));
  const started = Date.now();
  const results = [];
  let extra = 0;
  // Two clients, a new connection per request: while the flood goes out, then 100 more with it held.
  await Promise.all(
    [0, 1].map(async () => {
      while (!done || extra++ < 100) results.push(await get(port));
    }),
  );
  const floodMs = Date.now() - started;
  const cpu = cpuMs(server.pid) - cpuBefore;
  flood.stdin.end();
  server.stdin.end();
  await Promise.all([new Promise((r) => flood.once('exit', r)), new Promise((r) => server.once('exit', r))]);
  const ok = results.filter((r) => r.ok);
  return { mode, requests: results.length, ok: ok.length, p50: pct(ok.map((r) => r.ms), 50), p95: pct(ok.map((r) => r.ms), 95), cpuPerConn: (cpu * 1000) / FLOOD, floodMs };
}

const modes = ['evict', 'refuse', 'none'];
const all = Object.fromEntries(modes.map((m) => [m, []]));
for (let r = 0; r < ROUNDS; r++) for (const m of modes) all[m].push(await round(m));
const median = (xs) => pct(xs, 50);
console.log(`${FLOOD} silent connections (waves of 250) against a cap of ${CAP}; two normal clients, a new connection per request; medians of ${ROUNDS} rounds\n`);
console.log('| at the cap | normal requests answered 200 | p50 | p95 | server CPU during the flood, per flood connection | flood run |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const m of modes) {
  const rs = all[m];
  const share = median(rs.map((r) => r.ok / r.requests));
  console.log(
    `| ${m} | ${(share * 100).toFixed(1)} % (of ~${median(rs.map((r) => r.requests))}) | ${median(rs.map((r) => r.p50)).toFixed(1)} ms | ${median(rs.map((r) => r.p95)).toFixed(1)} ms | ${median(rs.map((r) => r.cpuPerConn)).toFixed(0)} µs | ${median(rs.map((r) => r.floodMs))} ms |`,
  );
}
