/**
 * How the serving process reads descriptor sets without protobufjs (and
 * agreeing with it): the method flags that tell unary gRPC calls from
 * streaming ones, the services, and the type references that must resolve
 * for validate to accept a set; and a message counter over a body's chunks.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { checkDescriptorFile } from '../../src/config/descriptor-file.js';
import { DescriptorSetError, loadDescriptorSet } from '../../src/protobuf/descriptors.js';
import { outlineProblem, readDescriptorOutline } from '../../src/protobuf/outline.js';
import { frame, FrameCounter } from '../../src/protobuf/frames.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { loadAllParsers } from '../../src/diff/parsers.js';

// Parsing here runs outside the comparing engine, which would load these first.
await loadAllParsers();

const readCallShapes = (bytes: Uint8Array) => readDescriptorOutline(bytes)?.methods;

const FIXTURES = join(REPO_ROOT, 'test/fixtures/grpc');

describe('call shapes from a descriptor set', () => {
  test("each method's streaming flags, as protobufjs reads them", () => {
    for (const file of ['catalog.pb', 'catalog-no-imports.pb']) {
      const shapes = readCallShapes(readFileSync(join(FIXTURES, file)))!;
      assert.deepEqual(Object.fromEntries(shapes), {
        '/shop.Catalog/List': { requestStream: false, responseStream: false },
        '/shop.Catalog/Watch': { requestStream: false, responseStream: true },
        '/shop.Catalog/Chat': { requestStream: true, responseStream: true },
        '/shop.Catalog/Collect': { requestStream: true, responseStream: false },
      });
    }
    const schema = loadDescriptorSet(readFileSync(join(FIXTURES, 'catalog.pb')));
    for (const [path, shape] of readCallShapes(readFileSync(join(FIXTURES, 'catalog.pb')))!) {
      const m = schema.method(path)!;
      assert.deepEqual(shape, { requestStream: m.requestStream, responseStream: m.responseStream }, path);
    }
  });

  test('bytes that are not a descriptor set give nothing', () => {
    assert.equal(readCallShapes(Buffer.from([0xff, 0xff, 0xff])), undefined);
    assert.equal(readCallShapes(readFileSync(join(FIXTURES, 'not-descriptors.pb'))), undefined);
    assert.equal(readCallShapes(Buffer.alloc(0))?.size, 0);
  });
});

/** A FileDescriptorSet written field by field, as protoc would (descriptor.proto's own message types). */
function descriptorSet(files: Record<string, unknown>[]): Uint8Array {
  // The extension's module is descriptor.proto's namespace; its typings leave the types out.
  const set = (descriptor as unknown as Record<string, protobuf.Type>)['FileDescriptorSet']!;
  return set.encode(set.fromObject({ file: files })).finish();
}

const MESSAGE = 11;
const ENUM = 14;
const OPTIONAL = 1;
const field = (name: string, number: number, type: number, typeName?: string) => ({ name, number, label: OPTIONAL, type, ...(typeName ? { typeName } : {}) });

/** Nested messages and enums, a relative name, a map-free nested reference, two services. */
const NESTED = {
  name: 'shop/orders.proto',
  package: 'shop.v2',
  messageType: [
    {
      name: 'Order',
      field: [field('line', 1, MESSAGE, '.shop.v2.Order.Line'), field('state', 2, ENUM, 'State'), field('note', 3, 9)],
      nestedType: [{ name: 'Line', field: [field('kind', 1, ENUM, '.shop.v2.Order.Line.Kind')], enumType: [{ name: 'Kind', value: [{ name: 'KIND_UNSET', number: 0 }] }] }],
    },
    { name: 'Get', field: [field('id', 1, 9)] },
  ],
  enumType: [{ name: 'State', value: [{ name: 'STATE_UNSET', number: 0 }] }],
  service: [
    { name: 'Orders', method: [{ name: 'Get', inputType: '.shop.v2.Get', outputType: '.shop.v2.Order' }, { name: 'Tail', inputType: '.shop.v2.Get', outputType: '.shop.v2.Order', serverStreaming: true }] },
    { name: 'Admin', method: [{ name: 'Drop', inputType: 'Get', outputType: 'Order', clientStreaming: true }] },
  ],
};

