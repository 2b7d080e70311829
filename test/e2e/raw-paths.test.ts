/**
 * Paths are normalized once, before routing, and the upstream receives
 * exactly the path that was routed: either the route and the path agree,
 * or the request is refused with 400. Absolute-form targets route on their
 * authority (RFC 9112 section 3.2.2); TRACE and CONNECT are refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { prefixMatches } from '../../src/routing/matcher.js';
import { exchange, ok, prng, sleep, startCapture, type CaptureUpstream } from '../helpers/raw.js';

interface Case {
  readonly target: string;
  readonly method?: string;
  readonly host?: string;
  readonly status: number;
  /** Which upstream answers, and the request target it receives. */
  readonly to?: 'pub' | 'adm' | 'shop';
  readonly sees?: string;
  readonly seesHost?: string;
}

const cases: Case[] = [
  { target: '/public/x', status: 200, to: 'pub', sees: '/public/x' },
  { target: '/public', status: 200, to: 'pub', sees: '/public' },
  { target: '/public//x///y', status: 200, to: 'pub', sees: '/public/x/y' },
  { target: '//public/x', status: 200, to: 'pub', sees: '/public/x' },
  { target: '/public/%78%7e', status: 200, to: 'pub', sees: '/public/x~' },
  { target: '/%70ublic/x', status: 200, to: 'pub', sees: '/public/x' },
  { target: '/public/a%3bb%3Fc', status: 200, to: 'pub', sees: '/public/a%3Bb%3Fc' },
  { target: '/public/a"b<c>{d}|e^f`g', status: 200, to: 'pub', sees: '/public/a%22b%3Cc%3E%7Bd%7D%7Ce%5Ef%60g' },
  { target: '/public/x?q=../..&r=%2f&s=a//b', status: 200, to: 'pub', sees: '/public/x?q=../..&r=%2f&s=a//b' },
  { target: '/public/...', status: 200, to: 'pub', sees: '/public/...' },
  { target: '/public/.well-known/x', status: 200, to: 'pub', sees: '/public/.well-known/x' },
  { target: '/admin/x', status: 200, to: 'adm', sees: '/admin/x' },
  { target: '/public/../admin/x', status: 400 },
  { target: '/public/./x', status: 400 },
  { target: '/public/..', status: 400 },
  { target: '/public/%2e%2e/admin/x', status: 400 },
  { target: '/public/%2E%2e/admin/x', status: 400 },
  { target: '/public/.%2e/admin/x', status: 400 },
  { target: '/public/%2e/x', status: 400 },
  { target: '/public/..;/admin/x', status: 400 },
  { target: '/public/.;x/admin', status: 400 },
  { target: '/public/%2e%2e;jsessionid=1/admin/x', status: 400 },
  { target: '/public%2f..%2fadmin/x', status: 400 },
  { target: '/public%2F..%2Fadmin/x', status: 400 },
  { target: '/public/%5c..%5cadmin/x', status: 400 },
  { target: '/public\\..\\admin/x', status: 400 },
  { target: '/public/%00', status: 400 },
  { target: '/public/%0d%0aX-Injected:%201', status: 400 },
  { target: '/public/%zz', status: 400 },
  { target: '/public/%', status: 400 },
  { target: '/public/x#frag', status: 400 },
  { target: '/ADMIN/x', status: 404 },
  { target: '/publicity', status: 404 },
  // absolute-form: the authority is the host, the Host header is ignored
  { target: 'http://shop.example/any/thing?x=1', host: 'other.example', status: 200, to: 'shop', sees: '/any/thing?x=1', seesHost: 'shop.example' },
  { target: 'HTTP://SHOP.example:8080', host: 'other.example', status: 200, to: 'shop', sees: '/', seesHost: 'SHOP.example:8080' },
  { target: 'http://other.example/public/x', host: 'shop.example', status: 200, to: 'pub', sees: '/public/x', seesHost: 'other.example' },
  { target: 'http://other.example/public/../admin', status: 400 },
  { target: 'http://user:pw@shop.example/x', status: 400 },
  { target: 'ftp://shop.example/x', status: 400 },
  { target: 'http:///x', status: 400 },
  // Host values an upstream could read differently (reported): refused
  { target: '/public/x', host: 'a:99999', status: 400 },
  { target: '/public/x', host: 'a:80:90', status: 400 },
  { target: '/public/x', host: '[::1', status: 400 },
  { target: 'http://a:99999/public/x', status: 400 },
  { target: 'http://[::1/public/x', status: 400 },
  { target: '/public/x', host: '[::1]:8080', status: 200, to: 'pub', sees: '/public/x', seesHost: '[::1]:8080' },
  { target: '/public/x', host: 'gw.test:65535', status: 200, to: 'pub', sees: '/public/x', seesHost: 'gw.test:65535' },
  // methods and forms
  { target: '/public/x', method: 'TRACE', status: 405 },
  { target: 'shop.example:443', method: 'CONNECT', status: 405 },
  { target: '*', method: 'OPTIONS', status: 200 },
  { target: '*', method: 'GET', status: 400 },
  { target: 'public/x', status: 400 },
];

