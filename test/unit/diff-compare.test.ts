/**
 * Comparison, table-driven: JSON structure, arrays, type changes, text,
 * binary, content encodings, ignore rules, noise masking, redaction and the
 * bounds on work and stored values.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import zlib from 'node:zlib';
import { compareJson, type RawDifference } from '../../src/diff/compare.js';
import { comparePair, DEFAULT_COMPARE_SETTINGS, type CompareSettings } from '../../src/diff/compare-pair.js';
import { unpackExample } from '../../src/diff/examples.js';
import { compareHeaders, ignoredHeaders } from '../../src/diff/headers.js';
import { LearnedNoise } from '../../src/diff/noise.js';
import { IgnoreRules } from '../../src/diff/paths.js';
import type { DiffConfig } from '../../src/config/types.js';
import type { CapturedResponse, MirroredPair, ShadowResult } from '../../src/diff/pair.js';
import { loadAllParsers } from '../../src/diff/parsers.js';

// Parsing here runs outside the comparing engine, which would load these first.
await loadAllParsers();

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);
const LIMITS = { maxNodes: 10_000, maxDepth: 64 };
const brief = (d: RawDifference) => [d.pointer, d.change, d.primary, d.shadow];

describe('structural JSON comparison', () => {
  const cases: { name: string; a: unknown; b: unknown; want: unknown[][]; ignore?: string[]; templates?: string[] }[] = [
    { name: 'equal documents, other key order', a: { x: 1, y: { z: [1, 2] } }, b: { y: { z: [1, 2] }, x: 1 }, want: [] },
    { name: 'nested value change', a: { a: { b: { c: 1 } } }, b: { a: { b: { c: 2 } } }, want: [['/a/b/c', 'value', 1, 2]] },
    {
      name: 'array elements by index, with a template',
      a: { items: [{ qty: 1 }, { qty: 2 }] },
      b: { items: [{ qty: 1 }, { qty: 3 }] },
      want: [['/items/1/qty', 'value', 2, 3]],
      templates: ['/items/*/qty'],
    },
    {
      name: 'shadow array shorter: missing elements',
      a: [1, 2, 3],
      b: [1],
      want: [
        ['/1', 'missing', 2, undefined],
        ['/2', 'missing', 3, undefined],
      ],
    },
    { name: 'shadow array longer: extra elements', a: [1], b: [1, { n: 2 }], want: [['/1', 'extra', undefined, { n: 2 }]] },
    { name: 'type change: number to string', a: { n: 1 }, b: { n: '1' }, want: [['/n', 'type', 1, '1']] },
    { name: 'type change: object to null', a: { o: { k: 1 } }, b: { o: null }, want: [['/o', 'type', { k: 1 }, null]] },
    { name: 'type change: array to object', a: { v: [] }, b: { v: {} }, want: [['/v', 'type', [], {}]] },
    { name: 'missing and extra members', a: { a: 1, b: 2 }, b: { b: 2, c: 3 }, want: [['/a', 'missing', 1, undefined], ['/c', 'extra', undefined, 3]] },
    { name: 'reordered array is one order difference', a: { t: ['x', 'y', 'z'] }, b: { t: ['z', 'x', 'y'] }, want: [['/t', 'order', ['x', 'y', 'z'], ['z', 'x', 'y']]] },
    { name: 'pointer escaping of ~ and /', a: { 'a/b': { 'm~n': 1 } }, b: { 'a/b': { 'm~n': 2 } }, want: [['/a~1b/m~0n', 'value', 1, 2]] },
    { name: 'top-level scalars', a: 'x', b: 'y', want: [['', 'value', 'x', 'y']] },
    {
      name: 'ignore rule with * skips one segment of any array element',
      a: { items: [{ at: 1, q: 1 }, { at: 2, q: 1 }] },
      b: { items: [{ at: 9, q: 1 }, { at: 8, q: 2 }] },
      ignore: ['/items/*/at'],
      want: [['/items/1/q', 'value', 1, 2]],
    },
    {
      name: 'ignore rule covers the whole subtree below it',
      a: { meta: { id: 1, deep: { x: 1 } }, v: 1 },
      b: { meta: { id: 2, deep: { x: 2 } }, v: 1 },
      ignore: ['/meta'],
      want: [],
    },
    {
      name: '* matches exactly one segment, not more',
      a: { a: { b: { c: 1 } } },
      b: { a: { b: { c: 2 } } },
      ignore: ['/*/c'],
      want: [['/a/b/c', 'value', 1, 2]],
    },
    { name: 'ignored member missing on one side is not a difference', a: { id: 1, v: 1 }, b: { v: 1 }, ignore: ['/id'], want: [] },
    { name: 'the empty pointer is the whole document', a: { a: 1, b: [1] }, b: { a: 2, c: 'x' }, ignore: [''], want: [] },
    { name: 'the empty pointer ignores a change of type at the root too', a: { a: 1 }, b: [1], ignore: [''], want: [] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const result = compareJson(c.a, c.b, new IgnoreRules(c.ignore ?? []), LIMITS);
      assert.deepEqual(result.differences.map(brief), c.want);
      if (c.templates) assert.deepEqual(result.differences.map((d) => d.template), c.templates);
      assert.equal(result.limited, undefined);
    });
  }

  test('map-like objects (id keys) collapse to * in templates, not in pointers', () => {
    const a = { users: { '12345': { name: 'a' }, '67890': { name: 'b' } } };
    const b = { users: { '12345': { name: 'A' }, '67890': { name: 'b' } } };
    const [d] = compareJson(a, b, new IgnoreRules([]), LIMITS).differences;
    assert.equal(d!.pointer, '/users/12345/name');
    assert.equal(d!.template, '/users/*/name');
  });

  test('the node budget stops the walk and says so', () => {
    const a = Array.from({ length: 1000 }, (_, i) => ({ i }));
    const b = Array.from({ length: 1000 }, (_, i) => ({ i: i + 1 }));
    const result = compareJson(a, b, new IgnoreRules([]), { maxNodes: 100, maxDepth: 64 });
    assert.equal(result.limited, 'nodes');
    assert.ok(result.differences.length < 100);
  });

  test('the depth limit stops the walk and says so', () => {
    let a: unknown = 1;
    let b: unknown = 2;
    for (let i = 0; i < 100; i++) {
      a = [a];
      b = [b];
    }
    const result = compareJson(a, b, new IgnoreRules([]), { maxNodes: 10_000, maxDepth: 10 });
    assert.equal(result.limited, 'depth');
  });
});

