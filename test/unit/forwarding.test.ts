/**
 * The forwarding headers as the upstream gets them, for the peers and
 * values the end-to-end tests do not reach: IPv6 peers, quoting, repeated
 * headers from a trusted proxy.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import { setForwardingHeaders } from '../../src/proxy/forwarding.js';

const forward = (headers: IncomingHttpHeaders, peer: string, trustedPeer = false, encrypted = false): IncomingHttpHeaders => {
  const h = { ...headers };
  setForwardingHeaders(h, { peer, trustedPeer, encrypted });
  return h;
};

describe('forwarding headers', () => {
  test('an IPv6 peer is bracketed and quoted in Forwarded, bare in X-Real-IP and X-Forwarded-For', () => {
    const h = forward({ host: 'shop.example.com' }, '2001:db8::7', false, true);
    assert.equal(h['forwarded'], 'for="[2001:db8::7]";proto=https;host=shop.example.com');
    assert.equal(h['x-real-ip'], '2001:db8::7');
    assert.equal(h['x-forwarded-for'], '2001:db8::7');
    assert.equal(h['x-forwarded-proto'], 'https');
  });

  test('each request gets its own hop, whichever request came before it', () => {
    const hops = [
      [{ host: 'a.example' }, '10.0.0.1', false],
      [{ host: 'a.example' }, '10.0.0.1', true],
      [{ host: 'b.example' }, '10.0.0.1', true],
      [{}, '10.0.0.1', true],
      [{}, '10.0.0.2', true],
      [{ host: 'a.example' }, '10.0.0.1', false],
    ] as const;
    assert.deepEqual(
      hops.map(([headers, peer, encrypted]) => forward({ ...headers }, peer, false, encrypted)['forwarded']),
      [
        'for=10.0.0.1;proto=http;host=a.example',
        'for=10.0.0.1;proto=https;host=a.example',
        'for=10.0.0.1;proto=https;host=b.example',
        'for=10.0.0.1;proto=https',
        'for=10.0.0.2;proto=https',
        'for=10.0.0.1;proto=http;host=a.example',
      ],
    );
  });

  test('a host with a port is quoted; a missing Host leaves host= out', () => {
    assert.equal(forward({ host: '127.0.0.1:8080' }, '10.0.0.1')['forwarded'], 'for=10.0.0.1;proto=http;host="127.0.0.1:8080"');
    const h = forward({}, '10.0.0.1');
    assert.equal(h['forwarded'], 'for=10.0.0.1;proto=http');
    assert.equal(h['x-forwarded-host'], undefined);
  });

  test('from an untrusted peer every client value is replaced', () => {
    const h = forward(
      { host: 'gw', 'x-real-ip': '6.6.6.6', forwarded: 'for=6.6.6.6', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil' },
      '10.0.0.1',
    );
    assert.deepEqual(
      [h['x-real-ip'], h['forwarded'], h['x-forwarded-for'], h['x-forwarded-proto'], h['x-forwarded-host']],
      ['10.0.0.1', 'for=10.0.0.1;proto=http;host=gw', '10.0.0.1', 'http', 'gw'],
    );
  });

  test('from a trusted proxy the lists are extended, the single values kept', () => {
    const h = forward({ host: 'gw', 'x-real-ip': '203.0.113.9', forwarded: 'for=203.0.113.9', 'x-forwarded-for': '203.0.113.9' }, '10.0.0.2', true);
    assert.equal(h['x-real-ip'], '203.0.113.9');
    assert.equal(h['forwarded'], 'for=203.0.113.9, for=10.0.0.2;proto=http;host=gw');
    assert.equal(h['x-forwarded-for'], '203.0.113.9, 10.0.0.2');
  });
});
