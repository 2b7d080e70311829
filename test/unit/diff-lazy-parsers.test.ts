/**
 * The comparing threads load parse5, fast-xml-parser and protobufjs only
 * when a pair needs them. This file runs in a process of its own (the test
 * runner starts one per file), so nothing has loaded them before it: the
 * engine below is in the state of a fresh comparing thread.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DiffConfig } from '../../src/config/types.js';
import { LazyModule } from '../../src/lazy-module.js';
import { DiffEngine } from '../../src/diff/engine.js';
import { PARSE5 } from '../../src/diff/html.js';
import type { CapturedResponse, MirroredPair } from '../../src/diff/pair.js';
import { DiffStore } from '../../src/diff/store.js';
import { XML_PARSER } from '../../src/diff/xml.js';
import { PROTOBUF } from '../../src/protobuf/descriptors.js';

const DIFF: DiffConfig = { enabled: true, ignoreHeaders: [], ignorePaths: [], baseline: undefined, maxBodyBytes: 64 * 1024, endpoints: [], tolerance: [], unordered: [], latency: { maxRatio: 1.5 } };

const answer = (type: string, text: string): CapturedResponse => {
  const body = Buffer.from(text);
  return { status: 200, headers: { 'content-type': type }, body, truncated: false, bodyBytes: body.length, latencyMs: 1 };
};

function pair(route: string, primary: CapturedResponse, shadow: CapturedResponse, diff: DiffConfig = DIFF): MirroredPair {
  return {
    route,
    diff,
    method: 'GET',
    path: '/x',
    requestId: `${route}-1`,
    time: new Date('2030-01-01T00:00:00Z'),
    primaryUpstream: 'v1',
    primary,
    shadows: [{ upstream: 'v2', result: { outcome: 'completed', latencyMs: 1, status: shadow.status, response: shadow } }],
    baseline: undefined,
  };
}

const settled = () => [PARSE5.settled, XML_PARSER.settled, PROTOBUF.settled];

describe('parsers loaded by the first pair that needs them', () => {
  test('JSON pairs load none; an HTML pair loads parse5, an XML pair fast-xml-parser, and both compare as trees', async () => {
    const store = new DiffStore();
    const engine = new DiffEngine({ sink: store, queueLimit: () => 100 });
    try {
      for (let i = 0; i < 20; i++) engine.submit(pair('json', answer('application/json', '{"a":1}'), answer('application/json', '{"a":2}')));
      // A gRPC answer on a route without a descriptor set is decoded by field number: no protobufjs.
      const frame = Buffer.from([0, 0, 0, 0, 2, 0x08, 0x01]);
      const grpc = { ...answer('application/grpc', ''), body: frame, bodyBytes: frame.length };
      engine.submit(pair('grpc', grpc, grpc));
      await engine.idle();
      assert.equal(engine.compared, 21);
      assert.deepEqual(settled(), [false, false, false], 'JSON and untyped gRPC pairs load no parser');

      const page = (stock: string) => `<html><body><main><p class="stock">${stock}</p></main></body></html>`;
      engine.submit(pair('page', answer('text/html; charset=utf-8', page('3 left')), answer('text/html; charset=utf-8', page('2 left'))));
      const feed = (price: string) => `<catalog><item><price>${price}</price></item></catalog>`;
      engine.submit(pair('feed', answer('application/xml', feed('10')), answer('application/xml', feed('12'))));
      engine.submit(pair('json', answer('application/json', '{"b":1}'), answer('application/json', '{"b":1}')));
      await engine.idle();
      assert.deepEqual(settled(), [true, true, false]);
      assert.deepEqual([engine.compared, engine.failed], [24, 0]);
      const paths = (route: string) => store.recent({ route }, { limit: 5 }).flatMap((e) => e.differences.map((d) => [d.path, d.primary, d.shadow]));
      assert.deepEqual(paths('page'), [['html > body > main > p.stock', '3 left', '2 left']]);
      assert.deepEqual(paths('feed'), [['catalog > item > price', '10', '12']]);
    } finally {
      engine.close();
    }
  });

  test('a gRPC pair of a route with a descriptor set loads protobufjs before the set is read', async () => {
    const store = new DiffStore();
    const engine = new DiffEngine({ sink: store, queueLimit: () => 10 });
    try {
      const frame = Buffer.from([0, 0, 0, 0, 2, 0x08, 0x01]);
      const grpc = { ...answer('application/grpc', ''), body: frame, bodyBytes: frame.length };
      engine.submit(pair('typed', grpc, grpc, { ...DIFF, protoDescriptors: '/nonexistent/catalog.pb' }));
      await engine.idle();
      assert.equal(PROTOBUF.settled, true);
      assert.deepEqual([engine.compared, engine.failed], [1, 0]);
    } finally {
      engine.close();
    }
  });

  test('a library used before loading, or that failed to load, throws naming it; a failed load is kept, not retried', async () => {
    let imports = 0;
    const broken = new LazyModule<object>('left-pad', () => {
      imports++;
      return Promise.reject(new Error('Cannot find package'));
    });
    assert.equal(broken.settled, false);
    assert.throws(() => broken.get(), /left-pad is not loaded: the caller must await its load\(\) first/);
    await broken.load();
    await broken.load();
    assert.equal(imports, 1);
    assert.equal(broken.settled, true);
    assert.throws(() => broken.get(), /left-pad could not be loaded: Cannot find package/);
    const fine = new LazyModule('fine', () => Promise.resolve({ ok: true }));
    await fine.load();
    assert.deepEqual(fine.get(), { ok: true });
  });
});