// ---- whole pairs ----------------------------------------------------------

const DIFF: DiffConfig = { enabled: true, ignoreHeaders: [], ignorePaths: [], baseline: undefined, maxBodyBytes: 1024 * 1024, endpoints: [], tolerance: [], unordered: [], latency: { maxRatio: 1.5 } };

function response(body: string | Buffer, headers: IncomingHttpHeaders = { 'content-type': 'application/json' }, status = 200): CapturedResponse {
  const buffer = typeof body === 'string' ? Buffer.from(body) : body;
  return { status, headers, body: buffer, truncated: false, bodyBytes: buffer.length, latencyMs: 5 };
}

const answered = (r: CapturedResponse): ShadowResult => ({ outcome: 'completed', latencyMs: r.latencyMs, status: r.status, response: r });

function pair(primary: CapturedResponse, shadow: ShadowResult | CapturedResponse, options: { diff?: Partial<DiffConfig>; baseline?: CapturedResponse | ShadowResult } = {}): MirroredPair {
  const asResult = (r: ShadowResult | CapturedResponse): ShadowResult => ('outcome' in r ? r : answered(r));
  return {
    route: 'shop',
    diff: { ...DIFF, ...options.diff },
    method: 'GET',
    path: '/shop/items?token=abc&page=2',
    requestId: 'req-1',
    time: new Date('2030-01-01T00:00:00Z'),
    primaryUpstream: 'v1',
    primary,
    shadows: [{ upstream: 'v3', result: asResult(shadow) }],
    baseline: options.baseline ? { upstream: 'v1b', result: asResult(options.baseline) } : undefined,
  };
}

function only(p: MirroredPair, settings?: CompareSettings) {
  const result = comparePair(p, settings);
  assert.equal(result.outcomes.length, 1);
  return result.outcomes[0]!;
}

