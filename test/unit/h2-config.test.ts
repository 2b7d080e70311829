/** The HTTP/2 and gRPC keys as the validator reads them, and the gRPC helpers. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateConfigSource } from '../../src/config/validate.js';
import { grpcCodeName, grpcTimeoutMs } from '../../src/proxy/grpc.js';
import { compileMatcher, isGrpc } from '../../src/routing/matcher.js';

const check = (text: string) => validateConfigSource({ file: 'h2.yaml', text });
const errors = (text: string) =>
  check(text)
    .diagnostics.filter((d) => d.severity === 'error')
    .map((d) => d.message)
    .join('\n');

describe('HTTP/2 and gRPC config', () => {
  test('listen: the plain form, and {address, h2c}', () => {
    const plain = check('listen: 127.0.0.1:8080\nupstreams: { a: "http://h:1" }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n').config!;
    assert.deepEqual(plain.listen, { host: '127.0.0.1', port: 8080 });
    const h2c = check('listen: { address: "127.0.0.1:8080", h2c: true }\nupstreams: { a: "http://h:1" }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n').config!;
    assert.deepEqual(h2c.listen, { host: '127.0.0.1', port: 8080, h2c: true });
    assert.match(errors('listen: { address: "127.0.0.1:8080", h2c: yes-please }\nupstreams: { a: "http://h:1" }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n'), /h2c/);
    assert.match(errors('listen: { h2c: true }\nupstreams: { a: "http://h:1" }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n'), /address/);
  });

  test('upstream protocol: h2 needs https, h2c needs http, anything else is refused', () => {
    const base = (upstream: string) => `upstreams:\n  a: ${upstream}\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n`;
    assert.equal(check(base('{ url: "http://h:1", protocol: h2c }')).config!.upstreams['a']!.protocol, 'h2c');
    assert.equal(check(base('{ url: "https://h:1", protocol: h2 }')).config!.upstreams['a']!.protocol, 'h2');
    assert.equal(check(base('{ url: "http://h:1" }')).config!.upstreams['a']!.protocol, undefined);
    assert.match(errors(base('{ url: "http://h:1", protocol: h2 }')), /h2 is HTTP\/2 over TLS/);
    assert.match(errors(base('{ url: "https://h:1", protocol: h2c }')), /h2c is cleartext/);
    assert.match(errors(base('{ url: "http://h:1", protocol: http2 }')), /protocol/);
    // HTTP/1.1 clients reach an h2c backend too (forwarded over HTTP/2): nothing to warn of.
    assert.deepEqual(check(base('{ url: "http://h:1", protocol: h2c }')).diagnostics.filter((d) => d.severity === 'warning'), []);
  });

  test('the shadow of a gRPC route: without POST it mirrors nothing; with POST every call is mirrored, and the warning says so', () => {
    const route = (methods: string) =>
      `upstreams:\n  a: { url: "http://h:1", protocol: h2c }\n  b: { url: "http://h:2", protocol: h2c }\n` +
      `routes: [{ name: r, match: { prefix: /shop.Catalog, grpc: true }, backends: [{ upstream: a }], shadow: [{ upstream: b${methods} }] }]\n`;
    const warnings = (text: string) => check(text).diagnostics.filter((d) => d.severity === 'warning');
    const none = warnings(route(''));
    assert.ok(none.some((d) => d.code === 'never' && /gRPC calls are POST/.test(d.message)), none.map((d) => d.message).join('\n'));
    const post = warnings(route(', methods: [POST]'));
    assert.ok(!post.some((d) => d.code === 'never'));
    const unsafe = post.filter((d) => d.code === 'unsafe-shadow');
    assert.equal(unsafe.length, 1);
    assert.match(unsafe[0]!.message, /gRPC calls are all POST, so every call of this route is mirrored to "b"/);
  });

  test('shadow[].streaming: a boolean, off by default; on an HTTP/1.1 upstream it is warned about at its line', () => {
    const text = (upstream: string, streaming: string) =>
      `upstreams:\n  a: { url: "http://h:1", protocol: h2c }\n  b: ${upstream}\n` +
      `routes:\n  - name: r\n    match: { prefix: /shop.Catalog, grpc: true }\n    backends: [{ upstream: a }]\n    shadow:\n      - upstream: b\n        methods: [POST]${streaming}\n`;
    assert.equal(check(text('{ url: "http://h:2", protocol: h2c }', '')).config!.routes[0]!.shadow[0]!.streaming, false);
    const on = check(text('{ url: "http://h:2", protocol: h2c }', '\n        streaming: true'));
    assert.equal(on.config!.routes[0]!.shadow[0]!.streaming, true);
    assert.ok(!on.diagnostics.some((d) => d.path.endsWith('.streaming')));
    assert.match(errors(text('{ url: "http://h:2", protocol: h2c }', '\n        streaming: yes please')), /routes\[0\]\.shadow\[0\]\.streaming/);
    const http1 = check(text('"http://h:2"', '\n        streaming: true')).diagnostics.filter((d) => d.path === 'routes[0].shadow[0].streaming');
    assert.deepEqual(
      http1.map((d) => [d.severity, d.code, d.line, d.column]),
      [['warning', 'never', 11, 20]],
    );
    assert.match(http1[0]!.message, /streaming calls are mirrored to h2\/h2c upstreams only; "b" speaks HTTP\/1\.1/);
  });

  test('limits: HTTP/2 defaults and bounds', () => {
    const config = check('upstreams: { a: "http://h:1" }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n').config!;
    assert.equal(config.limits.h2MaxConcurrentStreams, 100);
    assert.equal(config.limits.h2MaxResetsPerSecond, 200);
    assert.equal(config.limits.h2MaxSessionMemory, 10 * 1024 * 1024);
    assert.match(errors('limits: { h2MaxConcurrentStreams: 0 }\nupstreams: { a: "http://h:1" }\nroutes: [{ name: r, backends: [{ upstream: a }] }]\n'), /h2MaxConcurrentStreams/);
  });

  test('match.grpc takes gRPC calls only (or only others), and a later route it covers is reported', () => {
    const grpcOnly = compileMatcher({ prefix: '/shop.Catalog', methods: undefined, headers: undefined, host: undefined, grpc: true });
    const facts = (type: string | undefined) => ({ method: 'POST', path: '/shop.Catalog/Get', host: '', headers: type ? { 'content-type': type } : {} });
    assert.equal(grpcOnly(facts('application/grpc')), true);
    assert.equal(grpcOnly(facts('application/grpc+proto')), true);
    assert.equal(grpcOnly(facts('application/grpc-web')), false);
    assert.equal(grpcOnly(facts('application/json')), false);
    assert.equal(grpcOnly(facts(undefined)), false);
    assert.equal(isGrpc({ 'content-type': 'application/grpc;charset=utf-8' }), true);
    const covered = check(
      'upstreams: { a: "http://h:1", b: { url: "http://h:2", protocol: h2c } }\nroutes:\n  - { name: grpc, match: { prefix: /shop.Catalog, grpc: true }, backends: [{ upstream: b }] }\n  - { name: rest, match: { prefix: /shop.Catalog }, backends: [{ upstream: a }] }\n  - { name: never, match: { prefix: /shop.Catalog/Get, grpc: true }, backends: [{ upstream: b }] }\n',
    );
    const warnings = covered.diagnostics.filter((d) => d.severity === 'warning').map((d) => d.message);
    assert.ok(warnings.some((w) => w.includes('"never" can never match')), warnings.join('\n'));
    assert.ok(!warnings.some((w) => w.includes('"rest" can never match')), warnings.join('\n'));
  });

  test('grpc-timeout and status names', () => {
    assert.equal(grpcTimeoutMs('100m'), 100);
    assert.equal(grpcTimeoutMs('2S'), 2000);
    assert.equal(grpcTimeoutMs('1H'), 3_600_000);
    assert.equal(grpcTimeoutMs('5000u'), 5);
    assert.equal(grpcTimeoutMs('123456789m'), undefined);
    assert.equal(grpcTimeoutMs('10x'), undefined);
    assert.equal(grpcTimeoutMs(undefined), undefined);
    assert.equal(grpcCodeName('0'), 'OK');
    assert.equal(grpcCodeName(14), 'Unavailable');
    assert.equal(grpcCodeName('4'), 'DeadlineExceeded');
    assert.equal(grpcCodeName('99'), 'Unknown');
  });
});
