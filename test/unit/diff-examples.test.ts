/**
 * Example pairs: what the compare step keeps of a differing pair (bounded,
 * ignored members removed, credentials redacted, places marked), and the
 * store's bounds on how many it keeps.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import type { DiffConfig } from '../../src/config/types.js';
import { comparePair } from '../../src/diff/compare-pair.js';
import { ExampleSampler, ExampleStore, unpackExample } from '../../src/diff/examples.js';
import type { DiffEvent, PackedExample, PairExample } from '../../src/diff/types.js';
import type { CapturedResponse, MirroredPair, ShadowResult } from '../../src/diff/pair.js';
import { loadAllParsers } from '../../src/diff/parsers.js';

// Parsing here runs outside the comparing engine, which would load these first.
await loadAllParsers();

const reply = (body: unknown, headers: IncomingHttpHeaders = {}, status = 200): CapturedResponse => {
  const buffer = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: buffer, truncated: false, bodyBytes: buffer.length, latencyMs: 3 };
};
const completed = (r: CapturedResponse): ShadowResult => ({ outcome: 'completed', latencyMs: 4, status: r.status, response: r });

function mirrored(primary: CapturedResponse, shadow: ShadowResult, baseline?: CapturedResponse, diff: Partial<DiffConfig> = {}): MirroredPair {
  return {
    route: 'shop',
    diff: { enabled: true, ignoreHeaders: [], ignorePaths: [], baseline: undefined, maxBodyBytes: 1024 * 1024, endpoints: [], tolerance: [], unordered: [], latency: { maxRatio: 1.5 }, ...diff },
    method: 'GET',
    path: '/shop/1',
    requestId: 'req-1',
    time: new Date('2030-01-01T00:00:00Z'),
    primaryUpstream: 'v1',
    primary,
    shadows: [{ upstream: 'v2', result: shadow }],
    baseline: baseline ? { upstream: 'v1b', result: completed(baseline) } : undefined,
  };
}

function exampleOf(pair: MirroredPair): PairExample {
  const [outcome] = comparePair(pair).outcomes;
  assert.ok(outcome?.example, 'a differing pair has an example');
  return unpackExample(outcome.example);
}

describe('example pairs', () => {
  const headers: IncomingHttpHeaders = { 'set-cookie': ['sid=abc'], 'x-api-key': 'k-123', 'x-served-by': 'a' };

  test('both answers in full, ignored members removed, credentials redacted, places marked', () => {
    const example = exampleOf(
      mirrored(
        reply({ id: 1, price: 10, secret: 'p-1', meta: { nonce: 'a' } }, headers),
        completed(reply({ id: 1, price: 12, secret: 'p-2', meta: { nonce: 'b' } }, { ...headers, 'x-served-by': 'b' })),
        reply({ id: 1, price: 10, secret: 'p-3', meta: { nonce: 'c' } }, { ...headers, 'x-served-by': 'c' }),
        { ignorePaths: ['/secret'] },
      ),
    );
    assert.deepEqual(example.primary.body, { format: 'json', value: { id: 1, price: 10, meta: { nonce: 'a' } } });
    assert.deepEqual(example.shadow.body, { format: 'json', value: { id: 1, price: 12, meta: { nonce: 'b' } } });
    assert.equal(example.primary.status, 200);
    assert.equal(example.primary.headers['set-cookie'], '(redacted)');
    assert.equal(example.primary.headers['x-api-key'], '(redacted)');
    assert.equal(example.shadow.headers['x-served-by'], 'b');
    assert.deepEqual(example.differing.map((m) => [m.kind, m.path]), [['body', '/price']]);
    assert.deepEqual(example.noise.map((m) => [m.kind, m.path]).sort(), [['body', '/meta/nonce'], ['header', 'x-served-by']]);
    assert.ok(!JSON.stringify(example).includes('p-1') && !JSON.stringify(example).includes('k-123') && !JSON.stringify(example).includes('sid=abc'));
  });

  test('a large body is cut for the example; a failed copy says why', () => {
    const items = Array.from({ length: 5000 }, (_, i) => ({ i, name: `item ${i}` }));
    const big = exampleOf(mirrored(reply({ items }), completed(reply({ items: items.slice(1) }))));
    assert.equal(big.primary.body.format, 'text');
    assert.ok(big.primary.clipped);
    const text = big.primary.body.format === 'text' ? big.primary.body.text : '';
    assert.ok(text.length <= 32 * 1024 + 1, `${text.length} characters`);
    const failed = exampleOf(mirrored(reply({ a: 1 }), { outcome: 'timeout', latencyMs: 2000 }));
    assert.deepEqual(failed.shadow.body, { format: 'none', error: 'timed out' });
    assert.equal(failed.shadow.status, null);
  });

  test('the store keeps the recent ones and the latest of each finding, within its bounds', () => {
    const store = new ExampleStore({ recent: 3, findings: 2 });
    const event = (n: number): DiffEvent =>
      ({ id: `b-${n}`, route: 'shop', shadow: { upstream: 'v2' } }) as unknown as DiffEvent;
    const example = (template: string): PackedExample =>
      ({ differing: [{ kind: 'body', path: template.replace('*', '0'), template }], noise: [], json: '{}' }) as PackedExample;
    for (let n = 1; n <= 10; n++) {
      const template = `/f${n % 4}/*`;
      store.keep(event(n), example(template));
      assert.ok(store.size <= 5, `${store.size} kept after ${n}`);
    }
    // The two findings first seen keep their latest example; later ones found no room.
    assert.equal(store.forFinding('shop', 'v2', 'body', '/f1/*')?.event.id, 'b-9');
    assert.equal(store.forFinding('shop', 'v2', 'body', '/f2/*')?.event.id, 'b-10');
    assert.equal(store.forFinding('shop', 'v2', 'body', '/f3/*'), undefined);
    assert.equal(store.get('b-1'), undefined);
    for (const id of ['b-8', 'b-9', 'b-10']) assert.ok(store.get(id), id);
    assert.equal(store.size, 3);
  });

  test('the store holds at most maxBytes of examples, as UTF-8: the oldest recent ones go first, then the oldest findings, never the newest', () => {
    const store = new ExampleStore({ recent: 10, findings: 10, maxBytes: 10_000 });
    const event = (n: number): DiffEvent => ({ id: `c-${n}`, route: 'shop', shadow: { upstream: 'v2' } }) as unknown as DiffEvent;
    // About 3,000 characters, two bytes each as a V8 string once "…" is in it; about 3 KB as UTF-8.
    const example = (n: number, template?: string): PackedExample =>
      ({ differing: template ? [{ kind: 'body', path: template, template }] : [], noise: [], json: JSON.stringify({ n, text: 'x'.repeat(2_986) + '…' }) }) as PackedExample;
    const size = Buffer.byteLength(example(1).json);
    assert.ok(size > 3_000 && size < 3_100, `${size} bytes`);
    store.keep(event(1), example(1, '/a'));
    store.keep(event(2), example(2));
    store.keep(event(3), example(3));
    assert.equal(store.bytes, 3 * size);
    assert.deepEqual((store.get('c-2')?.example as unknown as { n: number }).n, 2, 'kept as bytes, read back as the example');
    store.keep(event(4), example(4));
    assert.ok(store.bytes <= 10_000, `${store.bytes} bytes`);
    // The oldest recent example went; c-1, older, stays: its finding holds it.
    assert.equal(store.get('c-2'), undefined);
    assert.ok(store.get('c-1') && store.get('c-3') && store.get('c-4'));
    store.keep(event(5), example(5, '/b'));
    store.keep(event(6), example(6, '/c'));
    store.keep(event(7), example(7, '/d'));
    assert.ok(store.bytes <= 10_000, `${store.bytes} bytes`);
    // No recent example left to drop but the newest: the oldest finding gave its example up.
    assert.equal(store.forFinding('shop', 'v2', 'body', '/a'), undefined);
    assert.equal(store.get('c-1'), undefined);
    assert.deepEqual(['/b', '/c', '/d'].map((t) => store.forFinding('shop', 'v2', 'body', t)?.event.id), ['c-5', 'c-6', 'c-7']);
    // One example over the bound on its own is still kept: the newest always is.
    store.keep(event(8), { differing: [], noise: [], json: JSON.stringify('y'.repeat(20_000)) } as PackedExample);
    assert.ok(store.get('c-8'));
    assert.equal(store.size, 1);
    assert.equal(store.bytes, 20_002);
  });

  test('a finding seen only as noise has the pair where it was masked; a real difference is never replaced by noise', () => {
    const store = new ExampleStore({ recent: 1, findings: 10 });
    const event = (id: string) => ({ id, route: 'shop', shadow: { upstream: 'v2' } }) as unknown as DiffEvent;
    const mark = (template: string) => ({ kind: 'body' as const, path: template, template });
    store.keep(event('e-1'), { differing: [mark('/price')], noise: [mark('/nonce')], json: '{}' } as PackedExample);
    store.keep(event('e-2'), { differing: [mark('/name')], noise: [mark('/nonce'), mark('/price')], json: '{}' } as PackedExample);
    assert.equal(store.forFinding('shop', 'v2', 'body', '/nonce')?.event.id, 'e-2');
    assert.equal(store.forFinding('shop', 'v2', 'body', '/price')?.event.id, 'e-1');
    assert.equal(store.forFinding('shop', 'v2', 'body', '/name')?.event.id, 'e-2');
    assert.equal(store.size, 2);
  });

  test('examples are sampled: a new finding at once, a known one renewed after refreshMs, others within perSecond', () => {
    const sampler = new ExampleSampler({ perSecond: 2, refreshMs: 10_000, maxFindings: 2 });
    const mark = (template: string) => ({ kind: 'body' as const, path: template, template });
    const wants = (template: string, at: number) => sampler.wants('shop', 'v2', [mark(template)], at);
    // A second's worth of the same finding: its first, then two recent ones, then none.
    const made = [0, 100, 200, 300, 400, 500].map((at) => wants('/price', at));
    assert.deepEqual(made, [true, true, true, false, false, false]);
    // A finding never seen is made though the recent allowance is spent.
    assert.equal(wants('/name', 600), true);
    // The allowance refills with time; the finding is renewed once refreshMs passed.
    assert.equal(wants('/price', 1_600), true);
    assert.equal(wants('/price', 12_000), true);
    // Past maxFindings the oldest is forgotten, so it counts as new again.
    assert.equal(wants('/sku', 12_001), true);
    sampler.wants('shop', 'v2', [mark('/price')], 12_002);
    assert.equal(wants('/name', 12_003), true, 'forgotten, so new');
    // Another route or shadow target is another finding.
    assert.equal(sampler.wants('shop', 'v3', [mark('/price')], 12_004), true);
  });
});
