/** The unreachable-route warning: a later route every request of which an earlier one takes. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateConfigSource } from '../../src/config/validate.js';

/** Whether the second of two routes is reported unreachable behind the first. */
function shadowed(first: string, second: string): boolean {
  const text = `upstreams: { a: "http://127.0.0.1:1" }
routes:
  - { name: first, backends: [{ upstream: a }], match: ${first} }
  - { name: second, backends: [{ upstream: a }], match: ${second} }
`;
  const result = validateConfigSource({ file: 'c.yaml', text }, {});
  assert.ok(result.config, result.diagnostics.map((d) => d.message).join('\n'));
  return result.diagnostics.some((d) => d.code === 'unreachable');
}

describe('route coverage', () => {
  test('prefixes on segment boundaries', () => {
    assert.equal(shadowed('{ prefix: /shop }', '{ prefix: /shop/cart }'), true);
    assert.equal(shadowed('{ prefix: /shop }', '{ prefix: /shop }'), true);
    assert.equal(shadowed('{ prefix: /shop }', '{ prefix: /shopping }'), false);
    assert.equal(shadowed('{ prefix: /shop }', '{}'), false);
    assert.equal(shadowed('{}', '{ prefix: /x }'), true);
  });

  test('methods: every method of the later route', () => {
    assert.equal(shadowed('{ methods: [GET, POST] }', '{ methods: [get] }'), true);
    assert.equal(shadowed('{ methods: [GET] }', '{ methods: [GET, POST] }'), false);
    assert.equal(shadowed('{ methods: [GET] }', '{}'), false);
  });

  test('hosts: exact, and wildcards over their subdomains', () => {
    assert.equal(shadowed('{ host: "*.example.com" }', '{ host: a.example.com }'), true);
    assert.equal(shadowed('{ host: "*.example.com" }', '{ host: "*.a.example.com" }'), true);
    assert.equal(shadowed('{ host: "*.example.com" }', '{ host: example.com }'), false);
    assert.equal(shadowed('{ host: a.example.com }', '{ host: "*.example.com" }'), false);
    assert.equal(shadowed('{ host: example.com }', '{}'), false);
  });

  test("headers: the later route must require each of the earlier one's", () => {
    assert.equal(shadowed('{ headers: { x-beta: "1" } }', '{ headers: { X-Beta: "1", x-more: "2" } }'), true);
    assert.equal(shadowed('{ headers: { x-beta: "1" } }', '{ headers: { x-beta: "2" } }'), false);
    assert.equal(shadowed('{ headers: { x-beta: "1" } }', '{}'), false);
  });
});
