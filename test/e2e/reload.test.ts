/**
 * Live reload: every way of writing the file, under load, with zero failed
 * requests; bad configs never replace good ones.
 */
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request, requestLoop } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const configFor = (target: TestUpstream, other: TestUpstream, marker: number) => `
# revision ${marker}
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  ${target.name}: ${target.url}
  ${other.name}: ${other.url}
routes:
  - name: app
    backends: [{ upstream: ${target.name} }]
`;

/** A bounded request loop that counts failures while reloads happen. */
function loadLoop(url: string, concurrency = 4, maxMs = 120_000) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  return requestLoop({ concurrency, maxMs, cleanup: () => agent.destroy() }, () => request(url + '/load', { agent }));
}

async function servedBy(gw: TestGateway): Promise<string> {
  return (await request(gw.url + '/probe')).json().upstream;
}

async function waitForUpstream(gw: TestGateway, name: string, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  while ((await servedBy(gw)) !== name) {
    if (Date.now() - started > timeoutMs) throw new Error(`${name} not in effect after ${timeoutMs}ms`);
    await sleep(20);
  }
  return Date.now() - started;
}

type Writer = (file: string, text: string) => Promise<void>;

const writers: Record<string, Writer> = {
  'write in place': async (file, text) => writeFileSync(file, text),
  'write in chunks': async (file, text) => {
    const fd = openSync(file, 'w');
    const half = Math.floor(text.length / 2);
    writeSync(fd, text.slice(0, half));
    await sleep(30);
    writeSync(fd, text.slice(half));
    closeSync(fd);
  },
  'save by rename': async (file, text) => {
    const tmp = `${file}.swp`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  },
  'mv from elsewhere': async (file, text) => {
    const elsewhere = join(file, '..', '..', `incoming-${Date.now()}.yaml`);
    writeFileSync(elsewhere, text);
    renameSync(elsewhere, file);
  },
};

