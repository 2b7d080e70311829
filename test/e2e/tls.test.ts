/**
 * TLS at the edge, end to end: the HTTPS listener (versions, SNI, redirect,
 * X-Forwarded-Proto, expiry metric), certificate rotation under load with
 * zero failed requests (in one process and across --workers 2), broken
 * rotations kept out, and verified HTTPS upstreams for primary traffic and
 * shadow copies.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { LocalDataPlane } from '../../src/serving/local-data-plane.js';
import { spawnServe } from '../helpers/cli.js';
import { startGateway, tempDir } from '../helpers/gateway.js';
import { request, requestLoop } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { fixture, fingerprintOf, pem, startTlsUpstream, tlsRequest, type TlsUpstream } from '../helpers/tls.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const EXAMPLE = fingerprintOf(fixture('example.pem'));
const NEXT = fingerprintOf(fixture('example-next.pem'));
const OTHER = fingerprintOf(fixture('other.pem'));

const listenerConfig = (upstreamUrl: string, tlsBlock: string) => `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
tls:
${tlsBlock}
upstreams:
  app: ${upstreamUrl}
routes:
  - name: app
    backends: [{ upstream: app }]
`;

const fixturePair = (name: string) => `  cert: ${fixture(`${name}.pem`)}\n  key: ${fixture(`${name}.key`)}`;

async function metrics(gw: { adminUrl: string }): Promise<string> {
  return (await request(gw.adminUrl + '/metrics')).text;
}

/** Polls new connections until they are shown `fingerprint`; returns how long it took. */
async function waitForCertificate(url: string, fingerprint: string, timeoutMs = 8000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const seen = (await tlsRequest(url + '/probe', { servername: 'example.com' })).fingerprint;
    if (seen === fingerprint) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`certificate ${fingerprint.slice(0, 11)} not served after ${timeoutMs}ms (still ${seen.slice(0, 11)})`);
    await sleep(25);
  }
}

/**
 * A bounded request loop: half the workers open a new connection per
 * request (new handshakes), half reuse keep-alive connections.
 */
function loadLoop(url: string, concurrency = 4, maxMs = 60_000) {
  const fresh = new Set<string>();
  const agent = new https.Agent({ keepAlive: true, maxSockets: Math.ceil(concurrency / 2), ca: pem('ca.pem') });
  const loop = requestLoop({ concurrency, maxMs, cleanup: () => agent.destroy() }, async (worker) => {
    const keepAlive = worker % 2 === 0;
    const r = await tlsRequest(url + '/load', { servername: 'example.com', agent: keepAlive ? agent : false });
    if (!keepAlive) fresh.add(r.fingerprint);
    return r;
  });
  return Object.assign(loop, { fresh });
}

/** A directory holding tls.crt and tls.key, copied from fixture NAME. */
function certDir(dir: string, name: string): void {
  copyFileSync(fixture(`${name}.pem`), join(dir, 'tls.crt'));
  copyFileSync(fixture(`${name}.key`), join(dir, 'tls.key'));
}

/** Rotation by rename: new files written aside, then moved over the old ones (key first). */
function rotateByRename(dir: string, name: string): void {
  copyFileSync(fixture(`${name}.key`), join(dir, '.tls.key.new'));
  copyFileSync(fixture(`${name}.pem`), join(dir, '.tls.crt.new'));
  renameSync(join(dir, '.tls.key.new'), join(dir, 'tls.key'));
  renameSync(join(dir, '.tls.crt.new'), join(dir, 'tls.crt'));
}

/** Rotation in place: the certificate rewritten, then the key (a moment where they do not match). */
function rotateInPlace(dir: string, name: string): void {
  writeFileSync(join(dir, 'tls.crt'), pem(`${name}.pem`));
  writeFileSync(join(dir, 'tls.key'), pem(`${name}.key`));
}

function handshake(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pem('ca.pem'), servername: 'example.com', ...options }, () => {
      const protocol = socket.getProtocol() ?? '';
      socket.destroy();
      resolve(protocol);
    });
    socket.once('error', reject);
  });
}

