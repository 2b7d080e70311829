/**
 * A gRPC dark launch through the real gateway: a grpc-js client calls over
 * h2c, the gateway forwards to v1 (h2c) and copies each unary call to v2
 * (h2c), a grpc-js server that renames a value. The client gets v1's
 * answer; the diff store reports the difference at the field name with the
 * descriptor set protoc made, at the field number without one. A dead
 * shadow leaves the client's call untouched.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { DiffEvent } from '../../src/diff/types.js';
import { readFileSync } from 'node:fs';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { deadPort } from '../helpers/upstream.js';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/grpc');
const root = protobuf.loadSync(join(FIXTURES, 'catalog.proto'));
const ListRequest = root.lookupType('shop.ListRequest');
const ListReply = root.lookupType('shop.ListReply');

const codec = (type: protobuf.Type) => ({
  serialize: (value: object) => Buffer.from(type.encode(type.fromObject(value)).finish()),
  deserialize: (bytes: Buffer) => type.toObject(type.decode(bytes)) as Record<string, unknown>,
});

const LIST = {
  path: '/shop.Catalog/List',
  requestStream: false,
  responseStream: false,
  requestSerialize: codec(ListRequest).serialize,
  requestDeserialize: codec(ListRequest).deserialize,
  responseSerialize: codec(ListReply).serialize,
  responseDeserialize: codec(ListReply).deserialize,
};
const CATALOG: grpc.ServiceDefinition = { List: LIST };
const CatalogClient = grpc.makeGenericClientConstructor(CATALOG, 'Catalog');

/** A catalog version: `firstName` is what it calls the first item. Counts the calls it got, and their shadow marks. */
async function startCatalog(firstName: string): Promise<{ port: number; server: grpc.Server; marks: string[] }> {
  const marks: string[] = [];
  const server = new grpc.Server();
  server.addService(CATALOG, {
    List: (call: grpc.ServerUnaryCall<{ query: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      marks.push(String(call.metadata.get('x-shadow-request')[0] ?? ''));
      callback(null, { items: [{ name: firstName, priceCents: 1299, stock: 'IN_STOCK' }, { name: 'Gadget', priceCents: 500, stock: 'SOLD_OUT' }], total: 2 });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, server, marks };
}

function list(client: grpc.Client, query: string): Promise<{ items: { name: string }[] }> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(LIST.path, LIST.requestSerialize, LIST.responseDeserialize, { query }, (err, reply) =>
      err ? reject(err) : resolve(reply as unknown as { items: { name: string }[] }),
    ),
  );
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
    gw = await startGateway(`
listen: { address: 127.0.0.1:0, h2c: true }
admin: 127.0.0.1:0
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
    client?.close();
    await gw?.close();
    v1?.server.forceShutdown();
    v2?.server.forceShutdown();
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