const diffsOf = (p: MirroredPair) => (only(p).event?.differences ?? []).map((d) => [d.kind, d.path, d.primary, d.shadow]);

describe('comparing mirrored pairs', () => {
  const json = { items: [{ sku: 'a', qty: 1 }], total: 10 };
  const text = JSON.stringify(json);

  const cases: { name: string; primary: CapturedResponse; shadow: CapturedResponse; want: unknown[][]; diff?: Partial<DiffConfig> }[] = [
    { name: 'identical JSON', primary: response(text), shadow: response(text), want: [] },
    {
      name: 'gzip shadow against plain primary: equal',
      primary: response(text),
      shadow: response(zlib.gzipSync(text), { 'content-type': 'application/json', 'content-encoding': 'gzip' }),
      want: [],
    },
    {
      name: 'br and deflate decode too',
      primary: response(zlib.brotliCompressSync(text), { 'content-type': 'application/json', 'content-encoding': 'br' }),
      shadow: response(zlib.deflateSync(text), { 'content-type': 'application/json', 'content-encoding': 'deflate' }),
      want: [],
    },
    {
      name: 'gzip body with a changed field',
      primary: response(text),
      shadow: response(zlib.gzipSync(JSON.stringify({ ...json, total: 11 })), { 'content-type': 'application/json', 'content-encoding': 'gzip' }),
      want: [['body', '/total', 10, 11]],
    },
    { name: 'status', primary: response(text), shadow: response(text, undefined, 500), want: [['status', 'status', 200, 500]] },
    {
      name: 'text bodies: the differing line',
      primary: response('line one\nline two\nline three\n', { 'content-type': 'text/plain' }),
      shadow: response('line one\nline 2\nline three\n', { 'content-type': 'text/plain' }),
      want: [['body', '', 'line two', 'line 2']],
    },
    {
      name: 'binary bodies: length and hash',
      primary: response(Buffer.from([0, 1, 2, 3]), { 'content-type': 'application/octet-stream' }),
      shadow: response(Buffer.from([0, 1, 2, 4, 5]), { 'content-type': 'application/octet-stream' }),
      want: [
        [
          'body',
          '',
          `4 bytes, sha256 ${sha256(Buffer.from([0, 1, 2, 3]))}`,
          `5 bytes, sha256 ${sha256(Buffer.from([0, 1, 2, 4, 5]))}`,
        ],
      ],
    },
    {
      name: 'JSON that does not parse is still compared, as text',
      primary: response('{"a": 1'),
      shadow: response('{"a": 2'),
      want: [['body', '', '{"a": 1', '{"a": 2']],
    },
    {
      name: 'JSON against an HTML error page: one type difference, plus the header',
      primary: response('{"a":1}'),
      shadow: response('<html>oops</html>', { 'content-type': 'text/html' }),
      want: [
        ['header', 'content-type', 'application/json', 'text/html'],
        ['body', '', { a: 1 }, '<html>oops</html>'],
      ],
    },
    {
      name: 'body present against empty',
      primary: response('{"a":1}'),
      shadow: response('', { 'content-type': 'application/json' }),
      want: [['body', '', { a: 1 }, null]],
    },
    {
      name: 'built-in noisy headers are not compared; others are',
      primary: response(text, { 'content-type': 'application/json', date: 'Mon', 'x-request-id': 'a', 'server-timing': 'db;dur=1', 'x-v': '1' }),
      shadow: response(text, { 'content-type': 'application/json', date: 'Tue', 'x-request-id': 'b', 'server-timing': 'db;dur=9', 'x-v': '2' }),
      want: [['header', 'x-v', '1', '2']],
    },
    {
      name: "the route's ignoreHeaders and ignorePaths",
      primary: response('{"id":"a","v":[{"at":1,"n":1}]}', { 'content-type': 'application/json', etag: '"1"' }),
      shadow: response('{"id":"b","v":[{"at":2,"n":2}]}', { 'content-type': 'application/json', etag: '"2"' }),
      diff: { ignoreHeaders: ['etag'], ignorePaths: ['/id', '/v/*/at'] },
      want: [['body', '/v/0/n', 1, 2]],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(diffsOf(pair(c.primary, c.shadow, c.diff ? { diff: c.diff } : {})), c.want);
    });
  }

  test('an event carries sides, counts, template and a redacted path', () => {
    const outcome = only(pair(response(text), response(JSON.stringify({ ...json, items: [{ sku: 'a', qty: 2 }] }))));
    const event = outcome.event!;
    assert.equal(event.route, 'shop');
    assert.equal(event.method, 'GET');
    assert.equal(event.path, '/shop/items?token=(redacted)&page=2');
    assert.equal(event.requestId, 'req-1');
    assert.equal(event.time, '2030-01-01T00:00:00.000Z');
    assert.deepEqual(event.primary, { upstream: 'v1', status: 200, latencyMs: 5, bytes: text.length });
    assert.equal(event.shadow.upstream, 'v3');
    assert.deepEqual(event.differences, [
      { kind: 'body', path: '/items/0/qty', endpoint: '/shop/items', template: '/items/*/qty', change: 'value', primary: 1, shadow: 2 },
    ]);
    assert.equal(event.differenceCount, 1);
    assert.equal(event.noise, 0);
    assert.equal(event.truncated, false);
    assert.equal(outcome.counts.compared, 1);
    assert.equal(outcome.counts.differing, 1);
    assert.deepEqual(outcome.counts.kinds, { status: 0, header: 0, body: 1, error: 0, call: 0, latency: 0 });
    assert.deepEqual(outcome.counts.paths, [{ kind: 'body', path: '/items/*/qty', differing: 1, noise: 0, masked: 0, raw: 1, example: 'req-1' }]);
    assert.deepEqual(JSON.parse(JSON.stringify(outcome)), outcome, 'outcomes are plain JSON');
  });

  test('a latency measured across a long stall of the measuring thread gives no latency sample; the pair is still compared', () => {
    const slow = (stalledMs: number): CapturedResponse => ({ ...response(text), latencyMs: 100, stalledMs });
    const sampleOf = (r: CapturedResponse) => only(pair(response(text), r)).counts.endpoints?.[0]?.latency.sample;
    assert.deepEqual(sampleOf(slow(5)), { primaryMs: 5, shadowMs: 100 });
    assert.equal(sampleOf(slow(40)), undefined);
    const stalled = only(pair(response(text), slow(40)));
    assert.equal(stalled.counts.compared, 1);
    // A baseline measured across a stall spoils the sample too: its ratio is part of it.
    assert.equal(only(pair(response(text), response(text), { baseline: slow(40) })).counts.endpoints?.[0]?.latency.sample, undefined);
  });

  test('a matching pair yields counts and no event', () => {
    const outcome = only(pair(response(text), response(text)));
    assert.equal(outcome.event, undefined);
    assert.equal(outcome.counts.compared, 1);
    assert.equal(outcome.counts.differing, 0);
  });

  test('a shadow that failed while the primary answered is an error difference', () => {
    const failed: ShadowResult = { outcome: 'timeout', latencyMs: 10_000, error: 'timed out after 10000ms' };
    const event = only(pair(response(text), failed)).event!;
    assert.deepEqual(event.shadow, { upstream: 'v3', status: null, latencyMs: 10_000, error: 'timed out after 10000ms' });
    assert.deepEqual(
      event.differences.map((d) => [d.kind, d.path, d.primary, d.shadow]),
      [['error', 'error', 200, 'timed out after 10000ms']],
    );
  });

  test('secrets: credential header values and values under ignored paths are never stored', () => {
    const p = response('{"user":{"name":"a","password":"hunter2"}}', {
      'content-type': 'application/json',
      'set-cookie': ['sid=secret1; HttpOnly'],
      'x-auth-token': 'tok-1',
    });
    const s = response('{"user":null}', { 'content-type': 'application/json', 'set-cookie': ['other=secret2'], 'x-auth-token': 'tok-2' });
    const event = only(pair(p, s, { diff: { ignorePaths: ['/user/password'] } })).event!;
    const stored = JSON.stringify(event);
    for (const secret of ['hunter2', 'secret1', 'secret2', 'tok-1', 'tok-2']) assert.ok(!stored.includes(secret), `${secret} stored`);
    assert.deepEqual(
      event.differences.map((d) => [d.kind, d.path, d.primary, d.shadow]),
      [
        ['header', 'set-cookie', 'sid', 'other'],
        ['header', 'x-auth-token', '(redacted)', '(redacted)'],
        ['body', '/user', { name: 'a' }, null],
      ],
    );
  });

  test('stored values are clipped; differences listed up to the limit, all counted', () => {
    const long = 'x'.repeat(10_000);
    const a = { s: long, list: Array.from({ length: 200 }, (_, i) => i) };
    const b = { s: long + 'y', list: Array.from({ length: 200 }, (_, i) => -i - 1) };
    const outcome = only(pair(response(JSON.stringify(a)), response(JSON.stringify(b))), { ...DEFAULT_COMPARE_SETTINGS, maxListed: 10 });
    const event = outcome.event!;
    assert.equal(event.differences.length, 10);
    assert.equal(event.differenceCount, 201);
    const first = event.differences[0]!;
    assert.equal(first.path, '/s');
    assert.equal(first.clipped, true);
    assert.ok((first.primary as string).length <= DEFAULT_COMPARE_SETTINGS.maxValueChars + 1);
    assert.ok(JSON.stringify(event).length < 20_000);
    // One template for the whole list.
    assert.deepEqual(
      outcome.counts.paths.map((p) => p.path),
      ['/s', '/list/*'],
    );
  });

  test('answers past the capture limit are compared by length and whole-body hash, never parsed', () => {
    const full = JSON.stringify({ a: 'x'.repeat(100), b: 1 });
    const other = JSON.stringify({ a: 'x'.repeat(100), b: 2 });
    const sha = (text: string) => createHash('sha256').update(text).digest('hex');
    // The same 50-byte prefix on both sides: only the hash of the whole body tells them apart.
    const cut = (text: string) => ({ ...response(text.slice(0, 50)), truncated: true, bodyBytes: text.length, sha256: sha(text) });
    assert.equal(only(pair(cut(full), cut(full))).event, undefined);
    const event = only(pair(cut(full), cut(other))).event!;
    assert.equal(event.truncated, true);
    assert.equal(event.differences.length, 1);
    const body = event.differences[0]!;
    assert.equal(body.kind, 'body');
    assert.equal(body.change, 'binary');
    assert.equal(body.primary, `${full.length} bytes, sha256 ${sha(full).slice(0, 16)}`);
    assert.match(body.note ?? '', /compared by length and SHA-256 of the whole body, not parsed/);
    // One side complete, the other past the limit: compared the same way, not as JSON.
    const mixed = only(pair(cut(full), response(full))).event;
    assert.equal(mixed, undefined);
  });

  test('a body that cannot be decoded is compared raw, with the reason', () => {
    const bad = response(Buffer.from('definitely not gzip'), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    const event = only(pair(response('{"a":1}'), bad)).event!;
    const body = event.differences.find((d) => d.kind === 'body')!;
    assert.equal(body.change, 'type');
    assert.match(body.note ?? '', /shadow: cannot decode gzip/);
  });
});

