/**
 * gRPC comparison on real encoded messages: answers are built with
 * protobufjs from test/fixtures/grpc/catalog.proto and framed as gRPC
 * sends them; catalog.pb is that file's descriptor set as protoc wrote it.
 * Covers framing, generic decoding (fields by number), decoding with the
 * descriptor set (field and enum names, fields the set lacks), status and
 * trailers, compression, streaming and the bounds.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import zlib from 'node:zlib';
import protobuf from 'protobufjs';
import { readDescriptorSet } from '../../src/diff/descriptor-sets.js';
import { comparePair, DEFAULT_COMPARE_SETTINGS, type PairContext } from '../../src/diff/compare-pair.js';
import { NO_VALUE_RULES } from '../../src/diff/compare.js';
import { unpackExample } from '../../src/diff/examples.js';
import type { PackedExample } from '../../src/diff/types.js';
import { compareGrpcAnswers, liftGrpc, type GrpcAnswer } from '../../src/diff/grpc.js';
import { ignoredHeaders } from '../../src/diff/headers.js';
import { IgnoreRules } from '../../src/diff/paths.js';
import type { DiffConfig } from '../../src/config/types.js';
import { frame, readFrames } from '../../src/protobuf/frames.js';
import { loadDescriptorSet, type ProtoSchema } from '../../src/protobuf/descriptors.js';
import { serviceOfPrefix } from '../../src/protobuf/outline.js';
import { decodeWire } from '../../src/protobuf/wire.js';
import type { CapturedResponse, MirroredPair } from '../../src/diff/pair.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { loadAllParsers } from '../../src/diff/parsers.js';

// Parsing here runs outside the comparing engine, which would load these first.
await loadAllParsers();

const unpack = (packed: PackedExample | undefined) => packed && unpackExample(packed);

const FIXTURES = join(REPO_ROOT, 'test/fixtures/grpc');
const root = protobuf.loadSync(join(FIXTURES, 'catalog.proto'));
const ListReply = root.lookupType('shop.ListReply');
const Item = root.lookupType('shop.Item');
const schema: ProtoSchema = loadDescriptorSet(readFileSync(join(FIXTURES, 'catalog.pb')));

const encode = (type: protobuf.Type, value: Record<string, unknown>) => Buffer.from(type.encode(type.fromObject(value)).finish());

const GRPC_HEADERS: IncomingHttpHeaders = { 'content-type': 'application/grpc' };
const OK: IncomingHttpHeaders = { 'grpc-status': '0' };

function answer(messages: Buffer[], trailers: IncomingHttpHeaders | null = OK, headers: IncomingHttpHeaders = GRPC_HEADERS): CapturedResponse {
  const body = Buffer.concat(messages.map((m) => frame(m)));
  return { status: 200, headers, body, truncated: false, bodyBytes: body.length, latencyMs: 3, ...(trailers ? { trailers } : {}) };
}

const DIFF: DiffConfig = { enabled: true, ignoreHeaders: [], ignorePaths: [], baseline: undefined, maxBodyBytes: 1024 * 1024, endpoints: [], tolerance: [], unordered: [], latency: { maxRatio: 1.5 } };

function pair(primary: CapturedResponse, shadow: CapturedResponse, method = '/shop.Catalog/List', diff: Partial<DiffConfig> = {}): MirroredPair {
  return {
    route: 'catalog',
    diff: { ...DIFF, ...diff },
    method: 'POST',
    path: method,
    requestId: 'req-1',
    time: new Date('2030-01-01T00:00:00Z'),
    primaryUpstream: 'v1',
    primary,
    shadows: [{ upstream: 'v2', result: { outcome: 'completed', latencyMs: 3, status: 200, response: shadow } }],
    baseline: undefined,
  };
}

function differences(p: MirroredPair, context: Partial<PairContext> = {}) {
  const result = comparePair(p, DEFAULT_COMPARE_SETTINGS, undefined, { endpoint: p.path, ...context });
  const outcome = result.outcomes[0]!;
  return { outcome, list: (outcome.event?.differences ?? []).map((d) => [d.kind, d.path, d.primary, d.shadow]), templates: outcome.counts.paths.map((x) => x.path) };
}

const v1 = { items: [{ name: 'Widget', priceCents: 1299, stock: 'IN_STOCK', tags: ['blue'] }, { name: 'Gadget', priceCents: 500, stock: 'SOLD_OUT' }], total: 2 };
// v2 renames the first item.
const v2 = { ...v1, items: [{ ...v1.items[0], name: 'Widget Pro' }, v1.items[1]] };

describe('gRPC framing', () => {
  test('messages in order, with the compressed flag', () => {
    const body = Buffer.concat([frame(Buffer.from('ab')), frame(Buffer.from('cde'), true), frame(Buffer.alloc(0))]);
    const read = readFrames(body, { maxMessages: 10, maxMessageBytes: 100 });
    assert.equal(read.problem, undefined);
    assert.deepEqual(read.frames.map((f) => [f.compressed, f.data.toString()]), [[false, 'ab'], [true, 'cde'], [false, '']]);
  });

  test('a body cut short keeps the whole messages before the cut', () => {
    const body = Buffer.concat([frame(Buffer.from('ab')), frame(Buffer.from('cdef'))]).subarray(0, 9);
    const read = readFrames(body, { maxMessages: 10, maxMessageBytes: 100 });
    assert.equal(read.frames.length, 1);
    assert.match(read.problem ?? '', /cut short/);
  });

  test('bounded in count and size, and a bad flag stops reading', () => {
    const many = Buffer.concat(Array.from({ length: 5 }, () => frame(Buffer.from('x'))));
    assert.equal(readFrames(many, { maxMessages: 3, maxMessageBytes: 100 }).frames.length, 3);
    const huge = Buffer.from([0, 0xff, 0xff, 0xff, 0xff, 1, 2]);
    const read = readFrames(huge, { maxMessages: 3, maxMessageBytes: 1024 });
    assert.equal(read.frames.length, 0);
    assert.match(read.problem ?? '', /4294967295 bytes; the limit is 1024/);
    assert.match(readFrames(Buffer.from([7, 0, 0, 0, 0]), { maxMessages: 3, maxMessageBytes: 10 }).problem ?? '', /not gRPC framing/);
  });
});

describe('protobuf wire format without a schema', () => {
  const LIMITS = { maxSteps: 10_000, maxDepth: 100 };

  test('fields by number: nested messages, strings, repeated fields, varints, doubles', () => {
    const bytes = encode(ListReply, { items: [{ name: 'Widget', priceCents: 1299, stock: 'IN_STOCK', weight: 2.5, tags: ['a', 'b'] }], total: 1 });
    const { value } = decodeWire(bytes, LIMITS);
    assert.deepEqual(JSON.parse(JSON.stringify(value)), { 1: { 1: 'Widget', 2: 1299, 3: 1, 4: ['a', 'b'], 5: 2.5 }, 2: 1 });
  });

  test('negative int64, big unsigned values and bytes', () => {
    const bytes = encode(Item, { priceCents: '-5', blob: Buffer.from([0xff, 0x00, 0xfe]) });
    assert.deepEqual(JSON.parse(JSON.stringify(decodeWire(bytes, LIMITS).value)), { 2: -5, 7: '/wD+' });
    const big = encode(Item, { priceCents: '9007199254740993' });
    assert.deepEqual(JSON.parse(JSON.stringify(decodeWire(big, LIMITS).value)), { 2: '9007199254740993' });
  });

  test('not a message: undefined, never a throw', () => {
    for (const junk of [Buffer.from([0xff, 0xff, 0xff]), Buffer.from([0x0a, 0x50, 1]), Buffer.from([0x00]), Buffer.from([0x0b])]) {
      assert.equal(decodeWire(junk, LIMITS).value, undefined);
    }
  });

  test('deep nesting stops at the depth limit and says so', () => {
    let bytes: Buffer = encode(Item, { priceCents: 1 });
    for (let i = 0; i < 300; i++) bytes = Buffer.concat([Buffer.from([0x0a]), varint(bytes.length), bytes]);
    const decoded = decodeWire(bytes, { maxSteps: 100_000, maxDepth: 20 });
    assert.equal(decoded.limited, true);
    assert.ok(decoded.value);
  });
});

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

describe('a v2 that renames a value', () => {
  test('with the descriptor set: reported at the field name', () => {
    const { list, templates } = differences(pair(answer([encode(ListReply, v1)]), answer([encode(ListReply, v2)])), { protoSchema: schema });
    assert.deepEqual(list, [['body', '/items/0/name', 'Widget', 'Widget Pro']]);
    assert.ok(templates.includes('/items/*/name'), templates.join());
  });

  test('without one: reported at the field number', () => {
    const { list, templates } = differences(pair(answer([encode(ListReply, v1)]), answer([encode(ListReply, v2)])));
    assert.deepEqual(list, [['body', '/1/0/1', 'Widget', 'Widget Pro']]);
    // Field numbers stay in templates: one field's noise never covers another's.
    assert.ok(templates.includes('/1/*/1'), templates.join());
  });

  test('a method the set lacks falls back to field numbers, with a note on the example', () => {
    const { list, outcome } = differences(pair(answer([encode(ListReply, v1)]), answer([encode(ListReply, v2)]), '/shop.Orders/List'), { protoSchema: schema });
    assert.deepEqual(list, [['body', '/1/0/1', 'Widget', 'Widget Pro']]);
    assert.match(unpack(outcome.example)?.primary.note ?? '', /\/shop\.Orders\/List is not in the descriptor set; fields by number/);
  });

  test('equal answers: no event', () => {
    const { outcome } = differences(pair(answer([encode(ListReply, v1)]), answer([encode(ListReply, v1)])), { protoSchema: schema });
    assert.equal(outcome.event, undefined);
    assert.equal(outcome.counts.differing, 0);
  });
});

