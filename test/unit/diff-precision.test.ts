/**
 * Diff precision, piece by piece: endpoint templates and their bound,
 * tolerances, unordered arrays, HTML node paths, ignore entries that can
 * never match, latency statistics, and a summary a person can decide from.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DiffConfig } from '../../src/config/types.js';
import { ignoreEntryProblem } from '../../src/config/validate.js';
import { compareJson, valueRulesFor, type RawDifference } from '../../src/diff/compare.js';
import { comparePair } from '../../src/diff/compare-pair.js';
import { CountsTable } from '../../src/diff/counts.js';
import { EndpointBook, EndpointTemplates, inferEndpoint, OTHER_ENDPOINT } from '../../src/diff/endpoint-template.js';
import { compareHtml, NodeRules, parseHtml } from '../../src/diff/html.js';
import { IgnoreRules } from '../../src/diff/paths.js';
import { addLog, compareLatency, mergeLog, quantileInterval, type LogHistogram } from '../../src/diff/stats.js';
import { describeCounts, mergeSummaries } from '../../src/diff/summary.js';
import type { CapturedResponse, MirroredPair } from '../../src/diff/pair.js';
import { loadAllParsers } from '../../src/diff/parsers.js';

// Parsing here runs outside the comparing engine, which would load these first.
await loadAllParsers();

const LIMITS = { maxNodes: 10_000, maxDepth: 64 };
const brief = (d: RawDifference) => [d.pointer, d.template, d.change];
const DIFF: DiffConfig = {
  enabled: true,
  ignoreHeaders: [],
  ignorePaths: [],
  baseline: undefined,
  maxBodyBytes: 1024 * 1024,
  endpoints: [],
  tolerance: [],
  unordered: [],
  latency: { maxRatio: 1.5 },
};

describe('endpoint templates', () => {
  const cases: [string, string][] = [
    ['/api/products/42', '/api/products/{id}'],
    ['/api/products/42?page=2', '/api/products/{id}'],
    ['/api/users/6f1c2b9e-1d2c-4e3f-8a9b-0c1d2e3f4a5b/orders', '/api/users/{id}/orders'],
    ['/blobs/a3f9c2d4e5b6a7f8', '/blobs/{id}'],
    ['/s/Zx9kQ2pLm4Rt7Vw1Yb', '/s/{id}'],
    ['/api/inventory/sku-004211', '/api/inventory/{id}'],
    ['/api/v2/search', '/api/v2/search'],
    ['/', '/'],
    ['/a/b/c/d/e/f/g/h/i/j', '/a/b/c/d/e/f/g/h/{…}'],
  ];
  for (const [path, want] of cases) test(`${path} → ${want}`, () => assert.equal(inferEndpoint(path), want));

  test('configured templates come first; other paths are inferred', () => {
    const t = new EndpointTemplates(['/api/items/{sku}', '/api/items/featured']);
    assert.equal(t.endpointOf('/api/items/red-shirt'), '/api/items/{sku}');
    assert.equal(t.endpointOf('/api/items/featured'), '/api/items/{sku}', 'first match wins');
    assert.equal(t.endpointOf('/api/items/red-shirt/reviews'), '/api/items/red-shirt/reviews');
  });

  test('a flood of odd paths is bounded per route', () => {
    const book = new EndpointBook(5);
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(book.admit('r', inferEndpoint(`/odd-${i.toString(36)}x/thing`)));
    assert.equal(seen.size, 6);
    assert.ok(seen.has(OTHER_ENDPOINT));
    assert.equal(book.admit('other-route', '/x'), '/x', 'per route');
  });

  test('the summary keeps at most its endpoint limit, the rest under (other)', () => {
    const table = new CountsTable('r', 's', 100, 3);
    for (let i = 0; i < 10; i++) {
      const counts = comparePair(mirrored('{"a":1}', '{"a":2}'), undefined, undefined, { endpoint: `/e${i}` }).outcomes[0]!.counts;
      table.add(counts);
    }
    const names = table.counts.endpoints!.map((e) => e.endpoint);
    assert.deepEqual(names, ['/e0', '/e1', OTHER_ENDPOINT]);
    assert.equal(table.counts.endpoints!.reduce((n, e) => n + e.compared, 0), 10);
  });
});

describe('tolerances and unordered arrays', () => {
  const rules = (diff: Partial<DiffConfig>) => valueRulesFor({ ...DIFF, ...diff });
  const none = new IgnoreRules([]);

  test('relative by default, absolute on request, per pointer with *', () => {
    const values = rules({
      tolerance: [
        { path: '/rating', mode: 'relative', value: 0.01 },
        { path: '/items/*/price', mode: 'absolute', value: 0.005 },
      ],
    });
    const a = { rating: 4.5, items: [{ price: 1.0 }, { price: 2.0 }], other: 1.0 };
    const b = { rating: 4.52, items: [{ price: 1.004 }, { price: 2.01 }], other: 1.0001 };
    assert.deepEqual(compareJson(a, b, none, LIMITS, values).differences.map(brief), [
      ['/items/1/price', '/items/*/price', 'value'],
      ['/other', '/other', 'value'],
    ]);
    assert.deepEqual(compareJson({ rating: 4.5 }, { rating: 4.6 }, none, LIMITS, values).differences.map(brief), [['/rating', '/rating', 'value']]);
  });

  test('an unordered array is a multiset: order is no difference, contents are', () => {
    const values = rules({ unordered: ['/tags', '/items/*/labels'] });
    assert.deepEqual(compareJson({ tags: ['a', 'b', 'c'] }, { tags: ['c', 'a', 'b'] }, none, LIMITS, values).differences, []);
    assert.deepEqual(
      compareJson({ tags: ['a', 'b', 'b'] }, { tags: ['b', 'c', 'a'] }, none, LIMITS, values).differences.map((d) => [d.pointer, d.template, d.change, d.primary ?? d.shadow]),
      [
        ['/tags/2', '/tags/*', 'missing', 'b'],
        ['/tags/1', '/tags/*', 'extra', 'c'],
      ],
    );
    const nested = compareJson({ items: [{ labels: [{ k: 1 }, { k: 2 }] }] }, { items: [{ labels: [{ k: 2 }, { k: 1 }] }] }, none, LIMITS, values);
    assert.deepEqual(nested.differences, []);
    assert.deepEqual(compareJson({ other: [1, 2] }, { other: [2, 1] }, none, LIMITS, values).differences.map(brief), [['/other', '/other', 'order']]);
  });

  test('arrays the noise only reorders are compared as sets', () => {
    const values = { ...rules({}), learnedUnordered: new Set(['/recs']) };
    assert.deepEqual(compareJson({ recs: [1, 2, 3] }, { recs: [3, 1, 2] }, none, LIMITS, values).differences, []);
    assert.deepEqual(compareJson({ recs: [1, 2, 3] }, { recs: [3, 1, 4] }, none, LIMITS, values).differences.map(brief), [
      ['/recs/1', '/recs/*', 'missing'],
      ['/recs/2', '/recs/*', 'extra'],
    ]);
  });
});

