/**
 * A gRPC dark launch through the real gateway: a grpc-js client calls over
 * h2c, the gateway forwards to v1 (h2c) and copies each unary call to v2
 * (h2c), a grpc-js server that renames a value. The client gets v1's
 * answer; the diff store reports the difference at the field name with the
 * descriptor set protoc made, at the field number without one. A dead
 * shadow leaves the client's call untouched.
 *
 * Streaming calls (server streaming Watch, bidi Chat) are mirrored only to
 * targets with `streaming: true`: without it v2 never sees them (or, with
 * no descriptor set to say so up front, a server stream's copy is given
 * up), and each is counted as skipped. With it, v2's one changed field in
 * one message is reported there, and a copy that would pass
 * limits.shadowBodyBytes is cut while the user's call goes on.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { DiffEvent } from '../../src/diff/types.js';
import { readFileSync } from 'node:fs';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { deadPort } from '../helpers/upstream.js';
import { startStuckH2Server } from '../helpers/grpc.js';
import { metricValue } from '../helpers/metrics.js';
import { METRIC } from '../../src/metrics/names.js';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/grpc');
const root = protobuf.loadSync(join(FIXTURES, 'catalog.proto'));
const ListRequest = root.lookupType('shop.ListRequest');
const ListReply = root.lookupType('shop.ListReply');
const Item = root.lookupType('shop.Item');

const codec = (type: protobuf.Type) => ({
  serialize: (value: object) => Buffer.from(type.encode(type.fromObject(value)).finish()),
  deserialize: (bytes: Buffer) => type.toObject(type.decode(bytes), { longs: Number }) as Record<string, unknown>,
});

const method = (name: string, response: protobuf.Type, requestStream: boolean, responseStream: boolean) => ({
  path: `/shop.Catalog/${name}`,
  requestStream,
  responseStream,
  requestSerialize: codec(ListRequest).serialize,
  requestDeserialize: codec(ListRequest).deserialize,
  responseSerialize: codec(response).serialize,
  responseDeserialize: codec(response).deserialize,
});
const LIST = method('List', ListReply, false, false);
const WATCH = method('Watch', Item, false, true);
const CHAT = method('Chat', Item, true, true);
const COLLECT = method('Collect', ListReply, true, false);
const CATALOG: grpc.ServiceDefinition = { List: LIST, Watch: WATCH, Chat: CHAT, Collect: COLLECT };
const CatalogClient = grpc.makeGenericClientConstructor(CATALOG, 'Catalog');

interface Catalog {
  port: number;
  server: grpc.Server;
  /** x-shadow-request of each List call. */
  marks: string[];
  /** Streaming calls seen, by method, and the queries Chat calls sent. */
  calls: { Watch: number; Chat: number; Collect: number };
  chatQueries: string[];
  /** Chat calls the caller cancelled. */
  chatsCancelled: number;
}

/**
 * A catalog version: `firstName` is what List calls the first item,
 * `gadgetCents` the price Watch and Chat give their second message.
 */
