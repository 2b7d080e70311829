/**
 * Diffs a person can act on, measured on a realistic API (test/helpers/
 * shop-corpus.ts) through the real gateway: primary, baseline and candidate
 * services with known noise and planted regressions of every kind.
 *
 * - with a baseline: every regression reported at its endpoint and path;
 *   noise at most 2% of the printed difference lines;
 * - pure noise (the candidate runs v1): no regression verdict;
 * - the 2× latency regression reported at its endpoint only, within 500
 *   requests to it;
 * - splitting the route in two changes no verdict;
 * - without a baseline, with what the summary suggests applied: recall
 *   100%, noise at most 10% of the printed lines.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DiffSummary, Finding, ShadowSummary, Suggestions } from '../../src/diff/summary.js';
import type { DiffEvent } from '../../src/diff/types.js';
import { runCli } from '../helpers/cli.js';
import { startGateway } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { LATENCY_ENDPOINT, PLANTED, round, shop, type Planted } from '../helpers/shop-corpus.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const ROUNDS = 100;
const ENDPOINTS = round(0, 1).length;

interface Run {
  readonly summary: DiffSummary;
  readonly events: DiffEvent[];
  /** Requests sent to the latency endpoint when its latency difference arrived. */
  readonly latencyAfter: number | undefined;
  /** The gateway's /metrics at the end. */
  readonly metrics: string;
  /** What `gatewayctl diff summary` printed at the end. */
  readonly printedSummary: string;
}

const endpointOfTarget = (target: string) =>
  target.startsWith('/api/recommendations/') ? LATENCY_ENDPOINT : undefined;

function yaml(urls: Record<string, string>, options: { candidate: string; baseline?: boolean; split?: boolean; extra?: Suggestions }): string {
  const x = options.extra;
  const list = (items: readonly string[]) => `[${items.map((i) => JSON.stringify(i)).join(', ')}]`;
  const tolerance = { '/load': 0.05, ...(x?.tolerance ?? {}) };
  const diff = `
    diff:
      ${options.baseline ? 'baseline: b' : ''}
      endpoints: ["/api/products/{id}"]
      tolerance: { ${Object.entries(tolerance)
        .map(([k, v]) => `${JSON.stringify(k)}: ${v}`)
        .join(', ')} }
      unordered: ${list(['/categories', ...(x?.unordered ?? [])])}
      ignorePaths: ${list(x?.ignorePaths ?? [])}
      ignoreHeaders: ${list(x?.ignoreHeaders ?? [])}
      latency: { maxRatio: 1.5 }`;
  const route = (name: string, prefix: string) => `
  - name: ${name}
    match: { prefix: ${prefix} }
    backends: [{ upstream: p }]
    shadow: [{ upstream: ${options.candidate} }]${diff}`;
  // Every pair of the corpus is compared: its clients and upstreams share
  // this loop, which would read as a saturated gateway and shed copies.
  return `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
limits: { shadowShedAbove: 1 }
upstreams:
${Object.entries(urls)
  .map(([k, v]) => `  ${k}: ${v}`)
  .join('\n')}
routes:${options.split ? route('api', '/api') + route('web', '/shop') : route('shop', '/')}
`;
}

async function run(config: string, ids: number): Promise<Run> {
  const gw = await startGateway(config);
  const events: DiffEvent[] = [];
  let latencySent = 0;
  let latencyAfter: number | undefined;
  const unsubscribe = gw.diffs.store.subscribe({
    filter: {},
    deliver: (e) => {
      events.push(e);
      if (latencyAfter === undefined && e.differences.some((d) => d.kind === 'latency')) latencyAfter = latencySent;
    },
  });
  try {
    const targets = Array.from({ length: ROUNDS }, (_, i) => round(i, ids)).flat();
    await runConcurrently(targets.length, 6, async (i) => {
      const target = targets[i]!;
      if (endpointOfTarget(target)) latencySent++;
      const r = await request(gw.url + target, { headers: { 'x-request-id': `r${i}` } });
      assert.ok(r.status === 200 || r.status === 500, `${target}: ${r.status}`);
    });
    await gw.settled();
    const failures = gw.logs.filter((l) => l.level === 'error');
    assert.deepEqual(failures, [], 'no comparison failed');
    const metrics = (await request(gw.adminUrl + '/metrics')).text;
    const printed = await runCli(['diff', 'summary', '--admin', gw.adminUrl]);
    assert.equal(printed.code, 0, printed.stderr);
    return { summary: gw.diffs.store.summary(), events, latencyAfter, metrics, printedSummary: printed.stdout };
  } finally {
    unsubscribe();
    await gw.close();
  }
}