describe('HTML as trees', () => {
  const doc = (stock: string, token: string, extra = '') => `<!doctype html><html><head><title>T</title></head><body>
    <main><h1>Shirt</h1><p class="stock big">${stock}</p>
      <ul><li>a</li><li>b</li>${extra}</ul>
      <form><input type="hidden" name="csrf" value="${token}"><button>Buy</button></form></main></body></html>`;
  const html = (text: string) => parseHtml(text, 10_000).root;

  test('text, attributes and missing nodes get readable node paths', () => {
    const { differences } = compareHtml(html(doc('In stock', 't1')), html(doc('Only 2 left', 't2', '<li>c</li>')), new NodeRules([]), LIMITS);
    assert.deepEqual(
      differences.map((d) => [d.pointer, d.template, d.change]),
      [
        ['html > body > main > p.stock', 'html > body > main > p.stock', 'value'],
        ['html > body > main > ul > li:nth-of-type(3)', 'html > body > main > ul > li', 'extra'],
        ['html > body > main > form > input@value', 'html > body > main > form > input@value', 'value'],
      ],
    );
    assert.equal(differences[0]!.primary, 'In stock');
  });

  test('whitespace and comments are not differences; broken markup parses as browsers do', () => {
    const a = html('<html><body><p>one   two</p><!-- a --></body></html>');
    const b = html('<p>one two<!-- b -->');
    assert.deepEqual(compareHtml(a, b, new NodeRules([]), LIMITS).differences, []);
  });

  test('ignorePaths accepts node paths: a node with its subtree, or one attribute', () => {
    const a = html(doc('In stock', 't1'));
    const b = html(doc('Sold out', 't2', '<li>c</li>'));
    const rules = new NodeRules(['html > body > main > form > input@value', 'html > body > main > ul', '/json/pointer']);
    assert.deepEqual(
      compareHtml(a, b, rules, LIMITS).differences.map((d) => d.pointer),
      ['html > body > main > p.stock'],
    );
    assert.deepEqual(compareHtml(a, b, new NodeRules(['html > body > *']), LIMITS).differences, []);
  });

  test('a per-request token in the baseline masks its attribute, not the page', () => {
    const primary = htmlResponse(doc('In stock', 'p-token'));
    const shadow = htmlResponse(doc('Sold out', 's-token'));
    const baseline = htmlResponse(doc('In stock', 'b-token'));
    const p = mirrored('', '', { primary, shadow, baseline });
    const event = comparePair(p).outcomes[0]!.event!;
    assert.deepEqual(
      event.differences.map((d) => d.path),
      ['html > body > main > p.stock'],
    );
    assert.equal(event.noise, 1);
  });

  test('XML is a tree too, with the same node paths and ignore rules', () => {
    const xml = (price: string, stamp: string) =>
      `<?xml version="1.0"?><!-- feed --><catalog generated="${stamp}"><item id="a"><price>1.00</price></item><item><price>${price}</price></item></catalog>`;
    const xmlResponse = (text: string): CapturedResponse => {
      const body = Buffer.from(text);
      return { status: 200, headers: { 'content-type': 'application/xml' }, body, truncated: false, bodyBytes: body.length, latencyMs: 5 };
    };
    const p = mirrored('', '', { primary: xmlResponse(xml('2.00', 't1')), shadow: xmlResponse(xml('2.50', 't2')) });
    assert.deepEqual(
      comparePair(p).outcomes[0]!.event!.differences.map((d) => [d.path, d.template, d.primary, d.shadow]),
      [
        ['catalog@generated', 'catalog@generated', 't1', 't2'],
        ['catalog > item > price', 'catalog > item > price', '2.00', '2.50'],
      ],
    );
    const ignoring = { ...p, diff: { ...DIFF, ignorePaths: ['catalog@generated'] } };
    assert.deepEqual(
      comparePair(ignoring).outcomes[0]!.event!.differences.map((d) => d.path),
      ['catalog > item > price'],
    );
    const broken = mirrored('', '', { primary: xmlResponse('<a><b></a>'), shadow: xmlResponse('<a><c></a>') });
    assert.ok(comparePair(broken).outcomes[0]!.event!.differences.length > 0, 'malformed XML is still compared, never dropped');
  });

  test('validate: ignore entries that can never match', () => {
    assert.match(ignoreEntryProblem('') ?? '', /empty/);
    assert.match(ignoreEntryProblem('html >') ?? '', /neither/);
    assert.match(ignoreEntryProblem('html > body@') ?? '', /attribute/);
    assert.equal(ignoreEntryProblem('/a/*/b'), undefined);
    assert.equal(ignoreEntryProblem('html > body > main > p.stock'), undefined);
    assert.equal(ignoreEntryProblem('html > body > form > input@value'), undefined);
    assert.equal(ignoreEntryProblem('html > body > ul > li:nth-of-type(2)'), undefined);
  });
});