describe('config reload', () => {
  let a: TestUpstream;
  let b: TestUpstream;
  before(async () => {
    a = await startUpstream('a');
    b = await startUpstream('b');
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  test('50 reloads in four writing styles during steady load: zero failed requests', async (t) => {
    const root = tempDir();
    const dir = join(root.dir, 'etc');
    mkdirSync(dir);
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, configFor(a, b, 0));
    const gw = await startGateway('', { configFile: file });
    const load = loadLoop(gw.url);
    const delays: number[] = [];
    try {
      const styles = Object.keys(writers);
      for (let i = 1; i <= 50; i++) {
        const target = i % 2 === 1 ? b : a;
        await writers[styles[i % styles.length]!]!(file, configFor(target, target === a ? b : a, i));
        delays.push(await waitForUpstream(gw, target.name));
      }
    } finally {
      await load.finish();
      await gw.close();
      root.remove();
    }
    t.diagnostic(`${load.ok} requests during 50 reloads; reload took effect in max ${Math.max(...delays)} ms, median ${delays.sort((x, y) => x - y)[25]} ms`);
    assert.deepEqual(load.failures, []);
    assert.ok(load.ok > 100);
  });

  test('a ConfigMap-style ..data symlink swap is picked up, ten times in a row', async () => {
    const root = tempDir();
    const version = (n: number, text: string) => {
      const dir = join(root.dir, `..2026_11_27_${n}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'gateway.yaml'), text);
      return `..2026_11_27_${n}`;
    };
    const first = version(0, configFor(a, b, 0));
    symlinkSync(first, join(root.dir, '..data'));
    symlinkSync('..data/gateway.yaml', join(root.dir, 'gateway.yaml'));
    const gw = await startGateway('', { configFile: join(root.dir, 'gateway.yaml') });
    const load = loadLoop(gw.url, 2);
    let previous = first;
    try {
      for (let i = 1; i <= 10; i++) {
        const target = i % 2 === 1 ? b : a;
        const next = version(i, configFor(target, target === a ? b : a, i));
        // What the kubelet does: a new ..data_tmp link, renamed over ..data.
        symlinkSync(next, join(root.dir, '..data_tmp'));
        renameSync(join(root.dir, '..data_tmp'), join(root.dir, '..data'));
        rmSync(join(root.dir, previous), { recursive: true });
        previous = next;
        await waitForUpstream(gw, target.name);
      }
    } finally {
      await load.finish();
      await gw.close();
      root.remove();
    }
    assert.deepEqual(load.failures, []);
  });

  test('invalid configs are rejected and the old one keeps serving', async () => {
    const gw = await startGateway(configFor(a, b, 0));
    try {
      const generation = async () => (await request(gw.adminUrl + '/config')).json().generation;
      assert.equal(await generation(), 1);
      // Not YAML at all.
      gw.writeConfig('routes: [unclosed\n');
      await sleep(600);
      assert.equal(await servedBy(gw), 'a');
      // YAML, but wrong: an undefined upstream.
      gw.writeConfig(configFor(a, b, 1).replace('backends: [{ upstream: a }]', 'backends: [{ upstream: nope }]'));
      await sleep(600);
      assert.equal(await servedBy(gw), 'a');
      assert.equal(await generation(), 1);
      const reply = await request(gw.adminUrl + '/reload', { method: 'POST', headers: { 'x-requested-by': 'test' } });
      assert.equal(reply.status, 422);
      const body = reply.json();
      assert.equal(body.errors[0].path, 'routes[0].backends[0].upstream');
      assert.equal(body.errors[0].line, 10);
      let metrics = (await request(gw.adminUrl + '/metrics')).text;
      assert.equal(metricValue(metrics, 'gatewayctl_config_last_reload_successful'), 0);
      assert.ok(metricValue(metrics, 'gatewayctl_config_reloads_total', { result: 'failure' }) >= 2);
      assert.ok(gw.logs.some((l) => l.event === 'config.error' && /gateway\.yaml:10:\d+: error: .*"nope" is not defined/.test(l.message)));
      // A good config after the bad ones is applied.
      gw.writeConfig(configFor(b, a, 2));
      await waitForUpstream(gw, 'b');
      metrics = (await request(gw.adminUrl + '/metrics')).text;
      assert.equal(metricValue(metrics, 'gatewayctl_config_last_reload_successful'), 1);
      assert.equal(metricValue(metrics, 'gatewayctl_config_generation'), 2);
      assert.ok(gw.logs.some((l) => l.event === 'config.reloaded' && /route app weights a=1 -> b=1/.test(l.message)));
    } finally {
      await gw.close();
    }
  });

  test('an unchanged config is a no-op, and restart-only settings are reported, not half-applied', async () => {
    const gw = await startGateway(configFor(a, b, 0), { watch: false });
    try {
      const same = await request(gw.adminUrl + '/reload', { method: 'POST', headers: { 'x-requested-by': 'test' } });
      assert.deepEqual(same.json(), { generation: 1, changed: [], unchanged: true });
      gw.writeConfig(configFor(b, a, 1).replace('listen: 127.0.0.1:0', 'listen: 127.0.0.1:1'));
      const changed = (await request(gw.adminUrl + '/reload', { method: 'POST', headers: { 'x-requested-by': 'test' } })).json();
      assert.equal(changed.generation, 2);
      assert.deepEqual(changed.restartRequired, ['listen 127.0.0.1:0 -> 127.0.0.1:1']);
      assert.equal(await servedBy(gw), 'b');
    } finally {
      await gw.close();
    }
  });

  test('with an admin token, POST /reload needs it', async () => {
    const withToken = configFor(a, b, 0).replace('admin: 127.0.0.1:0', 'admin: { listen: 127.0.0.1:0, token: s3cret-token-0123456789 }');
    const gw = await startGateway(withToken, { watch: false });
    try {
      assert.equal((await request(gw.adminUrl + '/reload', { method: 'POST', headers: { 'x-requested-by': 'test' } })).status, 401);
      assert.equal((await request(gw.adminUrl + '/reload', { method: 'POST', headers: { authorization: 'Bearer wrong', 'x-requested-by': 'test' } })).status, 401);
      const ok = await request(gw.adminUrl + '/reload', { method: 'POST', headers: { authorization: 'Bearer s3cret-token-0123456789', 'x-requested-by': 'test' } });
      assert.equal(ok.status, 200);
      assert.equal((await request(gw.adminUrl + '/metrics')).status, 200, 'reads stay open');
      assert.equal((await request(gw.adminUrl + '/healthz', { headers: { host: 'evil.example.com' } })).status, 403);
      assert.equal(JSON.stringify((await request(gw.adminUrl + '/config')).json()).includes('s3cret'), false);
    } finally {
      await gw.close();
    }
  });

  test('admin.allowedHosts: listed names are answered, others still refused; a reload changes the list', async () => {
    const yaml = (hosts: string) => configFor(a, b, 0).replace('admin: 127.0.0.1:0', `admin: { listen: 127.0.0.1:0, allowedHosts: [${hosts}] }`);
    const gw = await startGateway(yaml('pod-a, Gatewayctl-Admin.prod.svc'), { watch: false });
    try {
      const status = async (host: string) => (await request(gw.adminUrl + '/healthz', { headers: { host } })).status;
      assert.equal(await status('pod-a:9901'), 200, 'a Prometheus static target gw-1:9901 is up');
      assert.equal(await status('gatewayctl-admin.prod.svc'), 200, 'names compare case-insensitively');
      assert.equal(await status('pod-a.'), 200, 'a fully qualified trailing dot is the same name');
      assert.equal(await status('pod-b:9901'), 403, 'names not listed are still refused (DNS rebinding)');
      assert.equal(await status('pod-a.evil.example'), 403);
      gw.writeConfig(yaml('pod-b'));
      assert.equal((await request(gw.adminUrl + '/reload', { method: 'POST', headers: { 'x-requested-by': 'test' } })).status, 200);
      assert.equal(await status('pod-b:9901'), 200);
      assert.equal(await status('pod-a:9901'), 403);
    } finally {
      await gw.close();
    }
  });

  test('a reload that removes a route and an upstream removes their metric series', async () => {
    const two = configFor(a, b, 0).replace(
      'routes:',
      `routes:
  - name: old
    match: { prefix: /old }
    backends: [{ upstream: ${b.name} }]`,
    );
    const gw = await startGateway(two, { watch: false });
    try {
      await request(gw.url + '/old/x');
      await request(gw.url + '/x');
      let metrics = (await request(gw.adminUrl + '/metrics')).text;
      assert.equal(metricValue(metrics, 'gatewayctl_requests_total', { route: 'old', upstream: 'b' }), 1);
      gw.writeConfig(configFor(a, a, 1).replace(`  ${a.name}: ${a.url}\n  ${a.name}: ${a.url}`, `  ${a.name}: ${a.url}`));
      assert.equal((await request(gw.adminUrl + '/reload', { method: 'POST', headers: { 'x-requested-by': 'test' } })).status, 200);
      await request(gw.url + '/x');
      const deadline = Date.now() + 5000;
      do {
        metrics = (await request(gw.adminUrl + '/metrics')).text;
        if (!metrics.includes('route="old"')) break;
        await sleep(50);
      } while (Date.now() < deadline);
      assert.equal(metrics.includes('route="old"'), false, 'the removed route\'s series are gone');
      assert.equal(metrics.includes('upstream="b"'), false, 'the removed upstream\'s series are gone');
      assert.equal(metricValue(metrics, 'gatewayctl_requests_total', { route: 'app', upstream: 'a' }), 2, 'the rest keep counting');
    } finally {
      await gw.close();
    }
  });
});