describe('HTTPS listener', () => {
  let app: TestUpstream;
  before(async () => {
    app = await startUpstream('app');
  });
  after(() => app.close());

  test('serves HTTPS with the plain handler; X-Forwarded-Proto says https; TLS 1.2 is the floor', async () => {
    const gw = await startGateway(listenerConfig(app.url, fixturePair('example')));
    try {
      assert.match(gw.url, /^https:/);
      const r = await tlsRequest(gw.url + '/hello?x=1', { servername: 'example.com' });
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.text).url, '/hello?x=1');
      assert.equal(r.fingerprint, EXAMPLE);
      assert.equal(r.protocol, 'TLSv1.3');
      assert.equal(app.received.at(-1)!.headers['x-forwarded-proto'], 'https');
      // Verified by name, the way browsers do it.
      const port = Number(new URL(gw.url).port);
      assert.equal(await handshake(port, { servername: 'shop.example.com' }), 'TLSv1.3');
      assert.equal(await handshake(port, { maxVersion: 'TLSv1.2' }), 'TLSv1.2');
      await assert.rejects(handshake(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }));
      await assert.rejects(handshake(port, { servername: 'example.org' }), /altnames/);
      // Plain HTTP on the HTTPS port gets no answer from a backend.
      await assert.rejects(request(`http://127.0.0.1:${port}/x`, { timeoutMs: 2000 }));
      await sleep(50);
      assert.ok(metricValue(await metrics(gw), METRIC.tlsHandshakeErrors) >= 2);
      // The plain-HTTP path is untouched.
      assert.equal(app.received.filter((q) => q.headers['x-forwarded-proto'] !== 'https').length, 0);
    } finally {
      await gw.close();
    }
  });

  test('minVersion TLSv1.3 refuses TLS 1.2 clients', async () => {
    const gw = await startGateway(listenerConfig(app.url, `${fixturePair('example')}\n  minVersion: TLSv1.3`));
    try {
      const port = Number(new URL(gw.url).port);
      assert.equal(await handshake(port, {}), 'TLSv1.3');
      await assert.rejects(handshake(port, { maxVersion: 'TLSv1.2' }));
    } finally {
      await gw.close();
    }
  });

  test('SNI picks the certificate; unknown names and clients without SNI get the default', async () => {
    const gw = await startGateway(
      listenerConfig(
        app.url,
        `${fixturePair('example')}\n  certificates:\n    - { cert: ${fixture('other.pem')}, key: ${fixture('other.key')} }`,
      ),
    );
    try {
      const seen = async (servername?: string) => (await tlsRequest(gw.url + '/', servername ? { servername } : {})).fingerprint;
      assert.equal(await seen('other.test'), OTHER);
      assert.equal(await seen('WWW.other.test'), OTHER);
      assert.equal(await seen('example.com'), EXAMPLE);
      assert.equal(await seen('api.example.com'), EXAMPLE);
      assert.equal(await seen(), EXAMPLE, 'no SNI (an IP address): the default, tls.cert');
      const port = Number(new URL(gw.url).port);
      const unknown = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, servername: 'unknown.test', rejectUnauthorized: false }, () => {
          resolve(socket.getPeerCertificate().fingerprint256);
          socket.destroy();
        });
        socket.once('error', reject);
      });
      assert.equal(unknown, EXAMPLE, 'an unknown name: the default');
    } finally {
      await gw.close();
    }
  });

  test('with certificates only, the first one is the default', async () => {
    const gw = await startGateway(
      listenerConfig(app.url, `  certificates:\n    - { cert: ${fixture('other.pem')}, key: ${fixture('other.key')} }\n    - { cert: ${fixture('example.pem')}, key: ${fixture('example.key')} }`),
    );
    try {
      assert.equal((await tlsRequest(gw.url + '/')).fingerprint, OTHER);
      assert.equal((await tlsRequest(gw.url + '/', { servername: 'example.com' })).fingerprint, EXAMPLE);
    } finally {
      await gw.close();
    }
  });

  test('redirectHttp answers plain HTTP with a 308 to the same host, path and query over HTTPS', async () => {
    const gw = await startGateway(listenerConfig(app.url, `${fixturePair('example')}\n  redirectHttp: 127.0.0.1:0`));
    try {
      const redirect = (gw.gateway.dataPlane as LocalDataPlane).proxy!.tlsTermination!.redirectAddress!;
      const httpsPort = new URL(gw.url).port;
      const r = await request(`http://127.0.0.1:${redirect.port}/shop/a?b=1`, { method: 'POST', body: 'x', headers: { host: 'Shop.Example.com:80' } });
      assert.equal(r.status, 308);
      assert.equal(r.headers.location, `https://shop.example.com:${httpsPort}/shop/a?b=1`);
      const badHost = await request(`http://127.0.0.1:${redirect.port}/`, { headers: { host: 'bad_host!' } });
      assert.equal(badHost.status, 400);
      assert.equal(app.received.filter((q) => q.url.startsWith('/shop/a')).length, 0, 'nothing is proxied from the redirect port');
    } finally {
      await gw.close();
    }
  });

  test('the redirect port closes a connection that never speaks at timeouts.header, like the HTTPS port', async () => {
    const gw = await startGateway(`${listenerConfig(app.url, `${fixturePair('example')}\n  redirectHttp: 127.0.0.1:0`)}timeouts: { header: 500ms }\n`);
    try {
      const redirect = (gw.gateway.dataPlane as LocalDataPlane).proxy!.tlsTermination!.redirectAddress!;
      const socket = net.connect(redirect.port, '127.0.0.1');
      socket.on('error', () => undefined);
      const opened = Date.now();
      const closed = await new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
      assert.ok(closed - opened < 2000, `closed after ${closed - opened} ms`);
      const text = await metrics(gw);
      assert.equal(metricValue(text, METRIC.connectionsClosed, { listener: 'redirect', reason: 'header_timeout' }), 1);
    } finally {
      await gw.close();
    }
  });

  test("the certificate's expiry is a metric: a Unix time per name", async () => {
    const gw = await startGateway(
      listenerConfig(app.url, `${fixturePair('example')}\n  certificates:\n    - { cert: ${fixture('other.pem')}, key: ${fixture('other.key')} }`),
    );
    try {
      const text = await metrics(gw);
      const notAfter = (name: string) => Date.parse(new X509Certificate(pem(name)).validTo) / 1000;
      assert.equal(metricValue(text, METRIC.tlsCertificateExpiry, { name: 'example.com' }), notAfter('example.pem'));
      assert.equal(metricValue(text, METRIC.tlsCertificateExpiry, { name: 'other.test' }), notAfter('other.pem'));
    } finally {
      await gw.close();
    }
  });
});