describe('noise, against a baseline', () => {
  const doc = (id: string, ts: number, price: number) => JSON.stringify({ id, ts, item: { price } });

  test('paths that differ between primary and baseline are masked; a real change is kept', () => {
    const p = pair(response(doc('a', 1, 10)), response(doc('c', 3, 11)), { baseline: response(doc('b', 2, 10)) });
    const result = comparePair(p);
    const outcome = result.outcomes[0]!;
    assert.deepEqual(
      outcome.event!.differences.map((d) => d.path),
      ['/item/price'],
    );
    assert.equal(outcome.event!.noise, 2);
    assert.equal(outcome.event!.baseline?.upstream, 'v1b');
    assert.deepEqual(
      result.noise?.map((n) => n.template),
      ['/id', '/ts'],
    );
    const byPath = Object.fromEntries(outcome.counts.paths.map((x) => [x.path, x]));
    assert.deepEqual(byPath['/id'], { kind: 'body', path: '/id', differing: 0, noise: 1, masked: 1, raw: 1 });
    assert.deepEqual(byPath['/item/price'], { kind: 'body', path: '/item/price', differing: 1, noise: 0, masked: 0, raw: 1, example: 'req-1' });
    assert.equal(outcome.counts.baselined, 1);
  });

  test('only noise: no event', () => {
    const p = pair(response(doc('a', 1, 10)), response(doc('c', 3, 10)), { baseline: response(doc('b', 2, 10)) });
    assert.equal(comparePair(p).outcomes[0]!.event, undefined);
  });

  test('a noisy parent masks differences below it', () => {
    const p = pair(response('{"meta":{"a":1}}'), response('{"meta":{"a":2}}'), { baseline: response('{"meta":null}') });
    assert.equal(comparePair(p).outcomes[0]!.event, undefined);
  });

  test('learned noise masks a path even when primary and baseline agree once', () => {
    const p = pair(response(doc('a', 1, 10)), response(doc('a', 2, 10)), { baseline: response(doc('a', 1, 10)) });
    const model = new LearnedNoise();
    const endpoint = { endpoint: '/e' };
    for (let i = 0; i < 5; i++) model.observe(p.route, '/e', 'baseline', [{ kind: 'body', template: '/ts', change: 'value' }], []);
    assert.equal(comparePair(p, DEFAULT_COMPARE_SETTINGS, model, endpoint).outcomes[0]!.event, undefined);
    assert.ok(comparePair(p).outcomes[0]!.event, 'without the model it is reported');
  });

  test('a baseline that failed too masks the shadow failure', () => {
    const failed: ShadowResult = { outcome: 'error', latencyMs: 1, error: 'ECONNREFUSED' };
    const p = pair(response('{}'), failed, { baseline: failed });
    const outcome = comparePair(p).outcomes[0]!;
    assert.equal(outcome.event, undefined);
    assert.equal(outcome.counts.noiseMasked, 1);
  });
});

