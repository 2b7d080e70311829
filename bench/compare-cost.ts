/**
 * What comparing mirrored pairs costs in CPU.
 *
 * Part 1, in process: the engine alone (queue, decode, lift, compare,
 * metrics, store) over prepared pairs: typical 300-byte and 10 KB JSON
 * answers and a 150 KB export (on a fiftieth as many pairs), with and
 * without differences, with a baseline, gzip.
 * Reported as CPU µs per compared pair.
 *
 * Part 2, end to end: a real `gatewayctl serve` child on loopback, with
 * upstreams and the load generator in this process, and four routes:
 * plain proxying, mirroring without comparison (the no-compare baseline),
 * mirroring with comparison, and comparison with a diff baseline. The
 * gateway's own CPU (process_cpu_seconds_total from its /metrics) per
 * request, and the ratio to mirroring without comparison.
 *
 * Run: npm run bench:compare   (bounded: a fixed number of requests, loopback only)
 * BENCH_ONLY=engine|gateway runs one part; BENCH_PAIRS, BENCH_REQUESTS and
 * BENCH_ROUNDS change the sizes. BENCH_REFERENCE=<another build's dist
 * directory> runs part 1 on that build's engine too, interleaved in the same
 * process, and prints the ratio: a price that holds on a busy machine.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { DiffEngine } from '../src/diff/engine.js';
import { DiffStore } from '../src/diff/store.js';
import { GatewayMetrics } from '../src/metrics/registry.js';
import type { CapturedResponse, MirroredPair } from '../src/diff/pair.js';
import { loadAllParsers } from '../src/diff/parsers.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

// ---- bodies ---------------------------------------------------------------

/** A small order-like document, about 300 bytes. */
function small(variant: { price?: number; random?: boolean } = {}): Record<string, unknown> {
  return {
    id: variant.random ? randomUUID() : 'ord-0001',
    status: 'confirmed',
    customer: { id: 'c-77', tier: 'gold' },
    items: [
      { sku: 'A-100', qty: 1, price: 19.99 },
      { sku: 'B-200', qty: 2, price: variant.price ?? 5.5 },
    ],
    total: 30.99,
    currency: 'EUR',
    createdAt: '2030-01-01T12:00:00Z',
    meta: { version: 'v1', region: 'eu-west-1' },
  };
}

/** A catalogue page, about 10 KB (64 items), or an export of 1,000 items, about 150 KB. */
function large(variant: { price?: number; random?: boolean } = {}, count = 64): Record<string, unknown> {
  return {
    page: 1,
    requestId: variant.random ? randomUUID() : 'req-1',
    items: Array.from({ length: count }, (_, i) => ({
      sku: `SKU-${1000 + i}`,
      name: `Product number ${i}`,
      description: `A sturdy everyday product, variant ${i}, in stock.`,
      price: i === 7 && variant.price !== undefined ? variant.price : 10 + i,
      stock: (i * 7) % 13,
      tags: ['new', i % 2 ? 'sale' : 'regular'],
    })),
    facets: { brand: ['a', 'b', 'c'], colour: ['red', 'green'] },
  };
}

const exportDoc = (variant: { price?: number; random?: boolean } = {}) => large(variant, 1000);
const SIZES = { '300 B': small, '10 KB': large, '150 KB': exportDoc } as const;
/** The share of the pairs a scenario of this size compares (large pairs cost milliseconds each). */
const PAIR_SHARE: Record<string, number> = { '150 KB': 1 / 50 };

/** A product page, about 6 KB of HTML, with a per-request CSRF token. */
function page(variant: { stock?: string } = {}): string {
  const token = randomUUID();
  const rows = Array.from({ length: 40 }, (_, i) => `<tr><td class="k">Spec ${i}</td><td class="v">value ${i * 7}</td></tr>`).join('');
  return `<!doctype html><html><head><title>Shirt</title><meta name="csrf-token" content="${token}"></head>
<body><nav><a href="/">Home</a></nav><main><h1>Shirt</h1><p class="stock">${variant.stock ?? 'In stock'}</p>
<table>${rows}</table><form method="post"><input type="hidden" name="csrf" value="${token}"><button>Buy</button></form></main></body></html>`;
}

