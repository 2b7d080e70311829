#!/usr/bin/env node
// HTTP/2 and gRPC throughput, in one run, on loopback:
//
//   direct   the upstream itself (grpc-js server; node:http2 server for h2)
//   gw       gatewayctl, listen {h2c: true}, upstream protocol: h2c
//   nginx    nginx 1.22 `listen ... http2` with `grpc_pass` to the same upstream
//
// gRPC: unary calls from one grpc-js client process, a fixed number in flight.
// h2: h2load (nghttp2-client) GETs over cleartext HTTP/2 with prior knowledge.
// Setups run in interleaved rounds; figures are medians; ratios are the
// point (gw/direct, gw/nginx). The machine may be shared: rerun before
// trusting a figure.
//
//   npm run build && node bench/grpc.mjs [--rounds 3] [--duration 5] [--inflight 50]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { commandExists, freePort, installCleanup, run, sleep, start } from './lib/procs.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    inflight: { type: 'string', default: '50' },
  },
});
const rounds = Number(opts.rounds);
const durationS = Number(opts.duration);
const inflight = Number(opts.inflight);

installCleanup();
const dir = mkdtempSync(join(os.tmpdir(), 'gatewayctl-bench-grpc-'));
const ports = { grpc: await freePort(), h2: await freePort(), gwGrpc: await freePort(), gwH2: await freePort(), admin: await freePort(), nginxGrpc: await freePort(), nginxH2: await freePort() };

async function waitLine(handle, text, ms = 20_000) {
  const until = Date.now() + ms;
  while (!handle.tail.some((l) => l.includes(text))) {
    if (Date.now() > until) throw new Error(`${handle.name}: no "${text}" in time:\n${handle.tail.join('\n')}`);
    await sleep(50);
  }
}

const upstream = start('upstream', process.execPath, [join(root, 'bench/lib/grpc-upstream.mjs'), String(ports.grpc), String(ports.h2)], { cwd: root });
await waitLine(upstream, 'ready');

// One gateway, two routes: gRPC to the grpc-js server, the rest to the h2 server.
const gwConfig = join(dir, 'gateway.yaml');
writeFileSync(
  gwConfig,
  `listen: { address: 127.0.0.1:${ports.gwGrpc}, h2c: true }
admin: 127.0.0.1:${ports.admin}
upstreams:
  echo: { url: http://127.0.0.1:${ports.grpc}, protocol: h2c }
  h2: { url: http://127.0.0.1:${ports.h2}, protocol: h2c }
routes:
  - name: echo
    match: { prefix: /bench.Echo, grpc: true }
    backends: [{ upstream: echo }]
  - name: h2
    backends: [{ upstream: h2 }]
`,
);
const gateway = start('gatewayctl', process.execPath, [join(root, 'bin/gatewayctl'), 'serve', '-c', gwConfig, '--log-format', 'json', '--log-level', 'warn'], { cwd: dir });

