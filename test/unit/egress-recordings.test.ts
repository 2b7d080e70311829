/**
 * The recording store's pairing and bounds, and call differences, without
 * sockets: the n-th dark call pairs with the n-th live one; a waiting dark
 * call is released by its twin, by its wait, or by its group being dropped.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { callDifferences } from '../../src/egress/call-diff.js';
import { RecordingStore, type EgressCall } from '../../src/egress/recordings.js';
import { loadAllParsers } from '../../src/diff/parsers.js';

// Parsing here runs outside the comparing engine, which would load these first.
await loadAllParsers();

const call = (over: Partial<EgressCall> = {}): EgressCall => ({
  dependency: 'payments',
  method: 'POST',
  path: '/charges',
  query: '',
  targetPath: '/v1/charges',
  headers: { 'content-type': 'application/json' },
  body: Buffer.from('{"amount":1}'),
  time: Date.now(),
  ...over,
});
const answer = (n: number) => ({ status: 201, headers: {}, body: Buffer.from(`{"id":${n}}`) });
const limits = { maxBytes: 1024 * 1024, ttlMs: 60_000 };
const WALK = { maxNodes: 1000, maxDepth: 32 };

describe('recording store', () => {
  test('the n-th dark call pairs with the n-th live one', async () => {
    const store = new RecordingStore(() => limits);
    for (let n = 0; n < 3; n++) store.answered('r1', store.startLive('r1', call()), answer(n));
    const twins = [0, 1, 2, 3].map(() => store.dark('r1', call(), 1).twin);
    const got = await Promise.all(twins);
    assert.deepEqual(got.map((t) => t?.response?.body.toString()), ['{"id":0}', '{"id":1}', '{"id":2}', undefined]);
    store.close();
  });

  test('a dark call waits for its twin, and is released when it is answered', async () => {
    const store = new RecordingStore(() => limits);
    const { twin } = store.dark('r2', call(), 5000);
    const live = store.startLive('r2', call());
    setTimeout(() => store.answered('r2', live, answer(7)), 20);
    assert.equal((await twin)?.response?.status, 201);
    store.close();
  });

  test('dropping a group releases its waiting dark calls and counts its calls', async () => {
    const store = new RecordingStore(() => ({ maxBytes: 2000, ttlMs: 60_000 }));
    const { twin } = store.dark('old', call(), 5000);
    for (let i = 0; i < 20; i++) store.answered(`new-${i}`, store.startLive(`new-${i}`, call()), answer(i));
    assert.equal(await twin, undefined);
    assert.ok(store.bytes <= 2000);
    assert.ok(store.dropped >= 1);
    store.close();
  });

  test('groups older than timeouts.record go', () => {
    const store = new RecordingStore(() => ({ maxBytes: 1 << 20, ttlMs: 1000 }));
    store.answered('a', store.startLive('a', call()), answer(1));
    store.sweep(Date.now() + 2000);
    assert.equal(store.size, 0);
    assert.equal(store.dropped, 1);
    assert.equal(store.bytes, 0);
    store.close();
  });
});

describe('call differences', () => {
  test('query and body differences, ignoreBody, missing and extra calls', () => {
    const live = [
      call({ query: 'a=1&b=2', body: Buffer.from('{"amount":"10.00","key":"x"}') }),
      call({ dependency: 'mailer', path: '/send' }),
    ];
    const dark = [call({ query: 'b=2&a=1', body: Buffer.from('{"amount":"12.00","key":"y"}') }), call({ path: '/refunds' })];
    const found = callDifferences({ live, dark, baseline: [], ignoreBody: { payments: ["/key"] } }, WALK);
    const summary = found.map((d) => `${d.call.dependency} ${d.call.path} ${d.pointer} ${d.change}`);
    assert.deepEqual(summary.sort(), ['mailer /send  missing', 'payments /charges /amount value', 'payments /refunds  extra'].sort());
    const amount = found.find((d) => d.pointer === '/amount')!;
    assert.equal(amount.template, 'payments POST /charges /amount');
    assert.deepEqual([amount.primary, amount.shadow], ['10.00', '12.00']);
  });

  test('ignoreBody "" leaves the whole body out, of any format; the query is still compared', () => {
    const live = [call({ query: 'a=1', body: Buffer.from('{"amount":"10.00"}') }), call({ path: '/notes', headers: { 'content-type': 'text/plain' }, body: Buffer.from('one') })];
    const dark = [call({ query: 'a=2', body: Buffer.from('{"amount":"12.00","extra":true}') }), call({ path: '/notes', headers: { 'content-type': 'text/plain' }, body: Buffer.from('two') })];
    const found = callDifferences({ live, dark, baseline: [], ignoreBody: { payments: [''] } }, WALK);
    assert.deepEqual(found.map((d) => [d.call.path, d.pointer, d.primary, d.shadow]), [['/charges', '?', 'a=1', 'a=2']]);
    const unmasked = callDifferences({ live, dark, baseline: [], ignoreBody: {} }, WALK);
    assert.deepEqual(unmasked.map((d) => [d.call.path, d.pointer, d.change]), [
      ['/charges', '?', 'value'],
      ['/charges', '/amount', 'value'],
      ['/charges', '/extra', 'extra'],
      ['/notes', '', 'text'],
    ]);
  });

  test('a query that differs is one difference', () => {
    const found = callDifferences({ live: [call({ query: "a=1" })], dark: [call({ query: "a=2" })], baseline: [], ignoreBody: {} }, WALK);
    assert.deepEqual(found.map((d) => [d.pointer, d.primary, d.shadow]), [['?', 'a=1', 'a=2']]);
  });
});