async function startCatalog(firstName: string, gadgetCents = 500): Promise<Catalog> {
  const marks: string[] = [];
  const calls = { Watch: 0, Chat: 0, Collect: 0 };
  const chatQueries: string[] = [];
  const catalog = { marks, calls, chatQueries, chatsCancelled: 0 };
  const server = new grpc.Server();
  server.addService(CATALOG, {
    List: (call: grpc.ServerUnaryCall<{ query: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      marks.push(String(call.metadata.get('x-shadow-request')[0] ?? ''));
      callback(null, { items: [{ name: firstName, priceCents: 1299, stock: 'IN_STOCK' }, { name: 'Gadget', priceCents: 500, stock: 'SOLD_OUT' }], total: 2 });
    },
    Watch: (call: grpc.ServerWritableStream<{ query: string }, unknown>) => {
      calls.Watch++;
      call.write({ name: 'Widget', priceCents: 1299 });
      call.write({ name: 'Gadget', priceCents: gadgetCents });
      call.write({ name: 'Gizmo', priceCents: 200 });
      call.end();
    },
    Collect: (call: grpc.ServerReadableStream<{ query: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      calls.Collect++;
      const names: string[] = [];
      call.on('data', (req: { query: string }) => names.push(req.query));
      call.on('end', () => callback(null, { items: names.map((name) => ({ name })), total: names.length }));
    },
    Chat: (call: grpc.ServerDuplexStream<{ query: string }, unknown>) => {
      calls.Chat++;
      let i = 0;
      call.on('data', (req: { query: string }) => {
        chatQueries.push(req.query);
        call.write({ name: req.query, priceCents: i++ === 1 ? gadgetCents : 100 });
      });
      call.on('end', () => call.end());
      call.on('cancelled', () => catalog.chatsCancelled++);
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return Object.assign(catalog, { port, server });
}

function list(client: grpc.Client, query: string): Promise<{ items: { name: string }[] }> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(LIST.path, LIST.requestSerialize, LIST.responseDeserialize, { query }, (err, reply) =>
      err ? reject(err) : resolve(reply as unknown as { items: { name: string }[] }),
    ),
  );
}

const variant = (name: string) => {
  const metadata = new grpc.Metadata();
  metadata.set('x-variant', name);
  return metadata;
};

/** A server-streaming Watch call's answers. */
function watch(client: grpc.Client, name: string): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const out: Record<string, unknown>[] = [];
    const call = client.makeServerStreamRequest(WATCH.path, WATCH.requestSerialize, WATCH.responseDeserialize, { query: 'all' }, variant(name));
    call.on('data', (item: Record<string, unknown>) => out.push(item));
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}

/** A client-streaming Collect call: the queries, then its one answer. */
function collect(client: grpc.Client, name: string, queries: string[]): Promise<{ items: { name: string }[]; total: number }> {
  return new Promise((resolve, reject) => {
    const call = client.makeClientStreamRequest(COLLECT.path, COLLECT.requestSerialize, COLLECT.responseDeserialize, variant(name), (err, reply) =>
      err ? reject(err) : resolve(reply as unknown as { items: { name: string }[]; total: number }),
    );
    for (const query of queries) call.write({ query });
    call.end();
  });
}

/** A bidi Chat call: each query written once the previous one's answer came, then the call ended. */
function chat(client: grpc.Client, name: string, queries: string[]): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const out: Record<string, unknown>[] = [];
    const call = client.makeBidiStreamRequest(CHAT.path, CHAT.requestSerialize, CHAT.responseDeserialize, variant(name));
    let next = 0;
    const send = () => {
      if (next < queries.length) call.write({ query: queries[next++] });
      else call.end();
    };
    call.on('data', (item: Record<string, unknown>) => {
      out.push(item);
      send();
    });
    call.on('error', reject);
    call.on('end', () => resolve(out));
    send();
  });
}