let nginx;
if (commandExists('nginx')) {
  const prefix = join(dir, 'nginx');
  rmSync(prefix, { recursive: true, force: true });
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # nginx closes a client's HTTP/2 connection (GOAWAY) after keepalive_requests
  # requests, 1000 by default since 1.19.7 (http2_max_requests before). h2load
  # does not reconnect in a timed run: its 10 connections stopped after 10,000
  # requests (the old "2,000 req/s" over 5 s) and the streams in flight on each
  # failed. grpc-js reconnects, but paid a reconnect per 1000 calls. The
  # gateway closes no connection for its request count, so neither may nginx.
  keepalive_requests 1000000;
  upstream grpc_echo { server 127.0.0.1:${ports.grpc}; keepalive 32; keepalive_requests 1000000; }
  upstream h2_plain { server 127.0.0.1:${ports.h2}; keepalive 32; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${ports.nginxGrpc} http2;
    location / { grpc_pass grpc://grpc_echo; }
  }
  server {
    listen 127.0.0.1:${ports.nginxH2} http2;
    location / { grpc_pass grpc://h2_plain; }
  }
}
`,
  );
  nginx = start('nginx', 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { cwd: dir });
}
await sleep(1500);

const json = { serialize: (v) => Buffer.from(JSON.stringify(v)), deserialize: (b) => JSON.parse(b.toString()) };
const Client = grpc.makeGenericClientConstructor(
  { unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize } },
  'Echo',
);

/** Unary calls per second with `inflight` outstanding, for durationS. */
async function grpcRate(port) {
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  await new Promise((resolve, reject) => client.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve())));
  let done = 0;
  let failed = 0;
  const until = Date.now() + durationS * 1000;
  const worker = async () => {
    while (Date.now() < until) {
      await new Promise((resolve) =>
        client.unary({ text: 'hello' }, (err) => {
          if (err) failed++;
          else done++;
          resolve();
        }),
      );
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inflight }, worker));
  const seconds = (performance.now() - t0) / 1000;
  client.close();
  return { rate: done / seconds, failed };
}

async function h2Rate(port) {
  if (!commandExists('h2load')) return undefined;
  const result = await run('h2load', ['-c', '10', '-m', '10', '-D', String(durationS), `http://127.0.0.1:${port}/api/items/42`], { timeoutMs: (durationS + 20) * 1000 });
  const match = /finished in [^,]+, ([\d.]+) req\/s/.exec(result.stdout);
  const failed = /(\d+) failed/.exec(result.stdout);
  return match ? { rate: Number(match[1]), failed: Number(failed?.[1] ?? 0) } : undefined;
}

const setups = [
  { name: 'direct', grpc: ports.grpc, h2: ports.h2 },
  { name: 'gw', grpc: ports.gwGrpc, h2: ports.gwGrpc },
  ...(nginx ? [{ name: 'nginx', grpc: ports.nginxGrpc, h2: ports.nginxH2 }] : []),
];
const results = Object.fromEntries(setups.map((s) => [s.name, { grpc: [], h2: [], failed: 0 }]));
const loadBefore = os.loadavg()[0];
for (let round = 0; round < rounds; round++) {
  for (const setup of setups) {
    const g = await grpcRate(setup.grpc);
    results[setup.name].grpc.push(g.rate);
    results[setup.name].failed += g.failed;
    const h = await h2Rate(setup.h2);
    if (h) {
      results[setup.name].h2.push(h.rate);
      results[setup.name].failed += h.failed;
    }
    console.error(`round ${round + 1} ${setup.name}: grpc ${g.rate.toFixed(0)}/s (${g.failed} failed), h2 ${h ? `${h.rate.toFixed(0)}/s (${h.failed} failed)` : 'n/a'}`);
  }
}
const median = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : NaN);
const table = setups.map((s) => ({ setup: s.name, grpc: median(results[s.name].grpc), h2: median(results[s.name].h2), failed: results[s.name].failed }));
const by = Object.fromEntries(table.map((r) => [r.setup, r]));
// A setup that failed requests is no reference: its row says so.
console.log(`\n| setup | gRPC unary calls/s (${inflight} in flight) | h2 GET req/s (h2load -c10 -m10) | failed |\n| --- | --- | --- | --- |`);
for (const r of table) console.log(`| ${r.setup} | ${r.grpc.toFixed(0)} | ${Number.isNaN(r.h2) ? 'n/a' : r.h2.toFixed(0)} | ${r.failed}${r.failed > 0 ? ' (not a valid row)' : ''} |`);
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : 'n/a');
console.log(`\ngw/direct: gRPC ${ratio(by.gw.grpc, by.direct.grpc)}, h2 ${ratio(by.gw.h2, by.direct.h2)}`);
if (by.nginx) console.log(`gw/nginx:  gRPC ${ratio(by.gw.grpc, by.nginx.grpc)}, h2 ${ratio(by.gw.h2, by.nginx.h2)}`);
console.log(`(${rounds} rounds × ${durationS} s, medians; ${os.cpus().length} cores, load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0].toFixed(1)} at the end)`);
if (loadBefore >= 1.5) console.log('The machine was busy before the run (load average 1.5 or more): these figures are not measurements.');

await gateway.stop(3000);
await nginx?.stop(3000);
await upstream.stop(3000);
rmSync(dir, { recursive: true, force: true });
process.exit(0);