describe('certificate rotation', () => {
  let app: TestUpstream;
  before(async () => {
    app = await startUpstream('app');
  });
  after(() => app.close());

  const rotatingConfig = (dir: string) => {
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, listenerConfig(app.url, '  cert: tls.crt\n  key: tls.key'));
    return file;
  };

  test('under a request loop: zero failed requests; new connections get the new certificate, open ones keep theirs', async (t) => {
    const tmp = tempDir();
    certDir(tmp.dir, 'example');
    const gw = await startGateway('', { configFile: rotatingConfig(tmp.dir) });
    const load = loadLoop(gw.url);
    const delays: number[] = [];
    try {
      // A connection opened before the rotations.
      const held = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pem('ca.pem') });
      assert.equal((await tlsRequest(gw.url + '/held', { servername: 'example.com', agent: held })).fingerprint, EXAMPLE);
      await sleep(200);
      for (let i = 1; i <= 6; i++) {
        const next = i % 2 === 1 ? 'example-next' : 'example';
        if (i % 2 === 1) rotateByRename(tmp.dir, next);
        else rotateInPlace(tmp.dir, next);
        delays.push(await waitForCertificate(gw.url, i % 2 === 1 ? NEXT : EXAMPLE));
        await sleep(150);
      }
      // The held connection was never cut and still speaks with the certificate it started with.
      const again = await tlsRequest(gw.url + '/held', { servername: 'example.com', agent: held });
      assert.equal(again.status, 200);
      assert.equal(again.fingerprint, EXAMPLE);
      held.destroy();
    } finally {
      await load.finish();
      await gw.close();
      tmp.remove();
    }
    t.diagnostic(`${load.ok} requests during 6 rotations; new certificate served after max ${Math.max(...delays)} ms`);
    assert.deepEqual(load.failures, []);
    assert.ok(load.ok > 50, `only ${load.ok} requests`);
    assert.deepEqual([...load.fresh].sort(), [EXAMPLE, NEXT].sort(), 'new connections saw both certificates');
    const reloads = gw.logs.filter((l) => l.event === 'tls.reloaded').length;
    assert.ok(reloads >= 6, `${reloads} reloads logged`);
    assert.ok(!gw.logs.some((l) => l.event === 'tls.reload_failed'), 'a rotation in two writes is not a failure');
  });

  test('a broken pair is kept out and counted; the next good one is used', async () => {
    const tmp = tempDir();
    certDir(tmp.dir, 'example');
    const gw = await startGateway('', { configFile: rotatingConfig(tmp.dir) });
    try {
      // A key that belongs to another certificate.
      copyFileSync(fixture('other.key'), join(tmp.dir, 'tls.key'));
      const deadline = Date.now() + 8000;
      while (!gw.logs.some((l) => l.event === 'tls.reload_failed') && Date.now() < deadline) await sleep(50);
      const failed = gw.logs.find((l) => l.event === 'tls.reload_failed');
      assert.ok(failed, 'failure logged');
      assert.match(failed.message, /tls\.key" is not the private key of the certificate in ".*tls\.crt"; |tls\.key" is not the private key of the certificate in ".*tls\.crt"$/);
      assert.match(failed.message, /still serving generation 1/);
      let text = await metrics(gw);
      assert.equal(metricValue(text, METRIC.tlsReloads, { result: 'failure' }), 1);
      assert.equal((await tlsRequest(gw.url + '/', { servername: 'example.com' })).fingerprint, EXAMPLE);
      // Garbage is refused the same way.
      writeFileSync(join(tmp.dir, 'tls.crt'), 'not a certificate\n');
      await sleep(1800);
      assert.equal((await tlsRequest(gw.url + '/', { servername: 'example.com' })).status, 200);
      // An expired certificate is no replacement either.
      rotateByRename(tmp.dir, 'expired');
      await sleep(1800);
      assert.equal((await tlsRequest(gw.url + '/', { servername: 'example.com' })).fingerprint, EXAMPLE);
      text = await metrics(gw);
      assert.ok(metricValue(text, METRIC.tlsReloads, { result: 'failure' }) >= 2);
      assert.ok(gw.logs.some((l) => l.event === 'tls.reload_failed' && /expired on 2001-01-01/.test(l.message)));
      // Then a good pair.
      rotateByRename(tmp.dir, 'example-next');
      await waitForCertificate(gw.url, NEXT);
      text = await metrics(gw);
      assert.equal(metricValue(text, METRIC.tlsReloads, { result: 'success' }), 1);
    } finally {
      await gw.close();
      tmp.remove();
    }
  });

  test('a Kubernetes Secret-style ..data symlink swap rotates the certificate', async () => {
    const tmp = tempDir();
    const version = (n: number, name: string) => {
      const dir = join(tmp.dir, `..2026_11_27_${n}`);
      mkdirSync(dir);
      certDir(dir, name);
      return `..2026_11_27_${n}`;
    };
    symlinkSync(version(0, 'example'), join(tmp.dir, '..data'));
    symlinkSync('..data/tls.crt', join(tmp.dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(tmp.dir, 'tls.key'));
    const gw = await startGateway('', { configFile: rotatingConfig(tmp.dir) });
    const load = loadLoop(gw.url, 2);
    try {
      let previous = '..2026_11_27_0';
      for (let i = 1; i <= 4; i++) {
        const next = version(i, i % 2 === 1 ? 'example-next' : 'example');
        symlinkSync(next, join(tmp.dir, '..data_tmp'));
        renameSync(join(tmp.dir, '..data_tmp'), join(tmp.dir, '..data'));
        rmSync(join(tmp.dir, previous), { recursive: true });
        previous = next;
        await waitForCertificate(gw.url, i % 2 === 1 ? NEXT : EXAMPLE);
      }
    } finally {
      await load.finish();
      await gw.close();
      tmp.remove();
    }
    assert.deepEqual(load.failures, []);
  });

  test('with file watching off, POST /reload re-reads the certificates', async () => {
    const tmp = tempDir();
    certDir(tmp.dir, 'example');
    const gw = await startGateway('', { configFile: rotatingConfig(tmp.dir), watch: false });
    try {
      rotateByRename(tmp.dir, 'example-next');
      await sleep(300);
      assert.equal((await tlsRequest(gw.url + '/', { servername: 'example.com' })).fingerprint, EXAMPLE);
      const reply = await request(gw.adminUrl + '/reload', { method: 'POST', headers: { 'x-requested-by': 'test' } });
      assert.equal(reply.status, 200);
      assert.equal((await tlsRequest(gw.url + '/', { servername: 'example.com' })).fingerprint, NEXT);
    } finally {
      await gw.close();
      tmp.remove();
    }
  });
});

