/**
 * `gatewayctl diff`, `diff summary` and `status` as users run them, against
 * gateways (two replicas) in front of real upstreams that differ in known
 * fields.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { DiffEvent } from '../../src/diff/types.js';
import { BIN, REPO_ROOT, runCli } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { deadPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';

const primaryBody = { items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }], status: 'ok' };
const shadowBody = { items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 5 }], status: 'ok', extra: 1 };
const TOKEN = 'a-long-enough-admin-token';

const config = (v1: TestUpstream, v3: TestUpstream, token = false) => `
listen: 127.0.0.1:0
admin: ${token ? `{ listen: 127.0.0.1:0, token: ${TOKEN} }` : '127.0.0.1:0'}
upstreams:
  v1: ${v1.url}
  v3: ${v3.url}
routes:
  - name: shop
    match: { prefix: /shop }
    backends: [{ upstream: v1, weight: 3 }]
    shadow: [{ upstream: v3 }]
`;

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `gatewayctl diff ...` as a child, with each stdout line time-stamped. */
function follow(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [BIN, 'diff', ...args], { cwd: REPO_ROOT, env: { ...process.env, NO_COLOR: '1', ...env } });
  const lines: { at: number; text: string }[] = [];
  let pending = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    pending += d.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      lines.push({ at: performance.now(), text: pending.slice(0, nl) });
      pending = pending.slice(nl + 1);
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    lines,
    exited,
    stderr: () => stderr,
    kill: () => child.kill('SIGKILL'),
  };
}