describe('decoding with the descriptor set', () => {
  test('enum names, int64 as decimal strings, defaults for absent fields', () => {
    const changed = { items: [{ ...v1.items[0], stock: 'SOLD_OUT', priceCents: 1399 }, v1.items[1]], total: 2 };
    const { list } = differences(pair(answer([encode(ListReply, v1)]), answer([encode(ListReply, changed)])), { protoSchema: schema });
    assert.deepEqual(list, [
      ['body', '/items/0/price_cents', '1299', '1399'],
      ['body', '/items/0/stock', 'IN_STOCK', 'SOLD_OUT'],
    ]);
  });

  test('an absent field equals its default (proto3), a set one differs by name', () => {
    const { list } = differences(pair(answer([encode(ListReply, { total: 0 })]), answer([encode(ListReply, { total: 3 })])), { protoSchema: schema });
    assert.deepEqual(list, [['body', '/total', 0, 3]]);
  });

  test('a field v2 added that the set lacks is reported by number beside the names', () => {
    const extra = Buffer.concat([encode(Item, { name: 'Widget' }), Buffer.from([0x48, 0x07])]); // field 9, varint 7
    const reply = (item: Buffer) => Buffer.concat([Buffer.from([0x0a]), varint(item.length), item]);
    const { list } = differences(pair(answer([reply(encode(Item, { name: 'Widget' }))]), answer([reply(extra)])), { protoSchema: schema });
    assert.deepEqual(list, [['body', '/items/0/9', null, 7]]);
  });

  test('bytes that do not decode as the method type fall back to field numbers, with a note', () => {
    const lifted = liftGrpc(answer([Buffer.from([0x0a, 0x02, 0xff, 0xfe])]), { method: '/shop.Catalog/List', schema }, { maxDecodedBytes: 1 << 20, maxNodes: 1000 });
    assert.equal(lifted.format, 'json');
    assert.match(lifted.note ?? '', /does not decode as shop\.ListReply/);
  });

  test('a field whose wire type contradicts the set: by number, with the reason, never misread', () => {
    // v2 made name (field 1, a string) a number: varint 7.
    const item = Buffer.from([0x08, 0x07]);
    const reply = Buffer.concat([Buffer.from([0x0a, item.length]), item]);
    const lifted = liftGrpc(answer([reply]), { method: '/shop.Catalog/List', schema }, { maxDecodedBytes: 1 << 20, maxNodes: 1000 });
    assert.deepEqual(JSON.parse(JSON.stringify((lifted as { value: unknown }).value)), { 1: { 1: 7 } });
    assert.match(lifted.note ?? '', /field name \(1\) came with wire type 0/);
  });

  test('streaming answers: one array element per message', () => {
    const a = answer([encode(Item, { name: 'Widget' }), encode(Item, { name: 'Gadget' })]);
    const b = answer([encode(Item, { name: 'Widget' }), encode(Item, { name: 'Gizmo' })]);
    assert.deepEqual(differences(pair(a, b, '/shop.Catalog/Watch'), { protoSchema: schema }).list, [['body', '/1/name', 'Gadget', 'Gizmo']]);
    // Known to stream: even one message is element 0.
    const one = differences(pair(answer([encode(Item, { name: 'Widget' })]), answer([encode(Item, { name: 'Gizmo' })]), '/shop.Catalog/Watch'), { protoSchema: schema });
    assert.deepEqual(one.list, [['body', '/0/name', 'Widget', 'Gizmo']]);
  });

  test('streams past the capture limit: only messages both sides captured whole are compared, the rest by length and hash', () => {
    const items = (names: string[]) => names.map((name) => encode(Item, { name }));
    /** As the gateway captures it: the first `limit` bytes, the whole body's length and hash. */
    const cut = (messages: Buffer[], limit: number): CapturedResponse => {
      const whole = answer(messages);
      const sha256 = createHash('sha256').update(whole.body).digest('hex');
      return { ...whole, body: whole.body.subarray(0, limit), truncated: true, bodyBytes: whole.body.length, sha256 };
    };
    const names = ['Widget', 'Gadget', 'Gizmo', 'Doohickey', 'Thingamajig', 'Whatsit'];
    const diffOf = (a: CapturedResponse, b: CapturedResponse) => differences(pair(a, b, '/shop.Catalog/Watch'), { protoSchema: schema });
    // The same stream, cut at the same place: nothing differs.
    assert.equal(diffOf(cut(items(names), 50), cut(items(names), 50)).outcome.event, undefined);
    // v2 renames message 1 to a longer name: its cut falls one message earlier. Message 1 is compared,
    // the message only the primary captured is not called missing, and the rest differs by length and hash.
    const renamed = names.map((n, i) => (i === 1 ? 'Gadget Deluxe Edition' : n));
    const found = diffOf(cut(items(names), 50), cut(items(renamed), 50));
    assert.deepEqual(
      found.list.map(([kind, path, primary]) => [kind, path, typeof primary === 'string' && /bytes, sha256/.test(primary) ? 'whole body' : primary]),
      [
        ['body', '', 'whole body'],
        ['body', '/1/name', 'Gadget'],
      ],
    );
    assert.equal(found.outcome.event?.truncated, true);
    // Only beyond the cut: the whole-body difference alone.
    const late = names.map((n, i) => (i === 5 ? 'Whatsit 2' : n));
    assert.deepEqual(diffOf(cut(items(names), 50), cut(items(late), 50)).list.map(([kind, path]) => [kind, path]), [['body', '']]);
  });

  test('ignorePaths, by name or number, apply to decoded messages', () => {
    const p = pair(answer([encode(ListReply, v1)]), answer([encode(ListReply, v2)]), '/shop.Catalog/List', { ignorePaths: ['/items/*/name'] });
    assert.equal(differences(p, { protoSchema: schema }).outcome.event, undefined);
    const q = pair(answer([encode(ListReply, v1)]), answer([encode(ListReply, v2)]), '/shop.Catalog/List', { ignorePaths: ['/1/*/1'] });
    assert.equal(differences(q).outcome.event, undefined);
  });
});

