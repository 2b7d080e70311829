/**
 * TLS building blocks: name matching, SNI choice, certificate loading and
 * its messages, redirect targets, upstream client settings, and validation
 * of certificates that expire soon (made now, since time passes).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { describeChange } from '../../src/config/describe-change.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { validateConfigFile } from '../../src/config/validate.js';
import { NameIndex, nameCovers, namesCoverRouteHost } from '../../src/tls/names.js';
import { loadCaBundle, loadPair } from '../../src/tls/pem.js';
import { httpsLocation } from '../../src/tls/redirect.js';
import { clientTls, isCertificateError } from '../../src/tls/upstream.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';
import { fixture, makeCertificate } from '../helpers/tls.js';

const file = (name: string) => ({ path: fixture(name), shown: name });

describe('certificate names', () => {
  test('a wildcard covers exactly one label; names compare case-insensitively', () => {
    assert.ok(nameCovers('example.com', 'EXAMPLE.com'));
    assert.ok(nameCovers('*.example.com', 'api.example.com'));
    assert.ok(nameCovers('*.example.com', 'api.example.com.'));
    assert.ok(!nameCovers('*.example.com', 'example.com'));
    assert.ok(!nameCovers('*.example.com', 'a.b.example.com'));
    assert.ok(!nameCovers('*.example.com', 'example.org'));
    assert.ok(nameCovers('127.0.0.1', '127.0.0.1'));
    assert.ok(!nameCovers('*.0.0.1', '127.0.0.1'));
  });

  test('a route wildcard needs the same certificate wildcard', () => {
    assert.ok(namesCoverRouteHost(['*.example.com'], '*.example.com'));
    assert.ok(!namesCoverRouteHost(['a.example.com', 'b.example.com'], '*.example.com'));
    assert.ok(namesCoverRouteHost(['example.com', '*.example.com'], 'shop.example.com'));
    assert.ok(!namesCoverRouteHost(['*.example.com'], 'a.shop.example.com'));
  });

  test('SNI: exact names before wildcards, first configured wins, nothing for unknown names', () => {
    const index = new NameIndex([
      { names: ['*.example.com', 'example.com'], value: 'wildcard-cert' },
      { names: ['api.example.com'], value: 'api-cert' },
      { names: ['example.com'], value: 'second-apex' },
    ]);
    assert.equal(index.lookup('api.example.com'), 'api-cert');
    assert.equal(index.lookup('API.Example.com'), 'api-cert');
    assert.equal(index.lookup('shop.example.com'), 'wildcard-cert');
    assert.equal(index.lookup('example.com'), 'wildcard-cert');
    assert.equal(index.lookup('a.b.example.com'), undefined);
    assert.equal(index.lookup('other.test'), undefined);
  });
});

describe('loading certificates', () => {
  test('a good pair: names, primary name, dates, PEM for the servers', () => {
    const result = loadPair(file('example.pem'), file('example.key'));
    assert.ok(result.ok);
    assert.deepEqual(result.pair.names, ['example.com', '*.example.com']);
    assert.equal(result.pair.primaryName, 'example.com');
    assert.ok(result.pair.notAfter.getTime() > Date.now() + 40 * 365 * 86_400_000);
    assert.match(result.pair.cert, /^-----BEGIN CERTIFICATE-----/);
    assert.match(result.pair.key, /^-----BEGIN PRIVATE KEY-----/);
    assert.deepEqual(result.warnings, []);
  });

  test('IP addresses in subjectAltName count as names', () => {
    const result = loadPair(file('localhost.pem'), file('localhost.key'));
    assert.ok(result.ok);
    assert.deepEqual(result.pair.names, ['localhost', '127.0.0.1']);
  });

  test('every broken pair says what is wrong, at the file it is wrong in', () => {
    const cases: [string, string, 'cert' | 'key', RegExp][] = [
      ['missing.pem', 'example.key', 'cert', /"missing.pem" does not exist/],
      ['example.pem', 'other.key', 'key', /"other.key" is not the private key of the certificate in "example.pem"/],
      ['example.key', 'example.key', 'cert', /holds a private key, not a certificate/],
      ['expired.pem', 'expired.key', 'cert', /expired on 2001-01-01 00:00:00 UTC/],
      ['example.pem', 'encrypted.key', 'key', /encrypted private key; passphrases are not supported/],
      ['garbage.pem', 'example.key', 'cert', /holds no PEM certificate/],
      ['corrupt.pem', 'example.key', 'cert', /does not parse/],
    ];
    for (const [cert, key, at, message] of cases) {
      const result = loadPair(file(cert), file(key));
      assert.ok(!result.ok, `${cert} + ${key} must not load`);
      const problem = result.problems.find((p) => message.test(p.message));
      assert.ok(problem, `${cert} + ${key}: ${JSON.stringify(result.problems)}`);
      assert.equal(problem.at, at);
    }
  });

  test('CA bundles: one certificate at least, not only expired ones', () => {
    assert.ok(loadCaBundle(file('ca.pem')).ok);
    const expired = loadCaBundle(file('expired.pem'));
    assert.ok(!expired.ok && /holds only expired certificates/.test(expired.problem.message));
    const key = loadCaBundle(file('ca.key'));
    assert.ok(!key.ok && /holds a private key/.test(key.problem.message));
  });
});

describe('certificates that expire soon', () => {
  const tmp = tempDir('gatewayctl-tls-unit-');
  after(() => tmp.remove());

  test('validate warns at the cert key, with the days left; the config stays valid', async () => {
    const soon = makeCertificate(tmp.dir, 'soon', ['example.com'], 3);
    const configFile = join(tmp.dir, 'gateway.yaml');
    writeFileSync(
      configFile,
      ['tls:', '  cert: soon.pem', '  key: soon.key', 'upstreams: { a: "http://127.0.0.1:7001" }', 'routes: [{ name: a, backends: [{ upstream: a }] }]', ''].join('\n'),
    );
    const result = validateConfigFile(configFile);
    assert.ok(result.config, 'still valid');
    const warning = result.diagnostics.find((d) => d.code === 'tls-expiring');
    assert.ok(warning);
    assert.equal(warning.severity, 'warning');
    assert.equal(warning.path, 'tls.cert');
    assert.deepEqual([warning.line, warning.column], [2, 9]);
    assert.match(warning.message, /^tls\.cert: certificate "soon.pem" \(example.com\) expires in [23] days \(\d{4}-\d\d-\d\d [\d:]+ UTC\); renew it$/);
    // The relative paths resolved against the config file's directory, not the working directory.
    assert.equal(result.config.tls?.certificates[0]?.cert, soon.cert);

    const cli = await runCli(['validate', '--no-frame', '-c', configFile]);
    assert.equal(cli.code, 0);
    assert.match(cli.stdout, /gateway\.yaml:2:9: warning: tls\.cert: certificate "soon.pem" \(example.com\) expires in [23] days/);
  });

  test('serve refuses an expired certificate with the same message validate gives', async () => {
    const configFile = join(tmp.dir, 'expired.yaml');
    writeFileSync(
      configFile,
      [
        'listen: 127.0.0.1:0',
        'admin: 127.0.0.1:0',
        'tls:',
        `  cert: ${fixture('expired.pem')}`,
        `  key: ${fixture('expired.key')}`,
        'upstreams: { a: "http://127.0.0.1:7001" }',
        'routes: [{ name: a, backends: [{ upstream: a }] }]',
        '',
      ].join('\n'),
    );
    const serve = await runCli(['serve', '--log-format', 'json', '-c', configFile]);
    assert.equal(serve.code, 1);
    assert.match(serve.stderr, /expired\.yaml:4:9: error: tls\.cert: certificate ".*expired\.pem" \(expired\.example\.com\) expired on 2001-01-01/);
    assert.match(serve.stderr, /not starting/);
  });
});

describe('redirects to HTTPS', () => {
  test('same host, path and query; the port unless it is 443', () => {
    assert.equal(httpsLocation('example.com', '/a/b?c=1', 443), 'https://example.com/a/b?c=1');
    assert.equal(httpsLocation('Example.com:8080', '/', 8443), 'https://example.com:8443/');
    assert.equal(httpsLocation('[::1]:80', '/x', 443), 'https://[::1]/x');
    assert.equal(httpsLocation('example.com', 'http://example.com/p?q', 443), 'https://example.com/p?q');
  });

  test('no usable host or target: no redirect', () => {
    assert.equal(httpsLocation(undefined, '/', 443), undefined);
    assert.equal(httpsLocation('evil.com/x', '/', 443), undefined);
    assert.equal(httpsLocation('example.com', '//evil.com/', 443), undefined);
    assert.equal(httpsLocation('example.com', '*', 443), undefined);
  });
});

describe('upstream client settings', () => {
  test('the name verified is the URL host, or serverName; an IP address sends no SNI', () => {
    assert.equal(clientTls(new URL('http://shop.internal'), undefined), undefined);
    assert.equal(clientTls(new URL('https://shop.internal:8443'), undefined)?.servername, 'shop.internal');
    assert.equal(clientTls(new URL('https://10.0.0.7'), undefined)?.servername, undefined);
    assert.equal(clientTls(new URL('https://[::1]:8443'), undefined)?.servername, undefined);
    const pinned = { ca: '/ca.pem', caPem: 'PEM', serverName: 'upstream.internal', insecureSkipVerify: false };
    const tls = clientTls(new URL('https://10.0.0.7'), pinned);
    assert.equal(tls?.servername, 'upstream.internal');
    assert.equal(tls?.ca, 'PEM');
    assert.equal(tls?.rejectUnauthorized, true);
  });

  test('insecureSkipVerify turns verification off; settings that differ never share a pool', () => {
    const url = new URL('https://10.0.0.7');
    const insecure = clientTls(url, { ca: undefined, caPem: undefined, serverName: undefined, insecureSkipVerify: true });
    assert.equal(insecure?.rejectUnauthorized, false);
    const identities = new Set([
      insecure?.identity,
      clientTls(url, undefined)?.identity,
      clientTls(url, { ca: '/a', caPem: 'A', serverName: undefined, insecureSkipVerify: false })?.identity,
      clientTls(url, { ca: '/b', caPem: 'B', serverName: undefined, insecureSkipVerify: false })?.identity,
    ]);
    assert.equal(identities.size, 4);
  });

  test('certificate failures are told apart from other connection errors', () => {
    assert.ok(isCertificateError(Object.assign(new Error('x'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })));
    assert.ok(isCertificateError(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' })));
    assert.ok(!isCertificateError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })));
  });
});

describe('reloads that change TLS settings', () => {
  const base = {
    version: 1,
    listen: { host: '0.0.0.0', port: 8443 },
    admin: { host: '127.0.0.1', port: 9901, token: undefined },
    upstreams: {},
    routes: [],
    trustedProxies: [],
    stateDir: './state',
    limits: {},
    timeouts: {},
  } as unknown as GatewayConfig;
  const tls = { certificates: [{ cert: '/a.pem', key: '/a.key' }], minVersion: 'TLSv1.2' as const, redirectHttp: undefined };

  test('certificates and minVersion apply live; HTTP vs HTTPS and the redirect port need a restart', () => {
    const on = { ...base, tls };
    assert.deepEqual(describeChange(base, on).restartRequired, ['tls off -> on (HTTP vs HTTPS listener)']);
    const changed = { ...base, tls: { ...tls, minVersion: 'TLSv1.3' as const, certificates: [{ cert: '/b.pem', key: '/b.key' }] } };
    assert.deepEqual(describeChange(on, changed).summary, ['tls certificates changed', 'tls minVersion TLSv1.2 -> TLSv1.3']);
    assert.deepEqual(describeChange(on, changed).restartRequired, []);
    const redirect = { ...base, tls: { ...tls, redirectHttp: { host: '0.0.0.0', port: 80 } } };
    assert.deepEqual(describeChange(on, redirect).restartRequired, ['tls.redirectHttp none -> 0.0.0.0:80']);
  });
});
