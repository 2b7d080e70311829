import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileMatcher, hostOf, prefixMatches, type RequestFacts } from '../../src/routing/matcher.js';
import type { RouteMatchConfig } from '../../src/config/types.js';

const facts = (over: Partial<RequestFacts> = {}): RequestFacts => ({
  method: 'GET',
  path: '/',
  host: 'shop.example.com',
  headers: {},
  ...over,
});
const match = (over: Partial<RouteMatchConfig>): RouteMatchConfig => ({
  prefix: undefined,
  methods: undefined,
  headers: undefined,
  host: undefined,
  ...over,
});

describe('prefix on segment boundaries', () => {
  const cases: [string, string, boolean][] = [
    ['/shop', '/shop', true],
    ['/shop', '/shop/', true],
    ['/shop', '/shop/cart', true],
    ['/shop', '/shopping', false],
    ['/shop', '/sho', false],
    ['/shop', '/', false],
    ['/api/v1', '/api/v1/x', true],
    ['/api/v1', '/api/v10', false],
  ];
  for (const [prefix, path, expected] of cases) {
    test(`${prefix} vs ${path}: ${expected}`, () => assert.equal(prefixMatches(prefix, path), expected));
  }
});

describe('compiled matchers', () => {
  const cases: { desc: string; match: Partial<RouteMatchConfig>; request: Partial<RequestFacts>; expected: boolean }[] = [
    { desc: 'empty match takes everything', match: {}, request: { path: '/anything' }, expected: true },
    { desc: 'method in list', match: { methods: ['GET', 'POST'] }, request: { method: 'POST' }, expected: true },
    { desc: 'method not in list', match: { methods: ['GET'] }, request: { method: 'DELETE' }, expected: false },
    { desc: 'exact header', match: { headers: { 'x-tenant': 'acme' } }, request: { headers: { 'x-tenant': 'acme' } }, expected: true },
    { desc: 'header value differs', match: { headers: { 'x-tenant': 'acme' } }, request: { headers: { 'x-tenant': 'other' } }, expected: false },
    { desc: 'header missing', match: { headers: { 'x-tenant': 'acme' } }, request: {}, expected: false },
    { desc: 'host exact', match: { host: 'shop.example.com' }, request: {}, expected: true },
    { desc: 'host differs', match: { host: 'api.example.com' }, request: {}, expected: false },
    { desc: 'wildcard host', match: { host: '*.example.com' }, request: {}, expected: true },
    { desc: 'wildcard needs a subdomain', match: { host: '*.example.com' }, request: { host: 'example.com' }, expected: false },
    {
      desc: 'all fields must hold',
      match: { prefix: '/shop', methods: ['GET'], headers: { 'x-tenant': 'acme' }, host: 'shop.example.com' },
      request: { path: '/shop/1', headers: { 'x-tenant': 'acme' } },
      expected: true,
    },
    {
      desc: 'one field failing fails the match',
      match: { prefix: '/shop', methods: ['GET'], headers: { 'x-tenant': 'acme' } },
      request: { path: '/shop/1', method: 'POST', headers: { 'x-tenant': 'acme' } },
      expected: false,
    },
  ];
  for (const c of cases) {
    test(c.desc, () => assert.equal(compileMatcher(match(c.match))(facts(c.request)), c.expected));
  }
});

describe('host header parsing', () => {
  const cases: [string | undefined, string][] = [
    ['Shop.Example.com:8080', 'shop.example.com'],
    ['shop.example.com.', 'shop.example.com'],
    ['[::1]:8080', '[::1]'],
    [undefined, ''],
  ];
  for (const [header, expected] of cases) test(`${header} -> ${expected}`, () => assert.equal(hostOf(header), expected));
});