describe('HTTPS upstreams', () => {
  let localhost: TlsUpstream;
  let internal: TlsUpstream;
  let plain: TestUpstream;
  const tmp = tempDir();
  before(async () => {
    localhost = await startTlsUpstream('localhost');
    internal = await startTlsUpstream('internal', 'upstream');
    plain = await startUpstream('plain');
  });
  after(async () => {
    await Promise.all([localhost.close(), internal.close(), plain.close()]);
    tmp.remove();
  });

  const config = (upstreams: string, routes = '') => `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
${upstreams}
routes:
${routes}
  - name: right-ca
    match: { prefix: /right-ca }
    backends: [{ upstream: right-ca }]
  - name: wrong-ca
    match: { prefix: /wrong-ca }
    backends: [{ upstream: wrong-ca }]
`;

  test('verified against tls.ca: the right CA passes, a wrong one gets 502 (reason connect)', async () => {
    const gw = await startGateway(
      config(`  right-ca: { url: ${localhost.url}, tls: { ca: ${fixture('ca.pem')} } }\n  wrong-ca: { url: ${localhost.url}, tls: { ca: ${fixture('other-ca.pem')} } }`),
    );
    try {
      const ok = await request(gw.url + '/right-ca/x', { headers: { host: 'shop.example.com' } });
      assert.equal(ok.status, 200);
      assert.equal(ok.json().upstream, 'localhost');
      // The upstream's certificate is checked for the URL's address, not for the client's Host.
      assert.equal(localhost.received.at(-1)!.headers.host, 'shop.example.com');
      const bad = await request(gw.url + '/wrong-ca/x');
      assert.equal(bad.status, 502);
      assert.equal(bad.json().error, 'upstream certificate rejected');
      const text = await metrics(gw);
      assert.equal(metricValue(text, METRIC.upstreamErrors, { route: 'wrong-ca', reason: 'connect' }), 1);
      assert.ok(gw.logs.some((l) => l.event === 'upstream.error' && /certificate rejected/.test(l.message)));
    } finally {
      await gw.close();
    }
  });

  test('the system CAs are the default: a private CA is not trusted without tls.ca', async () => {
    const gw = await startGateway(config(`  right-ca: ${localhost.url}\n  wrong-ca: ${localhost.url}`));
    try {
      assert.equal((await request(gw.url + '/right-ca/x')).status, 502);
    } finally {
      await gw.close();
    }
  });

  test('an address in the URL: verified against the IP, or against serverName when given', async () => {
    // upstream.pem names upstream.internal only; the URL holds 127.0.0.1.
    const gw = await startGateway(
      config(
        `  right-ca: { url: ${internal.url}, tls: { ca: ${fixture('ca.pem')}, serverName: upstream.internal } }\n  wrong-ca: { url: ${internal.url}, tls: { ca: ${fixture('ca.pem')} } }`,
      ),
    );
    try {
      assert.equal((await request(gw.url + '/right-ca/x')).status, 200);
      const bad = await request(gw.url + '/wrong-ca/x', { headers: { host: 'upstream.internal' } });
      assert.equal(bad.status, 502, "the client's Host is never the name verified");
    } finally {
      await gw.close();
    }
  });

  test('insecureSkipVerify accepts any certificate', async () => {
    const gw = await startGateway(
      config(`  right-ca: { url: ${internal.url}, tls: { insecureSkipVerify: true } }\n  wrong-ca: { url: ${internal.url}, tls: { ca: ${fixture('other-ca.pem')} } }`),
    );
    try {
      assert.equal((await request(gw.url + '/right-ca/x')).status, 200);
      assert.equal((await request(gw.url + '/wrong-ca/x')).status, 502);
      assert.ok(gw.logs.some((l) => l.event === 'config.warning' && /insecureSkipVerify/.test(l.message)));
    } finally {
      await gw.close();
    }
  });

  test('shadow copies follow the same rules', async () => {
    const gw = await startGateway(
      config(
        `  right-ca: { url: ${localhost.url}, tls: { ca: ${fixture('ca.pem')} } }\n  wrong-ca: { url: ${localhost.url}, tls: { ca: ${fixture('other-ca.pem')} } }\n  primary: ${plain.url}`,
        `  - name: mirrored
    match: { prefix: /mirrored }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: right-ca }, { upstream: wrong-ca }]
    diff: { enabled: false }`,
      ),
    );
    try {
      const before = localhost.received.length;
      for (let i = 0; i < 3; i++) assert.equal((await request(gw.url + '/mirrored/x', { headers: { host: 'shop.example.com' } })).status, 200);
      const deadline = Date.now() + 5000;
      let text = '';
      while (Date.now() < deadline) {
        text = await metrics(gw);
        const done = (upstream: string) =>
          metricValue(text, METRIC.shadowRequests, { route: 'mirrored', upstream, outcome: 'completed' }) +
          metricValue(text, METRIC.shadowRequests, { route: 'mirrored', upstream, outcome: 'error' });
        if (done('right-ca') === 3 && done('wrong-ca') === 3) break;
        await sleep(50);
      }
      assert.equal(metricValue(text, METRIC.shadowRequests, { upstream: 'right-ca', outcome: 'completed' }), 3);
      assert.equal(metricValue(text, METRIC.shadowRequests, { upstream: 'wrong-ca', outcome: 'error' }), 3);
      assert.equal(localhost.received.length - before, 3, 'only the verified copies arrived');
      assert.equal(localhost.received.at(-1)!.headers['x-shadow-request'], '1');
    } finally {
      await gw.close();
    }
  });

  test('a changed CA bundle takes effect without a restart', async () => {
    const dir = join(tmp.dir, 'ca-change');
    mkdirSync(dir);
    copyFileSync(fixture('other-ca.pem'), join(dir, 'upstream-ca.pem'));
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, config(`  right-ca: { url: ${localhost.url}, tls: { ca: upstream-ca.pem } }\n  wrong-ca: ${localhost.url}`));
    const gw = await startGateway('', { configFile: file });
    try {
      assert.equal((await request(gw.url + '/right-ca/x')).status, 502);
      copyFileSync(fixture('ca.pem'), join(dir, 'upstream-ca.pem'));
      const deadline = Date.now() + 8000;
      let status = 0;
      while (Date.now() < deadline && (status = (await request(gw.url + '/right-ca/x')).status) !== 200) await sleep(50);
      assert.equal(status, 200);
      assert.ok(gw.logs.some((l) => l.event === 'config.reloaded' && /upstream right-ca changed/.test(l.message)));
    } finally {
      await gw.close();
    }
  });
});

