#!/usr/bin/env node
// The price of the egress, side by side in one run, on loopback:
//
//   direct   POST to the dependency itself
//   proxy    the same call through the gateway's own proxy path (for reference)
//   live     the same call through egress.live (forwarded and recorded)
//   dark     the dark twins of the live calls through egress.dark (replayed)
//
//   npm run build && node bench/egress.mjs [--rounds 3] [--duration 5] [--connections 32]
//   BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" node bench/egress.mjs   (node flags for gatewayctl)
//
// The dependency and gatewayctl run as their own processes; this process is
// the client (undici). Rounds are interleaved; figures are medians over
// rounds, reported as ratios to `direct`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { freePort, installCleanup, killAll, start } from './lib/procs.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
  },
});
const rounds = Number(opts.rounds);
const durationMs = Number(opts.duration) * 1000;
const connections = Number(opts.connections);

const PROVIDER = `
import http from 'node:http';
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const text = '{"id":"ch_1","status":"succeeded","amount":"10.00"}';
    res.writeHead(201, { 'content-type': 'application/json', 'content-length': text.length });
    res.end(text);
  });
});
server.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'));
`;

function waitForLine(handle, pattern, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${handle.name}: no "${pattern}" in ${timeoutMs} ms:\n${handle.tail.join('\n')}`)), timeoutMs);
    const check = () => {
      if (handle.tail.some((l) => l.includes(pattern))) {
        clearTimeout(timer);
        resolve();
      } else setTimeout(check, 50);
    };
    check();
  });
}

const body = JSON.stringify({ amount: '10.00', currency: 'EUR', product: 'grinder', idempotencyKey: 'k' });

/** Runs `connections` loops for durationMs; ids() names each request's x-request-id. */
async function load(origin, path, ids) {
  const pool = new Pool(origin, { connections, pipelining: 1 });
  const latencies = [];
  let done = 0;
  let failed = 0;
  const deadline = performance.now() + durationMs;
  const loop = async () => {
    while (performance.now() < deadline) {
      const id = ids();
      if (id === undefined) return;
      const t = performance.now();
      try {
        const res = await pool.request({
          method: 'POST',
          path,
          headers: { 'content-type': 'application/json', ...(id ? { 'x-request-id': id } : {}) },
          body,
        });
        await res.body.text();
        if (res.statusCode >= 300) failed++;
      } catch {
        failed++;
      }
      latencies.push(performance.now() - t);
      done++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: connections }, loop));
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return { rps: done / seconds, p50: latencies[latencies.length >> 1] ?? 0, p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0, failed, done };
}

const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];

async function main() {
  installCleanup();
  const tmp = mkdtempSync(join(os.tmpdir(), 'gatewayctl-bench-egress-'));
  try {
    const [providerPort, listenPort, adminPort, livePort, darkPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const provider = start('provider', process.execPath, ['--input-type=module', '-e', PROVIDER, String(providerPort)]);
    await waitForLine(provider, 'listening');
    const config = join(tmp, 'gateway.yaml');
    writeFileSync(
      config,
      `listen: 127.0.0.1:${listenPort}
admin: 127.0.0.1:${adminPort}
upstreams: { a: "http://127.0.0.1:${providerPort}" }
routes: [{ name: r, backends: [{ upstream: a }] }]
egress: { live: 127.0.0.1:${livePort}, dark: 127.0.0.1:${darkPort} }
limits: { recordBytes: 256mb }
timeouts: { record: 5m }
dependencies:
  payments: { url: "http://127.0.0.1:${providerPort}/v1", wait: 1s }
`,
    );
    const gateway = start('gatewayctl', process.execPath, [...(process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : []), join(root, 'bin/gatewayctl'), 'serve', '-c', config, '--log-level', 'info'], { cwd: tmp });
    await waitForLine(gateway, 'egress.listening');
    await new Promise((r) => setTimeout(r, 500));

    const results = { direct: [], proxy: [], live: [], dark: [] };
    for (let round = 0; round < rounds; round++) {
      results.direct.push(await load(`http://127.0.0.1:${providerPort}`, '/v1/charges', () => ''));
      results.proxy.push(await load(`http://127.0.0.1:${listenPort}`, '/v1/charges', () => ''));
      const recorded = [];
      let n = 0;
      results.live.push(
        await load(`http://127.0.0.1:${livePort}`, '/payments/charges', () => {
          const id = `r${round}-${n++}`;
          recorded.push(id);
          return id;
        }),
      );
      let next = 0;
      // Only ids whose live twin was recorded: every dark call is a replay.
      results.dark.push(await load(`http://127.0.0.1:${darkPort}`, '/payments/charges', () => recorded[next++]));
    }
    const row = (name) => {
      const r = results[name];
      return {
        setup: name,
        rps: Math.round(median(r.map((x) => x.rps))),
        p50ms: median(r.map((x) => x.p50)).toFixed(2),
        p99ms: median(r.map((x) => x.p99)).toFixed(2),
        failed: r.reduce((s, x) => s + x.failed, 0),
      };
    };
    const rows = ['direct', 'proxy', 'live', 'dark'].map(row);
    console.log(`egress bench: ${rounds} rounds × ${durationMs / 1000} s, ${connections} connections, ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}`);
    console.table(rows);
    const direct = rows[0];
    for (const [i, what] of [
      [1, 'gateway proxy path / direct'],
      [2, 'live through the egress / direct'],
      [3, 'dark replay / direct'],
    ]) {
      console.log(`${what.padEnd(34)} ${(rows[i].rps / direct.rps).toFixed(2)}× throughput, ${(rows[i].p50ms / direct.p50ms).toFixed(2)}× p50`);
    }
  } finally {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  killAll();
  process.exit(1);
});
