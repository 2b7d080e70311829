/**
 * gRPC answers from real @grpc/grpc-js servers (v1, and a v2 that renames a
 * value), fetched over h2 with Node's http2 client the way a shadow
 * captures them (DATA bytes, headers, trailers), then compared by the real
 * diff engine: at the field name with the descriptor set protoc made, at
 * the field number without; grpc-js's Trailers-Only errors as it sends
 * them. (grpc-js servers never compress answers; compressed messages are
 * covered in test/unit/diff-grpc.test.ts.)
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { DiffEngine } from '../../src/diff/engine.js';
import type { CompareOutcome } from '../../src/diff/types.js';
import type { DiffConfig } from '../../src/config/types.js';
import { frame } from '../../src/protobuf/frames.js';
import type { CapturedResponse, MirroredPair } from '../../src/shadow/pair.js';
import { REPO_ROOT } from '../helpers/cli.js';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/grpc');
const root = protobuf.loadSync(join(FIXTURES, 'catalog.proto'));
const ListRequest = root.lookupType('shop.ListRequest');
const ListReply = root.lookupType('shop.ListReply');
const Item = root.lookupType('shop.Item');

const codec = (type: protobuf.Type) => ({
  serialize: (value: object) => Buffer.from(type.encode(type.fromObject(value)).finish()),
  deserialize: (bytes: Buffer) => type.toObject(type.decode(bytes)),
});

const method = (name: string, response: protobuf.Type, responseStream: boolean) => ({
  path: `/shop.Catalog/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: codec(ListRequest).serialize,
  requestDeserialize: codec(ListRequest).deserialize,
  responseSerialize: codec(response).serialize,
  responseDeserialize: codec(response).deserialize,
});

const CATALOG: grpc.ServiceDefinition = { List: method('List', ListReply, false), Watch: method('Watch', Item, true) };

/** A catalog version: `rename` is what it calls the first item. */
async function startCatalog(firstName: string): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(CATALOG, {
    List: (call: grpc.ServerUnaryCall<{ query: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      if (call.request.query === 'missing') return callback({ code: grpc.status.NOT_FOUND, details: 'no such catalog' });
      callback(null, { items: [{ name: firstName, priceCents: 1299, stock: 'IN_STOCK' }, { name: 'Gadget', priceCents: 500, stock: 'SOLD_OUT' }], total: 2 });
    },
    Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      call.write({ name: 'Gadget' });
      call.write({ name: firstName });
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, server };
}

/** One call over h2c, captured as the shadow path captures an answer. */
function capture(port: number, method: string, query: string): Promise<CapturedResponse> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const started = performance.now();
    const stream = session.request({
      ':method': 'POST',
      ':path': method,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (headers = { ...h } as IncomingHttpHeaders));
    stream.on('trailers', (t) => (trailers = { ...t } as IncomingHttpHeaders));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      session.close();
      const body = Buffer.concat(chunks);
      const status = Number(headers[':status']);
      delete headers[':status'];
      resolve({ status, headers, body, truncated: false, bodyBytes: body.length, latencyMs: performance.now() - started, ...(trailers ? { trailers } : {}) });
    });
    stream.end(frame(ListRequest.encode(ListRequest.fromObject({ query })).finish()));
  });
}

const DIFF: DiffConfig = { enabled: true, ignoreHeaders: [], ignorePaths: [], baseline: undefined, maxBodyBytes: 1024 * 1024, endpoints: [], tolerance: [], unordered: [], latency: { maxRatio: 1.5 } };

async function compare(primary: CapturedResponse, shadow: CapturedResponse, method: string, diff: Partial<DiffConfig> = {}): Promise<CompareOutcome> {
  const outcomes: CompareOutcome[] = [];
  const engine = new DiffEngine({ sink: { ingest: (o) => outcomes.push(o) }, queueLimit: () => 10 });
  const pair: MirroredPair = {
    route: 'catalog',
    diff: { ...DIFF, ...diff },
    method: 'POST',
    path: method,
    requestId: 'req-1',
    time: new Date(),
    primaryUpstream: 'v1',
    primary,
    shadows: [{ upstream: 'v2', result: { outcome: 'completed', latencyMs: shadow.latencyMs, status: shadow.status, response: shadow } }],
    baseline: undefined,
  };
  engine.submit(pair);
  await engine.idle();
  engine.close();
  assert.equal(engine.failed, 0);
  assert.equal(outcomes.length, 1);
  return outcomes[0]!;
}

const listed = (o: CompareOutcome) => (o.event?.differences ?? []).map((d) => [d.kind, d.path, d.primary, d.shadow]);
const DESCRIPTORS = { protoDescriptors: join(FIXTURES, 'catalog.pb') };

describe('gRPC diffs of real grpc-js answers', () => {
  let v1: Awaited<ReturnType<typeof startCatalog>>;
  let v2: Awaited<ReturnType<typeof startCatalog>>;
  before(async () => {
    v1 = await startCatalog('Widget');
    v2 = await startCatalog('Widget Pro');
  });
  after(() => {
    for (const s of [v1, v2]) s?.server.forceShutdown();
  });

  test('a v2 that renames a value: at the field name with the descriptor set, at the field number without', async () => {
    const a = await capture(v1.port, '/shop.Catalog/List', 'all');
    const b = await capture(v2.port, '/shop.Catalog/List', 'all');
    assert.equal(a.trailers?.['grpc-status'], '0');
    const named = await compare(a, b, '/shop.Catalog/List', DESCRIPTORS);
    assert.deepEqual(listed(named), [['body', '/items/0/name', 'Widget', 'Widget Pro']]);
    assert.equal(named.event?.endpoint, '/shop.Catalog/List');
    const numbered = await compare(a, b, '/shop.Catalog/List');
    assert.deepEqual(listed(numbered), [['body', '/1/0/1', 'Widget', 'Widget Pro']]);
  });

  test('server streaming: one element per message', async () => {
    const a = await capture(v1.port, '/shop.Catalog/Watch', 'all');
    const b = await capture(v2.port, '/shop.Catalog/Watch', 'all');
    assert.deepEqual(listed(await compare(a, b, '/shop.Catalog/Watch', DESCRIPTORS)), [['body', '/1/name', 'Widget', 'Widget Pro']]);
  });

  test("grpc-js's Trailers-Only error against an answer: the status difference, named as the cause", async () => {
    const a = await capture(v1.port, '/shop.Catalog/List', 'all');
    const b = await capture(v2.port, '/shop.Catalog/List', 'missing');
    // Trailers-Only: the status rides in the headers, no DATA, no trailers.
    assert.deepEqual([b.headers['grpc-status'], b.trailers, b.body.length], ['5', undefined, 0]);
    const outcome = await compare(a, b, '/shop.Catalog/List', DESCRIPTORS);
    const byPath = new Map(listed(outcome).map((d) => [d[1], d]));
    assert.deepEqual(byPath.get('grpc-status'), ['status', 'grpc-status', '0 OK', '5 NOT_FOUND']);
    // grpc-js says "OK" on success.
    assert.deepEqual(byPath.get('grpc-message'), ['header', 'grpc-message', 'OK', 'no such catalog']);
    assert.equal(outcome.counts.endpoints?.[0]?.causes[0]?.cause, 'status 0 OK → 5 NOT_FOUND');
    // The same error from both: equal.
    const again = await capture(v1.port, '/shop.Catalog/List', 'missing');
    assert.equal((await compare(again, b, '/shop.Catalog/List', DESCRIPTORS)).event, undefined);
  });
});