describe('gatewayctl diff, diff summary and status', () => {
  let v1: TestUpstream;
  let v3: TestUpstream;
  let a: TestGateway;
  let b: TestGateway;

  before(async () => {
    v1 = await startUpstream('v1', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(primaryBody));
    });
    v3 = await startUpstream('v3', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(shadowBody));
    });
    a = await startGateway(config(v1, v3));
    b = await startGateway(config(v1, v3));
  });

  after(async () => {
    await a.close();
    await b.close();
    await v1.close();
    await v3.close();
  });

  test('diff --json --count N prints the events with their exact pointers, within a second, then exits 0', async () => {
    const cli = follow(['--admin', a.adminUrl, '--json', '--count', '2']);
    try {
      await until(() => a.diffs.store.subscriberCount > 0);
      const sent = performance.now();
      await request(a.url + '/shop/cart', { headers: { 'x-request-id': 'cli-1' } });
      await until(() => cli.lines.length >= 1);
      assert.ok(cli.lines[0]!.at - sent < 1000, `first event printed ${Math.round(cli.lines[0]!.at - sent)}ms after the request`);
      await request(a.url + '/shop/cart?page=2', { headers: { 'x-request-id': 'cli-2' } });
      assert.equal(await cli.exited, 0, cli.stderr());
    } finally {
      cli.kill();
    }
    const events = cli.lines.map((l) => JSON.parse(l.text) as DiffEvent);
    assert.equal(events.length, 2);
    assert.deepEqual(
      events.map((e) => [e.requestId, e.path, e.route, e.primary.status, e.shadow.status]),
      [
        ['cli-1', '/shop/cart', 'shop', 200, 200],
        ['cli-2', '/shop/cart?page=2', 'shop', 200, 200],
      ],
    );
    for (const e of events) {
      assert.deepEqual(
        e.differences.map((d) => [d.kind, d.path, d.primary, d.shadow]),
        [
          ['body', '/items/1/qty', 2, 5],
          ['body', '/extra', null, 1],
        ],
      );
    }
  });

  test('diff prints readable events: route, method, path, request id, statuses and each difference', async () => {
    const cli = follow(['--admin', a.adminUrl, '--count', '1', '--route', 'shop']);
    try {
      await until(() => a.diffs.store.subscriberCount > 0);
      await request(a.url + '/shop/readable', { headers: { 'x-request-id': 'human-1' } });
      assert.equal(await cli.exited, 0, cli.stderr());
    } finally {
      cli.kill();
    }
    const text = cli.lines.map((l) => l.text).join('\n');
    assert.match(text, /shop GET \/shop\/readable id=human-1/);
    assert.match(text, /v1 200 [\d.]+ms → v3 200 [\d.]+ms/);
    assert.match(text, /\/items\/1\/qty: 2 → 5/);
    assert.match(text, /\/extra: \(absent\) → 1/);
  });

  test('several --admin replicas are followed together', async () => {
    const cli = follow(['--admin', a.adminUrl, '--admin', b.adminUrl, '--json', '--count', '2']);
    try {
      await until(() => a.diffs.store.subscriberCount > 0 && b.diffs.store.subscriberCount > 0);
      await request(a.url + '/shop/x', { headers: { 'x-request-id': 'from-a' } });
      await request(b.url + '/shop/x', { headers: { 'x-request-id': 'from-b' } });
      assert.equal(await cli.exited, 0, cli.stderr());
    } finally {
      cli.kill();
    }
    const ids = cli.lines.map((l) => (JSON.parse(l.text) as DiffEvent).requestId).sort();
    assert.deepEqual(ids, ['from-a', 'from-b']);
  });

  test('diff summary merges replicas; --json is the merged summary', async () => {
    await a.settled();
    await b.settled();
    const compared = (g: TestGateway) => g.diffs.store.summary().routes[0]!.shadows[0]!.compared;
    const r = await runCli(['diff', 'summary', '--admin', a.adminUrl, '--admin', b.adminUrl, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const merged = JSON.parse(r.stdout);
    const s = merged.routes[0].shadows[0];
    assert.equal(s.compared, compared(a) + compared(b));
    assert.equal(s.differing, s.compared);
    assert.deepEqual(
      s.paths.map((p: { path: string }) => p.path),
      ['/extra', '/items/*/qty'],
    );
    const table = await runCli(['diff', 'summary', '--admin', a.adminUrl]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /ROUTE +SHADOW +COMPARED +DIFFERING +RATE/);
    assert.match(table.stdout, /shop +v3 +\d+ +\d+ +100\.0%/);
    assert.match(table.stdout, /\/items\/\*\/qty +\d+ +100\.0%/);
  });

  test('status shows routes, weights, shadows and live rates; --json merges replicas', async () => {
    const r = await runCli(['status', '--admin', a.adminUrl]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /config generation 1/);
    assert.match(r.stdout, /shop +\/shop/);
    assert.match(r.stdout, /v1 +3 +100\.0% +[\d.]+/);
    assert.match(r.stdout, /v3 +100%/);
    const json = await runCli(['status', '--admin', a.adminUrl, '--admin', b.adminUrl, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const status = JSON.parse(json.stdout);
    assert.equal(status.replicas, 2);
    const shop = status.routes[0];
    assert.equal(shop.backends[0].weight, 3);
    assert.ok(shop.backends[0].requests > 0);
    assert.equal(shop.shadows[0].upstream, 'v3');
  });

  test('an admin API that cannot be reached: exit 1, with the address', async () => {
    const dead = `http://127.0.0.1:${await deadPort()}`;
    const runs = [['diff'], ['diff', 'summary'], ['status'], ['diff', '--admin', a.adminUrl, '--count', '1']].map((args) =>
      runCli([...args, '--admin', dead]).then((r) => ({ args, r })),
    );
    for (const { args, r } of await Promise.all(runs)) {
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    }
  });

  test('usage errors: exit 2', async () => {
    const runs = [
      ['diff', '--count', '0'],
      ['diff', '--count', 'x'],
      ['diff', '--admin', 'ftp://host'],
      ['diff', 'bogus'],
      ['diff', 'summary', '--top', '-1'],
      ['status', '--bogus'],
    ].map((args) => runCli(args).then((r) => ({ args, r })));
    for (const { args, r } of await Promise.all(runs)) assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    const help = await runCli(['diff', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--count <n>/);
  });

  test('with admin.token set: diff needs --token or $GATEWAYCTL_ADMIN_TOKEN', async () => {
    const secured = await startGateway(config(v1, v3, true));
    try {
      const refused = await runCli(['diff', '--admin', secured.adminUrl, '--count', '1']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /\/diffs: .*pass --token or set \$GATEWAYCTL_ADMIN_TOKEN/);
      for (const [args, env] of [
        [['--token', TOKEN], {}],
        [[], { GATEWAYCTL_ADMIN_TOKEN: TOKEN }],
      ] as const) {
        const cli = follow(['--admin', secured.adminUrl, '--json', '--count', '1', ...args], env);
        try {
          await until(() => secured.diffs.store.subscriberCount > 0);
          await request(secured.url + '/shop/t');
          assert.equal(await cli.exited, 0, cli.stderr());
        } finally {
          cli.kill();
        }
        await until(() => secured.diffs.store.subscriberCount === 0);
      }
    } finally {
      await secured.close();
    }
  });
});