// ---- part 1: the engine in process -----------------------------------------

// flush() compares synchronously: the parsers HTML pairs need are loaded up front.
await loadAllParsers();

function captured(doc: unknown, gzip = false, latencyMs = 3): CapturedResponse {
  const html = typeof doc === 'string';
  const text = Buffer.from(html ? doc : JSON.stringify(doc));
  const body = gzip ? zlib.gzipSync(text) : text;
  return {
    status: 200,
    headers: { 'content-type': html ? 'text/html; charset=utf-8' : 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}) },
    body,
    truncated: false,
    bodyBytes: body.length,
    latencyMs,
  };
}

function mirrored(primary: CapturedResponse, shadow: CapturedResponse, baseline?: CapturedResponse): MirroredPair {
  const result = (r: CapturedResponse) => ({ outcome: 'completed' as const, latencyMs: r.latencyMs, status: r.status, response: r });
  return {
    route: 'bench',
    diff: { enabled: true, ignoreHeaders: [], ignorePaths: [], baseline: baseline ? 'base' : undefined, maxBodyBytes: 1024 * 1024, endpoints: [], tolerance: [], unordered: [], latency: { maxRatio: 1.5 } },
    method: 'GET',
    path: '/bench',
    requestId: 'r',
    time: new Date(),
    primaryUpstream: 'v1',
    primary,
    shadows: [{ upstream: 'v3', result: result(shadow) }],
    baseline: baseline ? { upstream: 'base', result: result(baseline) } : undefined,
  };
}

interface Scenario {
  readonly name: string;
  readonly make: () => MirroredPair;
  /** The share of the pairs it compares; 1 when unset. */
  readonly share?: number;
}

function scenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const [size, doc] of Object.entries(SIZES)) {
    const same = captured(doc());
    const share = PAIR_SHARE[size];
    const push = (scenario: Scenario) => out.push(share === undefined ? scenario : { ...scenario, share });
    push({ name: `${size}, identical`, make: () => mirrored(same, captured(doc())) });
    push({
      name: `${size}, equal, other bytes`,
      make: () => mirrored(same, { ...captured(doc()), body: Buffer.from(JSON.stringify(doc(), null, 1)) }),
    });
    push({ name: `${size}, 1 difference`, make: () => mirrored(same, captured(doc({ price: 99 }))) });
    push({
      name: `${size}, baseline, noise + 1 difference`,
      make: () => mirrored(captured(doc({ random: true })), captured(doc({ random: true, price: 99 })), captured(doc({ random: true }))),
    });
    push({ name: `${size}, gzip shadow, 1 difference`, make: () => mirrored(same, captured(doc({ price: 99 }), true)) });
  }
  out.push({ name: '6 KB HTML, token + 1 difference', make: () => mirrored(captured(page()), captured(page({ stock: 'Sold out' }))) });
  out.push({
    name: '6 KB HTML, baseline, token + 1 difference',
    make: () => mirrored(captured(page()), captured(page({ stock: 'Sold out' })), captured(page())),
  });
  return out;
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** An engine build: this one, or BENCH_REFERENCE's. */
interface EngineBuild {
  readonly DiffEngine: typeof DiffEngine;
  readonly DiffStore: typeof DiffStore;
  readonly GatewayMetrics: typeof GatewayMetrics;
}

async function loadBuild(dist: string): Promise<EngineBuild> {
  const at = (p: string) => import(join(dist, 'src', p));
  const [engine, store, metrics] = await Promise.all([at('diff/engine.js'), at('diff/store.js'), at('metrics/registry.js')]);
  // Builds with lazily loaded parsers have this module; older ones load them at import.
  await at('diff/parsers.js').then((m: { loadAllParsers(): Promise<void> }) => m.loadAllParsers(), () => undefined);
  return { DiffEngine: engine.DiffEngine, DiffStore: store.DiffStore, GatewayMetrics: metrics.GatewayMetrics };
}