describe('gRPC status and trailers', () => {
  const body = [encode(ListReply, v1)];

  test('grpc-status is the status difference, grpc-message decoded, and they explain the rest', () => {
    const failed = answer([], { 'grpc-status': '5', 'grpc-message': 'no%20such%20catalog' });
    const { list, outcome } = differences(pair(answer(body), failed), { protoSchema: schema });
    assert.deepEqual(list, [
      ['header', 'grpc-message', null, 'no such catalog'],
      ['status', 'grpc-status', '0 OK', '5 NOT_FOUND'],
      ['body', '', list[2]![2], null],
    ]);
    assert.equal(outcome.counts.endpoints?.[0]?.causes[0]?.cause, 'status 0 OK → 5 NOT_FOUND');
  });

  test('a Trailers-Only answer equals the same status in trailers', () => {
    const trailersOnly = answer([], null, { ...GRPC_HEADERS, 'grpc-status': '5', 'grpc-message': 'gone' });
    const withTrailers = answer([], { 'grpc-status': '5', 'grpc-message': 'gone' });
    assert.equal(differences(pair(trailersOnly, withTrailers)).outcome.event, undefined);
  });

  test('trailers are compared like headers: ignoreHeaders applies, and the example shows them', () => {
    const a = answer(body, { 'grpc-status': '0', 'x-served-by': 'a' });
    const b = answer(body, { 'grpc-status': '0', 'x-served-by': 'b' });
    const { list, outcome } = differences(pair(a, b, '/shop.Catalog/List'));
    assert.deepEqual(list, [['header', 'x-served-by', 'a', 'b']]);
    assert.equal(unpack(outcome.example)?.shadow.headers['x-served-by'], 'b');
    assert.equal(differences(pair(a, b, '/shop.Catalog/List', { ignoreHeaders: ['x-served-by'] })).outcome.event, undefined);
  });

  test('a compressed message equals the same message uncompressed', () => {
    const plain = encode(ListReply, v1);
    const gz = zlib.gzipSync(plain);
    const compressedBody = frame(gz, true);
    const compressed: CapturedResponse = {
      ...answer([]),
      headers: { ...GRPC_HEADERS, 'grpc-encoding': 'gzip' },
      body: compressedBody,
      bodyBytes: compressedBody.length,
    };
    assert.equal(differences(pair(answer([plain]), compressed), { protoSchema: schema }).outcome.event, undefined);
  });
});