/** The client, the gateway, then the catalogs: whatever of them started. */
async function stopAll(client: grpc.Client | undefined, gw: TestGateway | undefined, catalogs: (Catalog | undefined)[]): Promise<void> {
  client?.close();
  await gw?.close();
  for (const c of catalogs) c?.server.forceShutdown();
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const paths = (events: DiffEvent[]) => events.flatMap((e) => e.differences.map((d) => [d.kind, d.path, d.primary, d.shadow]));

describe('gRPC dark launch through the gateway', () => {
  let v1: Awaited<ReturnType<typeof startCatalog>>;
  let v2: Awaited<ReturnType<typeof startCatalog>>;
  let gw: TestGateway;
  let client: grpc.Client;
  const logs = tempDir();
  const logFile = join(logs.dir, 'access.log');

  before(async () => {
    v1 = await startCatalog('Widget');
    v2 = await startCatalog('Widget Pro');
    // Counts below are exact: no copy is shed, however busy this process's loop.
    gw = await startGateway(`
listen: { address: 127.0.0.1:0, h2c: true }
admin: 127.0.0.1:0
limits: { shadowShedAbove: 1 }
accessLog: { path: ${logFile}, format: json }
upstreams:
  v1: { url: http://127.0.0.1:${v1.port}, protocol: h2c }
  v2: { url: http://127.0.0.1:${v2.port}, protocol: h2c }
  dead: { url: http://127.0.0.1:${await deadPort()}, protocol: h2c }
routes:
  - name: named
    match: { prefix: /shop.Catalog/List, grpc: true, headers: { x-variant: named } }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2, methods: [POST] }]
    diff: { protoDescriptors: ${join(FIXTURES, 'catalog.pb')} }
  - name: numbered
    match: { prefix: /shop.Catalog/List, grpc: true, headers: { x-variant: numbered } }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2, methods: [POST] }]
  - name: broken
    match: { prefix: /shop.Catalog/List, grpc: true }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: dead, methods: [POST] }]
`);
    client = new CatalogClient(`127.0.0.1:${gw.port}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    await stopAll(client, gw, [v1, v2]);
    logs.remove();
  });

  const callWith = (variant: string) =>
    new Promise<{ items: { name: string }[] }>((resolve, reject) => {
      const metadata = new grpc.Metadata();
      metadata.set('x-variant', variant);
      client.makeUnaryRequest(LIST.path, LIST.requestSerialize, LIST.responseDeserialize, { query: 'all' }, metadata, (err, reply) =>
        err ? reject(err) : resolve(reply as unknown as { items: { name: string }[] }),
      );
    });

  test('with the descriptor set: the client gets v1, the diff is at the field name', async () => {
    const before = v2.marks.length;
    const reply = await callWith('named');
    assert.equal(reply.items[0]!.name, 'Widget');
    await until(() => v2.marks.length > before);
    assert.equal(v2.marks.at(-1), '1', 'the copy is marked x-shadow-request: 1');
    await until(() => gw.diffs.store.recent({ route: 'named' }, { limit: 10 }).length > 0);
    await gw.settled();
    assert.deepEqual(paths(gw.diffs.store.recent({ route: 'named' }, { limit: 10 })), [['body', '/items/0/name', 'Widget', 'Widget Pro']]);
  });

  test('without a descriptor set: the diff is at the field number', async () => {
    const reply = await callWith('numbered');
    assert.equal(reply.items[0]!.name, 'Widget');
    await until(() => gw.diffs.store.recent({ route: 'numbered' }, { limit: 10 }).length > 0);
    assert.deepEqual(paths(gw.diffs.store.recent({ route: 'numbered' }, { limit: 10 })), [['body', '/1/0/1', 'Widget', 'Widget Pro']]);
  });

  test('a dead shadow does not touch the call, and the copy is counted', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await list(client, 'all')).items[0]!.name, 'Widget');
    const counted = /gatewayctl_shadow_requests_total\{(?=[^}]*route="broken")(?=[^}]*outcome="error")[^}]*\} 3\b/;
    let text = '';
    const end = Date.now() + 5000;
    while (!counted.test(text) && Date.now() < end) {
      text = await (await fetch(gw.adminUrl + '/metrics')).text();
      if (!counted.test(text)) await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(text, counted);
    // The access log line of a mirrored HTTP/2 call carries its copy's outcome.
    const brokenLines = () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"broken"'))
        .map((l) => JSON.parse(l) as { route: string; shadow: string | null });
    await until(() => brokenLines().length >= 3);
    assert.deepEqual(
      brokenLines().map((l) => [l.route, l.shadow]),
      [0, 1, 2].map(() => ['broken', 'error']),
    );
  });
});

/** A metric of the gateway's, summed over the series with these labels. */
async function metric(gw: TestGateway, name: string, labels: Record<string, string>): Promise<number> {
  return metricValue(await (await fetch(gw.adminUrl + '/metrics')).text(), name, labels);
}

/** gatewayctl_shadow_requests_total of one route and outcome. */
const shadowCount = (gw: TestGateway, route: string, outcome: string) => metric(gw, METRIC.shadowRequests, { route, outcome });

async function untilCount(gw: TestGateway, route: string, outcome: string, count: number): Promise<void> {
  const end = Date.now() + 5000;
  let seen = 0;
  while ((seen = await shadowCount(gw, route, outcome)) < count) {
    if (Date.now() > end) throw new Error(`${route}: ${outcome} is ${seen}, waited for ${count}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('gRPC streaming calls and shadows', () => {
  let v1: Catalog;
  let v2: Catalog;
  let stuck: Awaited<ReturnType<typeof startStuckH2Server>>;
  let gw: TestGateway;
  let client: grpc.Client;
  const descriptors = join(FIXTURES, 'catalog.pb');
  const route = (name: string, shadow: string, diff = '') => `
  - name: ${name}
    match: { prefix: /shop.Catalog/, grpc: true, headers: { x-variant: ${name} } }
    backends: [{ upstream: v1 }]
    shadow: [${shadow}]${diff ? `\n    diff: ${diff}` : ''}`;

  before(async () => {
    v1 = await startCatalog('Widget');
    v2 = await startCatalog('Widget', 550);
    stuck = await startStuckH2Server();
    gw = await startGateway(`
listen: { address: 127.0.0.1:0, h2c: true }
admin: 127.0.0.1:0
limits: { shadowBodyBytes: 64kb, shadowShedAbove: 1 }
upstreams:
  v1: { url: http://127.0.0.1:${v1.port}, protocol: h2c }
  v2: { url: http://127.0.0.1:${v2.port}, protocol: h2c }
  stuck: { url: http://127.0.0.1:${stuck.port}, protocol: h2c }
routes:${route('unary-only', '{ upstream: v2, methods: [POST] }', `{ protoDescriptors: ${descriptors} }`)}${route(
      'unary-only-numbered',
      '{ upstream: v2, methods: [POST] }',
    )}${route('streaming', '{ upstream: v2, methods: [POST], streaming: true }', `{ protoDescriptors: ${descriptors} }`)}${route(
      'streaming-numbered',
      '{ upstream: v2, methods: [POST], streaming: true }',
    )}${route('stuck', '{ upstream: stuck, methods: [POST], streaming: true }')}
`);
    client = new CatalogClient(`127.0.0.1:${gw.port}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    await stopAll(client, gw, [v1, v2]);
    await stuck?.close();
  });

  const events = (route: string) => gw.diffs.store.recent({ route }, { limit: 10 });
  const NAMES = ['Widget', 'Gadget', 'Gizmo'];

  test('without streaming: true and with the descriptor set, server-streaming and bidi calls never reach the shadow, and are counted as skipped', async () => {
    const before = { ...v2.calls };
    const watched = await watch(client, 'unary-only');
    assert.deepEqual(
      watched.map((i) => [i['name'], i['priceCents']]),
      [
        ['Widget', 1299],
        ['Gadget', 500],
        ['Gizmo', 200],
      ],
    );
    const chatted = await chat(client, 'unary-only', ['a', 'b', 'c']);
    assert.deepEqual(
      chatted.map((i) => [i['name'], i['priceCents']]),
      [
        ['a', 100],
        ['b', 500],
        ['c', 100],
      ],
    );
    assert.equal((await collect(client, 'unary-only', ['a'])).total, 1, 'one message, but the method streams');
    await untilCount(gw, 'unary-only', 'skipped', 3);
    // Unary calls of the same route are still mirrored.
    const listed = await new Promise<unknown>((resolve, reject) =>
      client.makeUnaryRequest(LIST.path, LIST.requestSerialize, LIST.responseDeserialize, { query: 'all' }, variant('unary-only'), (err, reply) =>
        err ? reject(err) : resolve(reply),
      ),
    );
    assert.ok(listed);
    await untilCount(gw, 'unary-only', 'completed', 1);
    assert.deepEqual(v2.calls, before, 'the shadow saw no streaming call');
    assert.equal(await shadowCount(gw, 'unary-only', 'skipped'), 3);
  });

  test('without streaming: true nor a descriptor set, a bidi call never reaches the shadow and a server stream is not compared; both counted as skipped', async () => {
    const chatsBefore = v2.calls.Chat;
    assert.deepEqual(
      (await chat(client, 'unary-only-numbered', ['a', 'b', 'c'])).map((i) => i['name']),
      ['a', 'b', 'c'],
    );
    await untilCount(gw, 'unary-only-numbered', 'skipped', 1);
    assert.equal(v2.calls.Chat, chatsBefore, 'the bidi call was not copied');
    // A client stream of more than one message is not a unary call's request.
    const collectsBefore = v2.calls.Collect;
    assert.equal((await collect(client, 'unary-only-numbered', ['a', 'b', 'c'])).total, 3);
    await untilCount(gw, 'unary-only-numbered', 'skipped', 2);
    assert.equal(v2.calls.Collect, collectsBefore, 'the client stream was not copied');
    // A server stream's request is one message, like a unary call's: the copy leaves, and is given up once the answer streams.
    assert.deepEqual(
      (await watch(client, 'unary-only-numbered')).map((i) => i['name']),
      NAMES,
    );
    await untilCount(gw, 'unary-only-numbered', 'skipped', 3);
    await gw.diffs.engine.idle();
    assert.deepEqual(events('unary-only-numbered'), [], 'nothing compared');
    assert.equal(await shadowCount(gw, 'unary-only-numbered', 'completed'), 0);
  });

  test('with streaming: true, a server stream whose v2 changes one field of one message is reported at that field', async () => {
    const answers = await watch(client, 'streaming');
    assert.deepEqual(
      answers.map((i) => [i['name'], i['priceCents']]),
      [
        ['Widget', 1299],
        ['Gadget', 500],
        ['Gizmo', 200],
      ],
      "the user's answers are the primary's",
    );
    await until(() => events('streaming').length > 0);
    await gw.diffs.engine.idle();
    assert.deepEqual(paths(events('streaming')), [['body', '/1/price_cents', '500', '550']]);
    assert.equal(events('streaming')[0]!.truncated, false);
  });

  test('with streaming: true, a bidi call is mirrored message by message', async () => {
    const queries = ['a', 'b', 'c', 'd'];
    const before = v2.chatQueries.length;
    const answers = await chat(client, 'streaming', queries);
    assert.deepEqual(
      answers.map((i) => [i['name'], i['priceCents']]),
      [
        ['a', 100],
        ['b', 500],
        ['c', 100],
        ['d', 100],
      ],
    );
    await until(() => events('streaming').some((e) => e.path.startsWith('/shop.Catalog/Chat')));
    assert.deepEqual(v2.chatQueries.slice(before), queries, 'the copy carried every message, in order');
    const event = events('streaming').find((e) => e.path.startsWith('/shop.Catalog/Chat'))!;
    assert.deepEqual(paths([event]), [['body', '/1/price_cents', '500', '550']]);
  });

  test('with streaming: true, a client stream is mirrored with every message, and its equal answers match', async () => {
    const before = v2.calls.Collect;
    const comparisons = () => gw.diffs.store.recent({ route: 'streaming' }, { limit: 50 }).length;
    const differing = comparisons();
    const matches = () => metric(gw, METRIC.shadowComparisons, { route: 'streaming', result: 'match' });
    const matched = await matches();
    const completed = await shadowCount(gw, 'streaming', 'completed');
    assert.deepEqual((await collect(client, 'streaming', ['x', 'y', 'z'])).items.map((i) => i.name), ['x', 'y', 'z']);
    await untilCount(gw, 'streaming', 'completed', completed + 1);
    assert.equal(v2.calls.Collect, before + 1);
    await gw.diffs.engine.idle();
    assert.equal(comparisons(), differing, 'no difference reported');
    const end = Date.now() + 5000;
    while ((await matches()) <= matched && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await matches(), matched + 1, 'compared, and found equal');
  });

  test('with streaming: true, a call the user cancels has its copy cancelled too, counted as skipped', async () => {
    const before = v2.chatsCancelled;
    const skipped = await shadowCount(gw, 'streaming', 'skipped');
    const call = client.makeBidiStreamRequest(CHAT.path, CHAT.requestSerialize, CHAT.responseDeserialize, variant('streaming'));
    call.on('error', () => undefined);
    const first = await new Promise<Record<string, unknown>>((resolve) => {
      call.once('data', resolve);
      call.write({ query: 'a' });
    });
    assert.equal(first['name'], 'a');
    await until(() => v2.chatQueries.at(-1) === 'a');
    call.cancel();
    await untilCount(gw, 'streaming', 'skipped', skipped + 1);
    await until(() => v2.chatsCancelled > before);
  });

  test('with streaming: true and no descriptor set, a bidi call is mirrored and compared by field number', async () => {
    await chat(client, 'streaming-numbered', ['a', 'b']);
    await until(() => events('streaming-numbered').length > 0);
    assert.deepEqual(paths(events('streaming-numbered')), [['body', '/1/2', 500, 550]]);
  });

  test('a long bidi call to a shadow that never reads: the copy is cut at limits.shadowBodyBytes, the user call goes on whole', async () => {
    const pad = 'x'.repeat(4000);
    // 100 messages of about 4 KB: six times limits.shadowBodyBytes (64kb).
    const queries = Array.from({ length: 100 }, (_, i) => `${i}:${pad}`);
    const answers = await chat(client, 'stuck', queries);
    assert.equal(answers.length, queries.length);
    assert.ok(answers.every((a, i) => a['name'] === queries[i] && a['priceCents'] === (i === 1 ? 500 : 100)), "every answer is the primary's");
    await untilCount(gw, 'stuck', 'skipped', 1);
    await until(() => stuck.resets.length > 0);
    assert.deepEqual(stuck.resets, [http2.constants.NGHTTP2_CANCEL], "the copy's stream was cancelled");
    assert.equal(await shadowCount(gw, 'stuck', 'completed'), 0);
    // Its slot was given back.
    const text = await (await fetch(gw.adminUrl + '/metrics')).text();
    assert.match(text, /^gatewayctl_shadow_inflight 0$/m);
  });
});