describe('TLS with --workers 2', () => {
  let app: TestUpstream;
  const tmp = tempDir();
  before(async () => {
    app = await startUpstream('app');
  });
  after(async () => {
    await app.close();
    tmp.remove();
  });

  test('every worker serves the rotated certificate; the expiry metric is not summed across workers', async () => {
    certDir(tmp.dir, 'example');
    const file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(file, listenerConfig(app.url, '  cert: tls.crt\n  key: tls.key'));
    const serve = await spawnServe(['-c', file, '--workers', '2']);
    const url = serve.url.replace('http:', 'https:');
    const load = loadLoop(url, 4);
    try {
      assert.equal((await tlsRequest(url + '/', { servername: 'example.com' })).fingerprint, EXAMPLE);
      await sleep(200);
      rotateByRename(tmp.dir, 'example-next');
      await serve.waitForLog((l) => l.event === 'tls.reloaded');
      // The log line comes after every worker acknowledged: all new connections see it.
      const seen = await Promise.all(Array.from({ length: 16 }, () => tlsRequest(url + '/', { servername: 'example.com' })));
      assert.deepEqual([...new Set(seen.map((r) => r.fingerprint))], [NEXT]);
      const text = (await request(serve.adminUrl + '/metrics')).text;
      assert.equal(metricValue(text, METRIC.tlsReloads, { result: 'success' }), 1);
      const notAfter = Date.parse(new X509Certificate(pem('example-next.pem')).validTo) / 1000;
      assert.equal(metricValue(text, METRIC.tlsCertificateExpiry, { name: 'example.com' }), notAfter);
    } finally {
      await load.finish();
      assert.equal(await serve.stop(), 0);
    }
    assert.deepEqual(load.failures, []);
    assert.ok(load.ok > 20);
  });
});