function measureEngine(scenario: Scenario, allPairs: number, build: EngineBuild = { DiffEngine, DiffStore, GatewayMetrics }): number {
  const pairs = Math.max(20, Math.round(allPairs * (scenario.share ?? 1)));
  const prepared = Array.from({ length: Math.min(200, pairs) }, () => scenario.make());
  const engine = new build.DiffEngine({ sink: new build.DiffStore(), metrics: new build.GatewayMetrics({ collectDefaults: false }), queueLimit: () => pairs });
  const run = (n: number) => {
    for (let i = 0; i < n; i++) engine.submit(prepared[i % prepared.length]!);
    engine.flush();
  };
  run(Math.min(2000, pairs)); // warm up
  const start = cpuMicros();
  run(pairs);
  const micros = (cpuMicros() - start) / pairs;
  engine.close();
  return micros;
}

// ---- part 2: a real gateway ----------------------------------------------------

interface Upstream {
  readonly url: string;
  close(): Promise<void>;
}

async function upstream(answer: (size: keyof typeof SIZES) => Record<string, unknown>): Promise<Upstream> {
  const server = http.createServer((req, res) => {
    const size = req.url?.includes('size=large') ? '10 KB' : '300 B';
    const body = JSON.stringify(answer(size));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function startGateway(configFile: string): Promise<{ url: string; admin: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [MAIN, 'serve', '-c', configFile, '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<{ listen: { port: number }; admin: { port: number } }>((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      for (const line of buffered.split('\n')) {
        try {
          const record = JSON.parse(line) as { event?: string; listen: { port: number }; admin: { port: number } };
          if (record.event === 'gateway.listening') resolve(record);
        } catch {
          // partial line
        }
      }
    });
    void exited.then(() => reject(new Error('the gateway exited before listening')));
  });
  return {
    url: `http://127.0.0.1:${ready.listen.port}`,
    admin: `http://127.0.0.1:${ready.admin.port}`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function get(agent: http.Agent, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        res.resume();
        res.on('end', resolve);
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

async function load(url: string, requests: number, concurrency: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        next++;
        await get(agent, url);
      }
    }),
  );
  agent.destroy();
}

