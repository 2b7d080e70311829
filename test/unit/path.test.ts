import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normalizeTarget } from '../../src/proxy/path.js';

describe('request target normalization', () => {
  const accepted: [string, string][] = [
    ['/shop/cart?x=1', '/shop/cart?x=1'],
    ['/shop/%7Euser', '/shop/~user'],
    ['/shop/%61bc', '/shop/abc'],
    ['/a%2eb', '/a.b'],
    ['/shop//cart', '/shop/cart'],
    ['///shop', '/shop'],
    ['/x%3ay', '/x%3Ay'],
    ['/files/a.b/c..d', '/files/a.b/c..d'],
    ['/q?a=%2e%2e/&b=//', '/q?a=%2e%2e/&b=//'],
    ['/', '/'],
  ];
  for (const [input, expected] of accepted) {
    test(`${input} -> ${expected}`, () => {
      const r = normalizeTarget(input);
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.path + r.query, expected);
    });
  }
  const refused = [
    '/shop/../admin',
    '/shop/./x',
    '/shop/%2e%2e/admin',
    '/shop/.%2E/admin',
    '/shop/..',
    '/a%2fb',
    '/a%5Cb',
    '/a\\b',
    '/a%00b',
    '/a%zz',
    '/a%4',
    'shop',
    '*',
    'http://example.com/x',
  ];
  for (const input of refused) {
    test(`refuses ${input}`, () => assert.equal(normalizeTarget(input).ok, false));
  }
});