const shadowsOf = (s: DiffSummary): ShadowSummary[] => s.routes.flatMap((r) => r.shadows);
const findingsOf = (s: DiffSummary): Finding[] => shadowsOf(s).flatMap((x) => x.findings ?? []);

function reported(findings: readonly Finding[], p: Planted, verdicts: readonly string[] = ['regression']): boolean {
  return findings.some((f) => f.endpoint === p.endpoint && verdicts.includes(f.verdict) && (p.kind === 'status' ? f.kind === 'status' : f.path === p.path));
}

/** A printed difference line belongs to a planted regression (or to its request's status change). */
function lineShare(events: readonly DiffEvent[]): { lines: number; noise: number; noiseLines: string[] } {
  let lines = 0;
  let noise = 0;
  const noiseLines: string[] = [];
  for (const e of events) {
    const statusChange = e.differences.some((d) => d.kind === 'status');
    for (const d of e.differences) {
      lines++;
      const planted = PLANTED.some((p) => p.endpoint === e.endpoint && (p.path === d.template || (p.kind === 'status' && statusChange)));
      if (!planted) {
        noise++;
        noiseLines.push(`${e.endpoint} ${d.kind} ${d.path}`);
      }
    }
  }
  return { lines, noise, noiseLines };
}

function verdicts(s: DiffSummary): string[] {
  return findingsOf(s)
    .filter((f) => f.verdict === 'regression')
    .map((f) => `${f.endpoint} ${f.kind} ${f.kind === 'status' ? f.title : f.path}`)
    .sort();
}

