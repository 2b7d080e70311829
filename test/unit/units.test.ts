import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addressesClash, parseAddress, parseDuration, parseSize } from '../../src/config/units.js';

describe('durations', () => {
  const ok: [unknown, number][] = [['500ms', 500], ['10s', 10_000], ['2m', 120_000], ['1h', 3_600_000], ['1.5s', 1500], ['0.5s', 500]];
  for (const [input, ms] of ok) test(`${input} = ${ms}ms`, () => assert.deepEqual(parseDuration(input), { ok: true, value: ms }));
  for (const bad of [10, '10', '10x', '', '0s', 0, '-1s', '1 day', null, '10S']) {
    test(`refuses ${JSON.stringify(bad)}`, () => assert.equal(parseDuration(bad).ok, false));
  }
});

describe('sizes', () => {
  const ok: [unknown, number][] = [[1024, 1024], ['16kb', 16_384], ['10mb', 10_485_760], ['1gb', 1_073_741_824], ['1KB', 1024], ['100b', 100]];
  for (const [input, bytes] of ok) test(`${input} = ${bytes}`, () => assert.deepEqual(parseSize(input), { ok: true, value: bytes }));
  for (const bad of ['10', '1tb', -1, 1.5, 'lots', '10 m']) test(`refuses ${JSON.stringify(bad)}`, () => assert.equal(parseSize(bad).ok, false));
});

describe('addresses', () => {
  const ok: [unknown, string, number][] = [
    ['0.0.0.0:8080', '0.0.0.0', 8080],
    [8080, '', 8080],
    ['8080', '', 8080],
    [':9901', '', 9901],
    ['[::1]:9901', '::1', 9901],
    ['localhost:80', 'localhost', 80],
  ];
  for (const [input, host, port] of ok) {
    test(`${input}`, () => assert.deepEqual(parseAddress(input, ''), { ok: true, value: { host, port } }));
  }
  for (const bad of ['::1:80', 'host', '1.2.3.4:99999', 'a b:80', true]) {
    test(`refuses ${JSON.stringify(bad)}`, () => assert.equal(parseAddress(bad, '').ok, false));
  }
  test('clashes', () => {
    assert.equal(addressesClash({ host: '0.0.0.0', port: 80 }, { host: '127.0.0.1', port: 80 }), true);
    assert.equal(addressesClash({ host: '127.0.0.1', port: 80 }, { host: '127.0.0.1', port: 81 }), false);
    assert.equal(addressesClash({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0 }), false);
  });
});