describe('bounds', () => {
  test('a stream past the decoding budget is compared up to it, with a note', () => {
    const reply = encode(ListReply, { items: Array.from({ length: 20 }, (_, i) => ({ name: `item ${i}`, tags: ['a', 'b'] })) });
    const body = answer(Array.from({ length: 50 }, () => reply));
    for (const schemaUsed of [schema, undefined]) {
      const lifted = liftGrpc(body, { method: '/shop.Catalog/List', ...(schemaUsed ? { schema: schemaUsed } : {}) }, { maxDecodedBytes: 1 << 20, maxNodes: 500 });
      assert.equal(lifted.format, 'json');
      const messages = (lifted as { value: unknown[] }).value;
      assert.ok(messages.length > 0 && messages.length < 50, String(messages.length));
      assert.match(lifted.note ?? '', /beyond the decoding budget/);
    }
  });

  test('random bytes, framed or not, never throw', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 500; i++) {
      const bytes = Buffer.from(Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)));
      const framed = i % 2 === 0 ? frame(bytes) : bytes;
      const r: CapturedResponse = { ...answer([]), body: framed, bodyBytes: framed.length };
      for (const context of [{ method: '/shop.Catalog/List', schema }, { method: '/x.Y/Z' }]) {
        const lifted = liftGrpc(r, context, { maxDecodedBytes: 1 << 20, maxNodes: 1000 });
        assert.ok(['json', 'empty'].includes(lifted.format));
      }
    }
  });
});

