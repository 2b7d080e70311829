/**
 * How the serving thread tells unary gRPC calls from streaming ones: the
 * method flags of a descriptor set protoc wrote, read without protobufjs
 * (and agreeing with it), and a message counter over a body's chunks.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadDescriptorSet } from '../../src/protobuf/descriptors.js';
import { readCallShapes } from '../../src/protobuf/call-shapes.js';
import { frame, FrameCounter } from '../../src/protobuf/frames.js';
import { REPO_ROOT } from '../helpers/cli.js';

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
