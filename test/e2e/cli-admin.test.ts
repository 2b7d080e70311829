/**
 * The CLI's admin client and shared admin flags against real gateways:
 * an https admin API (a real TLS terminator in front of the gateway's admin
 * listener, certificate from the test CA), the HOST:PORT shorthand and
 * --token on `release`; `validate` loading no metrics library and no
 * gateway; `init` naming the real cause of a write failure.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { BIN, REPO_ROOT, runCli } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { releaseConfig } from '../helpers/release.js';
import { fixture, makeCertificate } from '../helpers/tls.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const TOKEN = 'cli-admin-token-0123456789';

/** A TLS terminator on 127.0.0.1:0 forwarding each connection to `port` in the clear. */
async function tlsFront(port: number, cert: { cert: string; key: string }): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const done = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('gatewayctl admin client and flags', () => {
  const tmp = tempDir();
  let v1: TestUpstream;
  let v2: TestUpstream;
  let gw: TestGateway;
  let front: { port: number; close(): Promise<void> };
  let adminPort: number;

  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
    const config =
      releaseConfig(v1, v2, tmp.dir, '{ candidate: v2, steps: [10, 100], interval: 1h, minRequests: 1000000 }').replace(
        'admin: 127.0.0.1:0',
        `admin: { listen: 127.0.0.1:0, token: ${TOKEN} }`,
      ) +
      // v1 and v2 answer with their own names: every mirrored pair differs.
      `  - name: mirror
    match: { prefix: /mirror }
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2 }]
`;
    gw = await startGateway(config, { watch: false });
    adminPort = Number(new URL(gw.adminUrl).port);
    front = await tlsFront(adminPort, makeCertificate(tmp.dir, 'admin', ['127.0.0.1'], 30));
  });
  after(async () => {
    await front.close();
    await gw.close();
    await v1.close();
    await v2.close();
    tmp.remove();
  });

  test('status over https with --admin-ca answers; without the CA it is a clear error, never a stack trace', async () => {
    const url = `https://127.0.0.1:${front.port}`;
    const ok = await runCli(['status', '--admin', url, '--admin-ca', fixture('ca.pem'), '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    const status = JSON.parse(ok.stdout) as { routes: { name: string }[] };
    assert.deepEqual(status.routes.map((r) => r.name), ['shop', 'mirror']);

    const untrusted = await runCli(['status', '--admin', url]);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /cannot reach the admin API at https:\/\/127\.0\.0\.1:\d+: \S+ \(the admin API's certificate is not trusted: pass --admin-ca FILE\)/);
    assert.doesNotMatch(untrusted.stderr, /\n\s+at /, 'no stack trace');

    const missingCa = await runCli(['status', '--admin', url, '--admin-ca', join(tmp.dir, 'no-such-ca.pem')]);
    assert.equal(missingCa.code, 2, 'a CA file that cannot be read is a usage error');
    assert.match(missingCa.stderr, /--admin-ca .*no-such-ca\.pem: cannot read it \(ENOENT\)/);
  });

  test('the diff stream and the diff summary over https', async () => {
    const admin = ['--admin', `https://127.0.0.1:${front.port}`, '--admin-ca', fixture('ca.pem'), '--token', TOKEN];
    const following = runCli(['diff', ...admin, '--route', 'mirror', '--count', '1', '--json'], { timeoutMs: 30_000 });
    let done = false;
    void following.finally(() => (done = true));
    // Mirrored requests until the follower has printed one difference (bounded).
    for (let i = 0; i < 200 && !done; i++) {
      await request(`${gw.url}/mirror/${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const r = await following;
    assert.equal(r.code, 0, r.stderr);
    const event = JSON.parse(r.stdout.trim().split('\n')[0]!) as { route: string };
    assert.equal(event.route, 'mirror');

    const summary = await runCli(['diff', 'summary', ...admin, '--json']);
    assert.equal(summary.code, 0, summary.stderr);
    const routes = (JSON.parse(summary.stdout) as { routes: { route: string }[] }).routes;
    assert.ok(routes.some((x) => x.route === 'mirror'), summary.stdout);
  });

  test('release takes the shared admin flags: HOST:PORT shorthand and --token on status and actions', async () => {
    const status = await runCli(['release', 'status', '--admin', `127.0.0.1:${adminPort}`, '--token', TOKEN, '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { route: string }[])[0]!.route, 'shop');

    const refused = await runCli(['release', 'pause', 'shop', '--admin', String(adminPort)], { env: { GATEWAYCTL_ADMIN_TOKEN: '' } });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /needs "Authorization: Bearer/);

    const paused = await runCli(['release', 'pause', 'shop', '--admin', `127.0.0.1:${adminPort}`, '--token', TOKEN]);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, new RegExp(`^http://127\\.0\\.0\\.1:${adminPort}: shop paused at 10%`));

    const missing = await runCli(['release', 'resume', 'nope', '--admin', `https://127.0.0.1:${front.port}`, '--admin-ca', fixture('ca.pem'), '--token', TOKEN]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /route nope has no release/);
  });

  test('an --admin-ca that is a device, a directory or too large is a usage error at once, never read whole', async () => {
    for (const [file, kind] of [['/dev/zero', 'a device'], [tmp.dir, 'a directory']]) {
      const r = await runCli(['status', '--admin-ca', file!, '--admin', gw.adminUrl], { timeoutMs: 5000 });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`--admin-ca ${file}: cannot read it \\(is ${kind}, not a regular file\\)`));
    }
    // Sparse: the size is all the check reads.
    const oversize = join(tmp.dir, 'oversize-ca.pem');
    writeFileSync(oversize, '');
    truncateSync(oversize, 4 * 1024 * 1024 + 1);
    const r = await runCli(['status', '--admin-ca', oversize, '--admin', gw.adminUrl], { timeoutMs: 5000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--admin-ca \S+oversize-ca\.pem: cannot read it \(is 4194305 bytes, over the 4194304 bytes a CA bundle may have\)/);
  });

  test('an --admin that is another service is named as such, never a TypeError', async () => {
    // v1 answers every path with JSON of its own, as a wrong port would.
    const commands = [['status'], ['diff', 'summary'], ['diff', 'show', 'x'], ['reload'], ['release', 'status'], ['release', 'pause', 'shop'], ['record', 'export', 'pay']];
    for (const command of commands) {
      const r = await runCli([...command, '--admin', v1.url]);
      assert.equal(r.code, 1, `${command.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /answered with JSON that is not .+; is http:\/\/127\.0\.0\.1:\d+ a gatewayctl admin API\?/, command.join(' '));
      assert.doesNotMatch(r.stderr, /TypeError|\n\s+at /, command.join(' '));
    }
  });

  test('diff passes over stream frames that are not diff events and keeps following', async () => {
    const event = { id: '1', time: new Date().toISOString(), route: 'r', method: 'GET', path: '/', requestId: 'q', primary: { upstream: 'a', status: 200, latencyMs: 1 }, shadow: { upstream: 'b', status: 500, latencyMs: 1 }, differences: [] };
    const frames = ['{not json', 'null', '{}', '{"differences":5}'].map((data) => `event: diff\ndata: ${data}\n\n`).join('') + 'event: lag\ndata: x\n\n';
    const stream = await startUpstream('stream', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(frames + `event: diff\nid: 1\ndata: ${JSON.stringify(event)}\n\n`);
    });
    try {
      const r = await runCli(['diff', '--json', '--count', '1', '--admin', stream.url]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), event);
      assert.equal(r.stderr, '');
    } finally {
      await stream.close();
    }
  });

  test('an admin error answer carries its catalogue code and status', async () => {
    const res = await fetch(`${gw.adminUrl}/releases/nope/pause`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: 'route nope has no release', code: 'GW_NOT_FOUND' });
    const unauthorized = await fetch(`${gw.adminUrl}/diffs/examples/x`);
    assert.equal(unauthorized.status, 401);
    assert.equal(((await unauthorized.json()) as { code: string }).code, 'GW_UNAUTHORIZED');
    const bad = await fetch(`${gw.adminUrl}/diffs/summary?top=x`);
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'GW_BAD_REQUEST');
  });
});

describe('gatewayctl validate loads only what validation needs', () => {
  test('no prom-client, no gateway (control/, serving/, proxy/, shadow/) and no release runner in a validate run', async () => {
    const tmp = tempDir();
    try {
      const log = join(tmp.dir, 'loaded.txt');
      // A module hook that records every module the run resolves.
      writeFileSync(
        join(tmp.dir, 'hooks.mjs'),
        `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(${JSON.stringify(log)}, result.url + '\\n');
  return result;
}
`,
      );
      writeFileSync(join(tmp.dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(tmp.dir, 'hooks.mjs')).href)});\n`);
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', pathToFileURL(join(tmp.dir, 'register.mjs')).href, BIN, 'validate', '-c', join(REPO_ROOT, 'config/gateway.yaml')], {
          stdio: 'ignore',
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.on('error', reject);
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.equal(code, 0);
      const loaded = readFileSync(log, 'utf8').split('\n').filter(Boolean);
      // The hook saw the run: the CLI and the config validator are there.
      assert.ok(loaded.some((u) => u.endsWith('/dist/src/cli/validate.js')), 'the hook recorded the run');
      assert.ok(loaded.some((u) => u.endsWith('/dist/src/config/validate.js')));
      // metrics/names.js and metrics/read.js are plain data and parsing (the
      // release CLI reads Prometheus with them); the registry is what pulls prom-client in.
      const unwanted = loaded.filter((u) => /prom-client|\/dist\/src\/(control|serving|proxy|shadow)\/|\/dist\/src\/metrics\/(?!names\.js|read\.js)|\/dist\/src\/release\/(external|controller|sources|prometheus)\.js/.test(u));
      assert.deepEqual([...new Set(unwanted)], []);
    } finally {
      tmp.remove();
    }
  });
});

describe('gatewayctl init', () => {
  test('a write refused for permissions is reported as such (EACCES), not as an existing file', async () => {
    const tmp = tempDir();
    try {
      let file: string;
      if (process.getuid?.() === 0) {
        // root passes directory permissions; sysfs refuses new files to everyone.
        file = '/sys/gatewayctl-init-test.yaml';
      } else {
        const dir = join(tmp.dir, 'read-only');
        mkdirSync(dir);
        chmodSync(dir, 0o555);
        file = join(dir, 'gateway.yaml');
      }
      const r = await runCli(['init', '-c', file]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot write .*: permission denied \(EACCES\)/);
      assert.doesNotMatch(r.stderr, /already exists/);

      const noDir = await runCli(['init', '-c', join(tmp.dir, 'missing', 'gateway.yaml')]);
      assert.equal(noDir.code, 1);
      assert.match(noDir.stderr, /its directory does not exist \(ENOENT\)/);
    } finally {
      tmp.remove();
    }
  });
});