describe('descriptor outline (what validate and the serving thread read)', () => {
  test('services, methods and shapes as protobufjs reads them; every reference resolves', () => {
    const bytes = descriptorSet([NESTED]);
    const outline = readDescriptorOutline(bytes)!;
    assert.deepEqual(outline.services, ['shop.v2.Orders', 'shop.v2.Admin']);
    assert.deepEqual(outline.unresolved, []);
    assert.equal(outlineProblem(outline), undefined);
    const schema = loadDescriptorSet(bytes);
    assert.deepEqual(outline.services, schema.services);
    assert.deepEqual([...outline.methods.keys()], ['/shop.v2.Orders/Get', '/shop.v2.Orders/Tail', '/shop.v2.Admin/Drop']);
    for (const [path, shape] of outline.methods) {
      const m = schema.method(path)!;
      assert.deepEqual(shape, { requestStream: m.requestStream, responseStream: m.responseStream }, path);
    }
  });

  test('a type the set lacks: named with where it is used, refused by protobufjs too', () => {
    const missing = structuredClone(NESTED);
    missing.messageType[0]!.field.push(field('at', 4, MESSAGE, '.google.protobuf.Timestamp'));
    missing.service[0]!.method[0]!.outputType = '.shop.v2.Gone';
    const bytes = descriptorSet([missing]);
    const outline = readDescriptorOutline(bytes)!;
    assert.deepEqual(outline.unresolved, [
      { name: 'google.protobuf.Timestamp', from: 'shop.v2.Order.at' },
      { name: 'shop.v2.Gone', from: '/shop.v2.Orders/Get' },
    ]);
    assert.match(outlineProblem(outline)!, /^no such type: google\.protobuf\.Timestamp \(used by shop\.v2\.Order\.at\) and 1 more; was it written with protoc --include_imports\?$/);
    assert.throws(() => loadDescriptorSet(bytes), DescriptorSetError);
    // A relative name resolves from the innermost scope outwards, not from anywhere.
    const relative = structuredClone(NESTED);
    relative.messageType[1]!.field.push(field('kind', 2, ENUM, 'Kind'));
    assert.deepEqual(readDescriptorOutline(descriptorSet([relative]))!.unresolved, [{ name: 'Kind', from: 'shop.v2.Get.kind' }]);
  });

  test('the sets protoc wrote: with their imports, usable; without, refused naming the flag', () => {
    const full = checkDescriptorFile(join(FIXTURES, 'catalog.pb'));
    assert.ok('outline' in full, JSON.stringify(full));
    assert.deepEqual(full.outline.services, ['shop.Catalog']);
    const lacking = checkDescriptorFile(join(FIXTURES, 'catalog-no-imports.pb'));
    assert.match('problem' in lacking ? lacking.problem : '', /^is not a usable descriptor set: no such type: google\.protobuf\.Timestamp .*protoc --include_imports/);
    assert.throws(() => loadDescriptorSet(readFileSync(join(FIXTURES, 'catalog-no-imports.pb'))), /--include_imports/);
    assert.deepEqual(checkDescriptorFile(join(FIXTURES, 'not-descriptors.pb')), { problem: 'is not a usable descriptor set: not a FileDescriptorSet (not protobuf wire format)' });
    assert.equal(outlineProblem(readDescriptorOutline(Buffer.alloc(0))!), 'the descriptor set declares nothing');
    assert.throws(() => loadDescriptorSet(Buffer.alloc(0)), /declares nothing/);
  });
});

describe('FrameCounter', () => {
  const split = (body: Buffer, size: number) => Array.from({ length: Math.ceil(body.length / size) }, (_, i) => body.subarray(i * size, (i + 1) * size));

  test('one message, whatever the chunks: single', () => {
    const body = frame(Buffer.from('hello'));
    for (const size of [1, 2, 3, 5, 6, body.length]) {
      const counter = new FrameCounter();
      for (const chunk of split(body, size)) counter.push(chunk);
      assert.equal(counter.single, true, `chunks of ${size}`);
    }
  });

  test('a second message, or a cut one, is not single', () => {
    const two = Buffer.concat([frame(Buffer.from('a')), frame(Buffer.alloc(0)), frame(Buffer.from('bc'))]);
    for (const size of [1, 4, two.length]) {
      const counter = new FrameCounter();
      for (const chunk of split(two, size)) counter.push(chunk);
      assert.deepEqual([counter.begun, counter.complete, counter.single], [3, 3, false]);
    }
    const cut = new FrameCounter();
    cut.push(frame(Buffer.from('hello')).subarray(0, 7));
    assert.deepEqual([cut.begun, cut.complete, cut.single], [1, 0, false]);
    const none = new FrameCounter();
    assert.equal(none.single, false);
    // A second prefix begun is enough to know.
    const begun = new FrameCounter();
    begun.push(Buffer.concat([frame(Buffer.from('a')), Buffer.from([0])]));
    assert.equal(begun.begun, 2);
  });
});