async function gatewayCpuSeconds(admin: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get(admin + '/metrics', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  const line = text.split('\n').find((l) => l.startsWith('process_cpu_seconds_total '));
  return Number(line?.split(' ')[1] ?? NaN);
}

async function settle(admin: string): Promise<void> {
  // Let shadow copies and queued comparisons finish before reading the CPU.
  await new Promise((r) => setTimeout(r, 300));
  await gatewayCpuSeconds(admin);
}

// ---- report -------------------------------------------------------------------

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join('  ');
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function partEngine(pairs: number): Promise<void> {
  const referenceDir = process.env['BENCH_REFERENCE'];
  const reference = referenceDir ? await loadBuild(referenceDir) : undefined;
  console.log(`1. The comparison engine in process: CPU per compared pair (median of 3 runs of ${pairs} pairs)`);
  if (reference) console.log(`   reference build: ${referenceDir} (runs interleaved with this build's)`);
  const w = [44, 12, 14, 8];
  console.log(row(reference ? ['pair', 'µs / pair', 'reference µs', 'ratio'] : ['pair', 'µs / pair'], w));
  // Every code path compiled before anything is measured: the first scenario would pay for it otherwise.
  for (const s of scenarios()) {
    measureEngine(s, 1000);
    if (reference) measureEngine(s, 1000, reference);
  }
  for (const s of scenarios()) {
    const runs: number[] = [];
    const refs: number[] = [];
    for (let i = 0; i < 3; i++) {
      runs.push(measureEngine(s, pairs));
      if (reference) refs.push(measureEngine(s, pairs, reference));
    }
    const now = median(runs);
    if (!reference) console.log(row([s.name, now.toFixed(1)], w));
    else console.log(row([s.name, now.toFixed(1), median(refs).toFixed(1), `${(now / median(refs)).toFixed(2)}×`], w));
  }
}

const ROUTES = [
  ['plain', 'proxy only'],
  ['mirror', 'mirror, no comparison'],
  ['compare', 'mirror + compare'],
  ['baseline', 'mirror + compare + baseline'],
] as const;

async function partGateway(requests: number, rounds: number): Promise<void> {
  const concurrency = 16;
  console.log(
    `2. A gateway process on loopback: its CPU per request (median of ${rounds} interleaved rounds of ${requests} requests, ${concurrency} at a time)`,
  );
  const tmp = mkdtempSync(join(tmpdir(), 'gatewayctl-bench-'));
  const primary = await upstream((size) => SIZES[size]({ random: true }));
  const base = await upstream((size) => SIZES[size]({ random: true }));
  const shadow = await upstream((size) => SIZES[size]({ random: true, price: 99 }));
  const configFile = join(tmp, 'gateway.yaml');
  writeFileSync(
    configFile,
    `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  primary: ${primary.url}
  shadow: ${shadow.url}
  base: ${base.url}
routes:
  - name: plain
    match: { prefix: /plain }
    backends: [{ upstream: primary }]
  - name: mirror
    match: { prefix: /mirror }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: shadow }]
    diff: { enabled: false }
  - name: compare
    match: { prefix: /compare }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: shadow }]
    diff: { ignorePaths: [/id, /requestId] }
  - name: baseline
    match: { prefix: /baseline }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: shadow }]
    diff: { baseline: base }
`,
  );
  const gateway = await startGateway(configFile);
  try {
    const w = [44, 12, 22];
    console.log(row(['route', 'µs / req', 'vs mirroring only'], w));
    for (const [size, query] of [
      ['300 B', 'size=small'],
      ['10 KB', 'size=large'],
    ] as const) {
      const samples = new Map<string, number[]>(ROUTES.map(([route]) => [route, []]));
      const url = (route: string) => `${gateway.url}/${route}/items?${query}`;
      for (const [route] of ROUTES) await load(url(route), Math.min(1000, requests), concurrency); // warm up
      for (let round = 0; round < rounds; round++) {
        for (const [route] of ROUTES) {
          await settle(gateway.admin);
          const before = await gatewayCpuSeconds(gateway.admin);
          await load(url(route), requests, concurrency);
          await settle(gateway.admin);
          samples.get(route)!.push((((await gatewayCpuSeconds(gateway.admin)) - before) * 1e6) / requests);
        }
      }
      const mirrorOnly = median(samples.get('mirror')!);
      for (const [route, label] of ROUTES) {
        const micros = median(samples.get(route)!);
        const extra = micros - mirrorOnly;
        const vs =
          route === 'compare' || route === 'baseline'
            ? `×${(micros / mirrorOnly).toFixed(2)} (${extra < 0 ? '−' : '+'}${Math.abs(extra).toFixed(0)} µs)`
            : '';
        console.log(row([`${size}: ${label}`, micros.toFixed(0), vs], w));
      }
    }
  } finally {
    await gateway.stop();
    await Promise.all([primary.close(), base.close(), shadow.close()]);
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const only = process.env['BENCH_ONLY'];
  console.log(`node ${process.version}, ${process.arch}`);
  if (only !== 'gateway') {
    console.log('');
    await partEngine(Number(process.env['BENCH_PAIRS'] ?? 10_000));
  }
  if (only !== 'engine') {
    console.log('');
    await partGateway(Number(process.env['BENCH_REQUESTS'] ?? 3000), Number(process.env['BENCH_ROUNDS'] ?? 3));
  }
}

await main();