describe('latency statistics', () => {
  /** A deterministic spread around a centre: n values from centre×(1-w) to centre×(1+w). */
  const spread = (centre: number, n: number, w = 0.3) => Array.from({ length: n }, (_, i) => centre * (1 - w + (2 * w * i) / (n - 1)));
  const hist = (values: number[]): LogHistogram => {
    const h: LogHistogram = {};
    for (const v of values) addLog(h, v);
    return h;
  };

  test('a quantile interval covers the quantile and narrows with n', () => {
    const small = quantileInterval(hist(spread(100, 20)), 0.5)!;
    const large = quantileInterval(hist(spread(100, 2000)), 0.5)!;
    for (const q of [small, large]) assert.ok(q.ci[0] <= 100 * 1.02 && q.ci[1] >= 100 / 1.02, JSON.stringify(q));
    assert.ok(large.ci[1] - large.ci[0] < (small.ci[1] - small.ci[0]) / 3);
    assert.equal(quantileInterval({}, 0.5), null);
  });

  test('histograms merge by adding: the same figures as one histogram', () => {
    const a = hist(spread(10, 50));
    const b = hist(spread(30, 50));
    const merged: LogHistogram = {};
    mergeLog(merged, a);
    mergeLog(merged, b);
    assert.deepEqual(quantileInterval(merged, 0.95), quantileInterval(hist([...spread(10, 50), ...spread(30, 50)]), 0.95));
  });

  const latency = (ratios: number[], primaryMs: number[], shadowMs: number[], baseline: number[] = []) => ({
    ratio: hist(ratios),
    baselineRatio: hist(baseline),
    primary: hist(primaryMs),
    shadow: hist(shadowMs),
  });

  test('2× slower is confidently over 1.5; equal is not; few pairs are never judged', () => {
    const slow = compareLatency(latency(spread(2, 60, 0.2), spread(20, 60), spread(40, 60)), 1.5);
    assert.equal(slow.slower, true);
    assert.ok(slow.ratioCi![0] > 1.5 && slow.ratio! > 1.9 && slow.ratio! < 2.1, JSON.stringify(slow));
    assert.ok(slow.p95Ratio! > 1.8);
    const same = compareLatency(latency(spread(1, 500, 0.4), spread(20, 500), spread(20, 500)), 1.5);
    assert.equal(same.slower, false);
    const few = compareLatency(latency(spread(3, 10), spread(20, 10), spread(60, 10)), 1.5);
    assert.equal(few.slower, false);
  });

  test('a sub-millisecond gap is never a latency regression, however large the ratio', () => {
    const tiny = compareLatency(latency(spread(2, 200, 0.2), spread(0.3, 200), spread(0.6, 200)), 1.5);
    assert.ok(tiny.ratioCi![0] > 1.5, JSON.stringify(tiny));
    assert.equal(tiny.slower, false, 'the shadow is 0.3 ms slower: the two sides\' own client stacks, not the service');
  });

  test('the baseline drift is the noise reference: a shadow as slow as a second primary instance is not slower', () => {
    const withDrift = compareLatency(latency(spread(1.8, 200, 0.1), spread(20, 200), spread(36, 200), spread(1.7, 200, 0.1)), 1.5);
    assert.equal(withDrift.slower, false);
    assert.ok(withDrift.baselineRatio! > 1.6);
    const withoutDrift = compareLatency(latency(spread(1.8, 200, 0.1), spread(20, 200), spread(36, 200), spread(1, 200, 0.1)), 1.5);
    assert.equal(withoutDrift.slower, true);
  });
});