describe('large JSON answers (the primary\'s parts deferred)', () => {
  const body = (generated: number, change: (item: Record<string, unknown>) => void = () => {}, indent?: number) => {
    const items = Array.from({ length: 1500 }, (_, i) => ({ id: i, name: `item-${i}`, price: i, tags: ['a', 'b'], stock: { w: `w${i % 7}`, n: i % 50 } }));
    for (const item of items) change(item);
    return JSON.stringify({ generated, items, total: items.length }, null, indent);
  };

  test('two shadows and a baseline find what they find on whole parses, and examples hold plain bodies', () => {
    const primaryText = body(1);
    assert.ok(primaryText.length > 100_000, 'large enough to be split');
    const onePrice = body(2, (item) => {
      if (item.id === 700) item.price = 7001;
    });
    const reindented = body(3, (item) => {
      if (item.id === 5) item.name = 'renamed';
    }, 1);
    const base = pair(response(primaryText), response(onePrice), { baseline: response(body(4)) });
    const p: MirroredPair = { ...base, shadows: [...base.shadows, { upstream: 'v4', result: answered(response(reindented)) }] };
    const outcomes = comparePair(p).outcomes;
    assert.equal(outcomes.length, 2);
    const found = outcomes.map((o) => (o.event?.differences ?? []).map((d) => [d.path, d.primary, d.shadow]));
    // /generated differs on the baseline too: noise, masked.
    assert.deepEqual(found, [[['/items/700/price', 700, 7001]], [['/items/5/name', 'item-5', 'renamed']]]);
    for (const outcome of outcomes) {
      const example = unpackExample(outcome.example!);
      const shown = example.primary.body as { format: string; text?: string };
      assert.equal(shown.format, 'text', 'a body past 32 K characters is shown clipped');
      assert.ok(shown.text!.startsWith(primaryText.slice(0, 1000)), 'the primary as it was sent, not its parsed parts');
    }
  });
});

describe('headers', () => {
  test('set-cookie compares cookie names only; repeated values are joined', () => {
    const ignored = ignoredHeaders([]);
    assert.deepEqual(compareHeaders({ 'set-cookie': ['a=1', 'b=2'] }, { 'set-cookie': ['b=3', 'a=4'] }, ignored), []);
    assert.deepEqual(
      compareHeaders({ vary: 'accept' }, {}, ignored).map((d) => [d.pointer, d.change, d.primary, d.shadow]),
      [['vary', 'missing', 'accept', undefined]],
    );
  });
});
