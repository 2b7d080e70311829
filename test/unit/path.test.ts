import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isValidHost, normalizeTarget } from '../../src/proxy/path.js';

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
    ['/a"b<c>{d}|e^f`g[h]', '/a%22b%3Cc%3E%7Bd%7D%7Ce%5Ef%60g%5Bh%5D'],
    ['/shop;v=1/x', '/shop;v=1/x'],
    ['/a/...;x', '/a/...;x'],
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
    '/shop/..;/admin',
    '/shop/.;x/admin',
    '/shop/%2e%2e;jsessionid=1/admin',
    'shop',
    '*',
    'ftp://example.com/x',
    'http://user@example.com/x',
    'http:///x',
    'http://exa mple.com/x',
    'http://example.com/../x',
  ];
  const absolute: [string, string, string][] = [
    ['http://example.com/x?y=1', 'example.com', '/x?y=1'],
    ['HTTPS://Example.com:8443', 'Example.com:8443', '/'],
    ['http://[::1]:80?q', '[::1]:80', '/?q'],
    ['http://a.example//b/%7Ec', 'a.example', '/b/~c'],
  ];
  for (const [input, authority, expected] of absolute) {
    test(`absolute-form ${input} -> ${authority} ${expected}`, () => {
      const r = normalizeTarget(input);
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.authority, authority);
      assert.equal(r.path + r.query, expected);
    });
  }
  for (const input of refused) {
    test(`refuses ${input}`, () => assert.equal(normalizeTarget(input).ok, false));
  }
});

describe('Host values', () => {
  const valid = ['', 'a', 'shop.example', 'shop.example:8080', 'a:', 'a:0', 'a:65535', '127.0.0.1:80', '[::1]', '[::1]:8080', '[2001:db8::1]', '[::ffff:10.0.0.1]:1', 'xn--bcher-kva.example', 'a%20b'];
  const invalid = ['a:99999', 'a:65536', 'a:123456', 'a:80:90', 'a::80', '[::1', '[::1]x', '[::1]:8x', '[]', '[::1]]', 'a]', 'a[', '[a', '[zz::1]', '[::1]:99999', 'a:-1', 'a:+80', 'a b', 'a@b', 'a/b', 'a\\b', 'caf\u00e9'];
  for (const host of valid) test(`${JSON.stringify(host)} is a host`, () => assert.equal(isValidHost(host), true));
  for (const host of invalid) test(`${JSON.stringify(host)} is not`, () => assert.equal(isValidHost(host), false));
});