describe('the pure entry point', () => {
  test('compareGrpcAnswers: plain data in, differences out', () => {
    const a: GrpcAnswer = { headers: GRPC_HEADERS, trailers: OK, body: frame(encode(ListReply, v1)), truncated: false };
    const b: GrpcAnswer = { headers: GRPC_HEADERS, trailers: { 'grpc-status': '14' }, body: frame(encode(ListReply, v2)), truncated: false };
    const options = {
      context: { method: '/shop.Catalog/List', schema },
      ignoredHeaders: ignoredHeaders([]),
      rules: new IgnoreRules([]),
      values: NO_VALUE_RULES,
      maxDecodedBytes: 1 << 20,
      maxNodes: 10_000,
      maxDepth: 128,
    };
    const result = compareGrpcAnswers(a, b, options);
    assert.deepEqual(
      result.differences.map((d) => [d.kind, d.pointer, d.primary, d.shadow]),
      [
        ['status', 'grpc-status', '0 OK', '14 UNAVAILABLE'],
        ['body', '/items/0/name', 'Widget', 'Widget Pro'],
      ],
    );
    // Plain JSON: what a worker thread sends back.
    assert.deepEqual(JSON.parse(JSON.stringify(result.differences)).length, 2);
  });
});

describe('descriptor sets', () => {
  test('services and methods by path; route prefixes naming a service', () => {
    assert.deepEqual(schema.services, ['shop.Catalog']);
    assert.equal(schema.method('/shop.Catalog/Watch')?.responseStream, true);
    assert.equal(schema.method('/shop.Catalog/Nope'), undefined);
    assert.equal(serviceOfPrefix('/shop.Catalog/'), 'shop.Catalog');
    assert.equal(serviceOfPrefix('/shop.Catalog/List'), 'shop.Catalog');
    assert.equal(serviceOfPrefix('/api/v1'), undefined);
  });

  test('unusable files say why', () => {
    assert.match(JSON.stringify(readDescriptorSet(join(FIXTURES, 'not-descriptors.pb'))), /not a usable descriptor set/);
    assert.match(JSON.stringify(readDescriptorSet(join(FIXTURES, 'catalog-no-imports.pb'))), /--include_imports/);
    assert.match(JSON.stringify(readDescriptorSet(join(FIXTURES, 'missing.pb'))), /does not exist/);
    assert.match(JSON.stringify(readDescriptorSet(FIXTURES)), /a directory, not a regular file/);
  });
});