describe('diff precision on a realistic API', { timeout: 300_000 }, () => {
  const upstreams: TestUpstream[] = [];
  let urls: Record<string, string>;
  const runs: Record<string, Run> = {};

  before(async () => {
    const start = async (name: string, version: 'v1' | 'v2') => {
      const u = await startUpstream(name, shop(version));
      upstreams.push(u);
      return u.url;
    };
    // p: the primary (v1); b: a second v1 instance (the baseline); c: the candidate (v2); n: a third v1 instance.
    urls = { p: await start('p', 'v1'), b: await start('b', 'v1'), c: await start('c', 'v2'), n: await start('n', 'v1') };
  });

  after(async () => {
    await Promise.all(upstreams.map((u) => u.close()));
  });

  test(`with a baseline: every planted regression at its endpoint and path; noise ≤ 2% of printed lines (${ENDPOINTS} endpoints)`, async () => {
    const r = (runs['baseline'] = await run(yaml(urls, { candidate: 'c', baseline: true }), 50));
    if (process.env['DIFF_CORPUS_DUMP']) (await import('node:fs')).writeFileSync(process.env['DIFF_CORPUS_DUMP'], JSON.stringify(r, null, 1));
    const findings = findingsOf(r.summary);
    for (const p of PLANTED) assert.ok(reported(findings, p), `not reported: ${p.endpoint} ${p.kind} ${p.path}\n${JSON.stringify(findings, null, 1)}`);
    const share = lineShare(r.events);
    assert.ok(share.lines > 0);
    assert.ok(share.noise <= 0.02 * share.lines, `noise lines ${share.noise}/${share.lines}: ${share.noiseLines.slice(0, 20).join('; ')}`);
    const summary = shadowsOf(r.summary)[0]!;
    assert.equal(summary.verdict, 'regression');
    // The default `diff summary` answers: not safe, what, where, on how many requests, an example request.
    assert.match(r.printedSummary, /shop → c: NOT SAFE: 10 regressions/);
    assert.match(r.printedSummary, /\/api\/cart\/\{id\} +status 200 → 500 \(with header etag.*\) +[1-9]\d* +\d+\.\d% +regression +id=r\d+/);
    assert.match(r.printedSummary, /\/api\/recommendations\/\{id\} +latency [\d.]+× primary/);
    assert.match(r.printedSummary, /noise \(against baseline b\): \d+ differences on \d+ paths, collapsed/);
    assert.ok((summary.endpoints ?? []).length >= 12, 'at least 12 endpoints');
    process.stdout.write(`# corpus with baseline: ${share.lines} printed lines, ${share.noise} noise; latency reported after ${r.latencyAfter} requests\n`);
  });

  test('the 2× latency regression is reported at its endpoint only, within 500 requests to it', () => {
    const r = runs['baseline']!;
    assert.ok(r.latencyAfter !== undefined && r.latencyAfter <= 500, `latency reported after ${r.latencyAfter}`);
    const latency = findingsOf(r.summary).filter((f) => f.kind === 'latency');
    assert.deepEqual(
      latency.map((f) => f.endpoint),
      [LATENCY_ENDPOINT],
    );
    const events = r.events.filter((e) => e.differences.some((d) => d.kind === 'latency'));
    assert.deepEqual([...new Set(events.map((e) => e.endpoint))], [LATENCY_ENDPOINT]);
    // The metrics carry the worst endpoint's ratio per route, never an endpoint label.
    const gauge = /^gatewayctl_shadow_latency_ratio\{route="shop",upstream="c"\} ([\d.]+)$/m.exec(r.metrics);
    assert.ok(gauge && Number(gauge[1]) > 1.5, `gauge: ${gauge?.[0]}`);
    assert.doesNotMatch(r.metrics, /^gatewayctl_shadow_\w+\{[^}]*endpoint="/m);
    const endpoint = shadowsOf(r.summary)[0]!.endpoints!.find((e) => e.endpoint === LATENCY_ENDPOINT)!;
    assert.ok(endpoint.latency.ratioCi![0] > 1.5, JSON.stringify(endpoint.latency));
  });

  test('pure noise (the candidate runs v1): no regression verdict', async () => {
    const r = (runs['pure'] = await run(yaml(urls, { candidate: 'n', baseline: true }), 50));
    assert.deepEqual(verdicts(r.summary), []);
    assert.match(r.printedSummary, /shop → n: SAFE: no regression found/);
    const s = shadowsOf(r.summary)[0]!;
    const share = lineShare(r.events);
    process.stdout.write(`# pure noise with baseline: ${share.lines} printed lines over ${s.compared} pairs\n`);
    assert.ok(share.lines <= 0.02 * s.compared, `printed lines ${share.lines} over ${s.compared} pairs: ${share.noiseLines.slice(0, 20).join('; ')}`);
    assert.notEqual(s.verdict, 'regression');
  });

  test('splitting the route in two changes no verdict', async () => {
    const split = await run(yaml(urls, { candidate: 'c', baseline: true, split: true }), 50);
    assert.equal(split.summary.routes.length, 2);
    assert.deepEqual(verdicts(split.summary), verdicts(runs['baseline']!.summary));
  });

  test('without a baseline, applying what the summary suggests: recall 100%, noise ≤ 10% of printed lines', async () => {
    const first = await run(yaml(urls, { candidate: 'c' }), 6);
    const suggestions = shadowsOf(first.summary)[0]!.suggestions!;
    const before = lineShare(first.events);
    const recalled = PLANTED.filter((p) => reported(findingsOf(first.summary), p, ['regression', 'unverified', 'uncertain'])).length;
    process.stdout.write(`# without baseline, as is: recall ${recalled}/${PLANTED.length}, ${before.lines} printed lines, ${before.noise} noise\n`);
    const second = await run(yaml(urls, { candidate: 'c', extra: suggestions }), 6);
    const findings = findingsOf(second.summary);
    for (const p of PLANTED) {
      assert.ok(reported(findings, p, ['regression', 'unverified', 'uncertain']), `not reported: ${p.endpoint} ${p.kind} ${p.path}\n${JSON.stringify(findings, null, 1)}`);
    }
    const share = lineShare(second.events);
    process.stdout.write(`# without baseline, suggestions applied: ${share.lines} printed lines, ${share.noise} noise; suggested ${JSON.stringify(suggestions)}\n`);
    assert.ok(share.noise <= 0.1 * share.lines, `noise lines ${share.noise}/${share.lines}: ${share.noiseLines.slice(0, 20).join('; ')}`);
  });
});