describe('a summary to decide from', () => {
  test('a 500 with its body and etag is one finding, ranked by requests; the headline excludes noise', () => {
    const table = new CountsTable('shop', 'v2', 256);
    const add = (p: MirroredPair, endpoint: string) => table.add(comparePair(p, undefined, undefined, { endpoint }).outcomes[0]!.counts);
    for (let i = 0; i < 60; i++) {
      const ok = jsonResponse('{"id":1,"total":3}', 200, '"a"');
      const broken = i % 10 === 0;
      add(mirrored('', '', { primary: ok, shadow: broken ? jsonResponse('{"error":"x"}', 500, '"e"') : ok, baseline: ok, requestId: `c${i}` }), '/cart/{id}');
      const price = jsonResponse(`{"price":10,"at":${i}}`);
      add(mirrored('', '', { primary: price, shadow: jsonResponse(`{"price":11,"at":${i + 1}}`), baseline: jsonResponse(`{"price":10,"at":${i + 2}}`), requestId: `p${i}` }), '/price/{id}');
    }
    const s = describeCounts(table.counts);
    assert.equal(s.verdict, 'regression');
    assert.deepEqual(
      s.findings!.map((f) => [f.endpoint, f.title, f.requests, f.verdict]),
      [
        ['/price/{id}', 'body /price', 60, 'regression'],
        ['/cart/{id}', 'status 200 → 500', 6, 'regression'],
      ],
    );
    assert.deepEqual(s.findings![1]!.with, ['header etag', 'body /id', 'body /total', 'body /error']);
    assert.equal(s.findings![1]!.example, 'c0');
    assert.equal(s.differing, 66);
    assert.equal(s.noise!.paths, 1, '/at is noise, collapsed');
    assert.deepEqual(s.suggestions!.ignorePaths, ['/at']);
    // Replicas merge with their endpoints.
    const merged = mergeSummaries([
      { time: '', since: '2030-01-01T00:00:00.000Z', routes: [{ route: 'shop', shadows: [s] }] },
      { time: '', since: '2030-01-01T00:00:00.000Z', routes: [{ route: 'shop', shadows: [s] }] },
    ]).routes[0]!.shadows[0]!;
    assert.deepEqual(
      merged.findings!.map((f) => [f.endpoint, f.requests]),
      [
        ['/price/{id}', 120],
        ['/cart/{id}', 12],
      ],
    );
  });
});