describe('raw paths', () => {
  const upstreams: Record<string, CaptureUpstream> = {};
  let gw: TestGateway;
  let port: number;
  before(async () => {
    for (const name of ['pub', 'adm', 'shop']) upstreams[name] = await startCapture(() => ok(name));
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  pub: ${upstreams['pub']!.url}
  adm: ${upstreams['adm']!.url}
  shop: ${upstreams['shop']!.url}
  pubv1: ${upstreams['pub']!.url}/v1/
  admv1: ${upstreams['adm']!.url}/v1/
routes:
  - { name: versioned, match: { prefix: /versioned }, backends: [{ upstream: pubv1 }], shadow: [{ upstream: admv1 }] }
  - { name: shop, match: { host: shop.example }, backends: [{ upstream: shop }] }
  - { name: public, match: { prefix: /public }, backends: [{ upstream: pub }] }
  - { name: admin, match: { prefix: /admin }, backends: [{ upstream: adm }] }
`);
    port = gw.port;
  });
  after(async () => {
    await gw.close();
    for (const u of Object.values(upstreams)) await u.close();
  });

  const total = () => Object.values(upstreams).reduce((n, u) => n + u.requests.length, 0);

  for (const c of cases) {
    test(`${c.method ?? 'GET'} ${c.target}${c.host ? ` (Host: ${c.host})` : ''} -> ${c.status}${c.to ? ` ${c.to} ${c.sees}` : ''}`, async () => {
      const before = total();
      const got = await exchange(port, `${c.method ?? 'GET'} ${c.target} HTTP/1.1\r\nHost: ${c.host ?? 'gw.test'}\r\n\r\n`);
      await sleep(10);
      assert.equal(got.first.status, c.status, got.text);
      if (!c.to) {
        assert.equal(total(), before, 'nothing reached an upstream');
        if (c.method === 'TRACE' || c.method === 'CONNECT') assert.match(got.first.header('allow') ?? '', /GET/);
        if (c.target === '*' && c.method === 'OPTIONS') assert.match(got.first.header('allow') ?? '', /OPTIONS/);
        return;
      }
      assert.equal(got.first.body.toString(), c.to);
      const r = upstreams[c.to]!.requests.at(-1)!;
      assert.equal(r.target, c.sees, 'the exact request target the upstream received');
      if (c.seesHost) assert.deepEqual(r.headerAll('host'), [c.seesHost]);
    });
  }

  test('an upstream URL with a base path: the primary, its shadow copy and an upgrade all get the same target', async () => {
    const pub = upstreams['pub']!;
    const adm = upstreams['adm']!;
    const got = await exchange(port, 'GET /versioned//x?q=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n');
    assert.equal(got.first.status, 200);
    assert.equal(pub.requests.at(-1)!.target, '/v1/versioned/x?q=1');
    const deadline = Date.now() + 2000;
    while (!adm.requests.some((r) => r.header('x-shadow-request') === '1') && Date.now() < deadline) await sleep(10);
    assert.equal(adm.requests.filter((r) => r.header('x-shadow-request') === '1').at(-1)?.target, '/v1/versioned/x?q=1');
    const upgrade = await exchange(port, 'GET /versioned/ws HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', { settleMs: 100 });
    assert.equal(upgrade.first.status, 200, 'refused upgrade relayed');
    assert.equal(pub.requests.at(-1)!.target, '/v1/versioned/ws');
  });

  test('generated paths: the route chosen and the path the upstream sees never disagree', async () => {
    // A small deterministic generator over the pieces that trip normalizers.
    const pieces = ['public', 'admin', 'x', '..', '.', '%2e', '%2E%2e', '%2f', '%5C', '\\', '', ';', '..;', '%3b', '%41', '%', '%zz', '~', '%7e', '"', '.%2e', 'a.b'];
    const random = prng(7);
    const targets = new Set<string>();
    const heads = ['public', 'admin', '%70ublic', '%61dmin', '', 'PUBLIC', 'public;x', 'admin%2f'];
    const plain = ['x', 'a.b', '...', '%41', '~', 'y;z', ''];
    for (let i = 0; targets.size < 400 && i < 10_000; i++) {
      const rest = Array.from({ length: random.next(4) }, () => random.pick(random.next(3) === 0 ? pieces : plain));
      targets.add('/' + [random.pick(heads), ...rest].join('/'));
    }
    const statuses: Record<number, number> = {};
    for (const target of targets) {
      const counts = { pub: upstreams['pub']!.requests.length, adm: upstreams['adm']!.requests.length };
      const got = await exchange(port, `GET ${target} HTTP/1.1\r\nHost: gw.test\r\n\r\n`, { settleMs: 0 });
      statuses[got.first.status] = (statuses[got.first.status] ?? 0) + 1;
      assert.ok([200, 400, 404].includes(got.first.status), `${target}: ${got.text}`);
      if (got.first.status !== 200) continue;
      const to = got.first.body.toString() as 'pub' | 'adm';
      assert.equal(upstreams[to]!.requests.length, counts[to] + 1);
      const seen = upstreams[to]!.requests.at(-1)!.target;
      const prefix = to === 'pub' ? '/public' : '/admin';
      assert.ok(prefixMatches(prefix, seen.split('?')[0]!), `${target} was routed to ${to} but the upstream saw ${seen}`);
      const segments = seen.split('?')[0]!.split('/');
      assert.ok(!segments.some((s) => /^\.\.?(;|$)/.test(s)), `dot segment reached the upstream: ${seen}`);
      assert.ok(!/%2f|%5c|\\/i.test(seen), `encoded slash or backslash reached the upstream: ${seen}`);
    }
    assert.ok(statuses[200]! >= 40 && statuses[400]! >= 40, JSON.stringify(statuses));
  });
});