function htmlResponse(text: string): CapturedResponse {
  const body = Buffer.from(text);
  return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body, truncated: false, bodyBytes: body.length, latencyMs: 5 };
}

function jsonResponse(text: string, status = 200, etag?: string): CapturedResponse {
  const body = Buffer.from(text);
  return { status, headers: { 'content-type': 'application/json', ...(etag ? { etag } : {}) }, body, truncated: false, bodyBytes: body.length, latencyMs: 5 };
}

function mirrored(
  primaryText: string,
  shadowText: string,
  sides: { primary?: CapturedResponse; shadow?: CapturedResponse; baseline?: CapturedResponse; requestId?: string } = {},
): MirroredPair {
  const primary = sides.primary ?? jsonResponse(primaryText);
  const shadow = sides.shadow ?? jsonResponse(shadowText);
  return {
    route: 'shop',
    diff: DIFF,
    method: 'GET',
    path: '/x',
    requestId: sides.requestId ?? 'req-1',
    time: new Date('2030-01-01T00:00:00Z'),
    primaryUpstream: 'v1',
    primary,
    shadows: [{ upstream: 'v2', result: { outcome: 'completed', latencyMs: 5, status: shadow.status, response: shadow } }],
    baseline: sides.baseline
      ? { upstream: 'v1b', result: { outcome: 'completed', latencyMs: 5, status: sides.baseline.status, response: sides.baseline } }
      : undefined,
  };
}
