/**
 * Upstream pools on real sockets: several endpoints behind one upstream,
 * one killed under load (retries and ejection keep every request
 * succeeding, active checks see it go and come back), retries that are
 * invisible or refused as they must be, the retry budget, and a pool
 * filled by stalled uploads answering 503 pool_exhausted, not blaming the
 * upstream.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { runCli } from '../helpers/cli.js';
import { deadPort } from '../helpers/upstream.js';
import { METRIC } from '../../src/metrics/names.js';

/** An instance that can be killed and brought back on the same port. */
class Instance {
  server: http.Server | undefined;
  readonly sockets = new Set<Socket>();
  hits = 0;
  constructor(
    readonly name: string,
    public port = 0,
    readonly handler: (req: http.IncomingMessage, res: http.ServerResponse, instance: Instance) => void = (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(this.name);
      });
    },
  ) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      if (req.url !== '/healthz') this.hits++;
      this.handler(req, res, this);
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }
  async kill(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

const metrics = async (gw: TestGateway) => (await request(gw.adminUrl + '/metrics')).text;

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('upstream pools', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });
  /** A gateway with one route, everything to upstream "app", given the upstreams block. */
  const gatewayWith = async (upstreams: string) => {
    const gw = await startGateway(`listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nupstreams:\n${upstreams}\nroutes:\n  - name: all\n    backends: [{ upstream: app }]\n`);
    cleanup.push(() => gw.close());
    return gw;
  };
  /** Starts the instances, to be killed after the tests. */
  const running = async (...instances: Instance[]) => {
    for (const i of instances) {
      await i.start();
      cleanup.push(() => i.kill());
    }
  };

  test('three endpoints, one killed under load: no failed request; ejected, detected, readmitted', async () => {
    const instances = [new Instance('a'), new Instance('b'), new Instance('c')];
    await running(...instances);
    const gw = await gatewayWith(`
  app:
    endpoints: [${instances.map((i) => i.url).join(', ')}]
    healthCheck: { path: /healthz, interval: 100ms, timeout: 500ms, healthyThreshold: 2, unhealthyThreshold: 2 }
    outlierDetection: { consecutiveFailures: 3, baseEjectionTime: 30s }
    retry: { attempts: 3, on: [connect, reset, 502, 503] }
`);
    const healthy = async (endpoint: string) =>
      metricValue(await metrics(gw), METRIC.endpointHealthy, { upstream: 'app', endpoint });

    const failures: string[] = [];
    let ok = 0;
    let stop = false;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const loop = async () => {
      for (let n = 0; n < 4000 && !stop; n++) {
        try {
          const answer = await request(gw.url + '/work', { agent });
          if (answer.status === 200) ok++;
          else failures.push(`${answer.status} ${answer.text}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    await until('traffic on every endpoint', async () => instances.every((i) => i.hits > 20));
    await instances[1]!.kill();
    const hitsAtKill = ok;
    await until('the killed endpoint out of rotation', async () => (await healthy('1')) === 0);
    await until('more traffic after the kill', async () => ok > hitsAtKill + 500);
    const text = await metrics(gw);
    await instances[1]!.start();
    await until('the endpoint readmitted once it answers its checks', async () => (await healthy('1')) === 1);
    const hitsBack = instances[1]!.hits;
    await until('traffic on the readmitted endpoint', async () => instances[1]!.hits > hitsBack + 20);
    stop = true;
    await Promise.all(loops);
    agent.destroy();

    assert.deepEqual(failures, [], 'no user request failed');
    assert.ok(ok > 600, `requests served: ${ok}`);
    assert.equal(metricValue(text, METRIC.endpointHealthy, { upstream: 'app', endpoint: '0' }), 1);
    assert.equal(metricValue(text, METRIC.endpointHealthy, { upstream: 'app', endpoint: '2' }), 1);
    const status = (await request(gw.adminUrl + '/status')).json();
    const app = status.upstreams.find((u: { name: string }) => u.name === 'app');
    assert.deepEqual(
      app.endpoints.map((e: { endpoint: string; healthy: boolean }) => [e.endpoint, e.healthy]),
      [
        ['0', true],
        ['1', true],
        ['2', true],
      ],
    );
  });

  test('active checks alone take a dead endpoint out before any request meets it, and bring it back', async () => {
    const a = new Instance('a');
    const b = new Instance('b');
    await running(a, b);
    const gw = await gatewayWith(`
  app:
    endpoints: [${a.url}, { url: ${b.url}, name: b }]
    healthCheck: { path: /healthz, interval: 100ms, timeout: 300ms, healthyThreshold: 1, unhealthyThreshold: 2 }
`);
    const healthy = async () => metricValue(await metrics(gw), METRIC.endpointHealthy, { upstream: 'app', endpoint: 'b' });
    await until('b healthy', async () => (await healthy()) === 1);
    await b.kill();
    await until('b out of rotation', async () => (await healthy()) === 0);
    assert.equal(metricValue(await metrics(gw), METRIC.endpointEjections, { upstream: 'app' }), 0, 'no request was involved');
    for (let i = 0; i < 10; i++) assert.equal((await request(gw.url + '/x')).text, 'a', 'only a serves');
    await b.start();
    await until('b back in rotation', async () => (await healthy()) === 1);
    const served = new Set<string>();
    for (let i = 0; i < 10; i++) served.add((await request(gw.url + '/x')).text);
    assert.deepEqual([...served].sort(), ['a', 'b']);
    assert.equal(a.hits + b.hits, 20, 'twenty requests (checks not counted)');
  });

  test('least outstanding: an open WebSocket tunnel keeps new requests on the other endpoint', async () => {
    const tunnels = new Map<string, Socket[]>();
    const withTunnels = (name: string) => {
      const instance = new Instance(name);
      tunnels.set(name, []);
      return instance;
    };
    const a = withTunnels('a');
    const b = withTunnels('b');
    await running(a, b);
    for (const i of [a, b]) {
      i.server!.on('upgrade', (_req, socket: Socket) => {
        tunnels.get(i.name)!.push(socket);
        socket.once('end', () => socket.destroy());
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      });
    }
    const gw = await gatewayWith(`  app: { endpoints: [${a.url}, ${b.url}] }`);
    const client = net.connect(gw.port, '127.0.0.1');
    cleanup.push(async () => void client.destroy());
    client.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await new Promise<void>((resolve) => client.once('data', () => resolve()));
    const busy = tunnels.get('a')!.length === 1 ? 'a' : 'b';
    const idle = busy === 'a' ? 'b' : 'a';
    const served = [];
    for (let i = 0; i < 10; i++) served.push((await request(gw.url + '/x')).text);
    assert.deepEqual(served, Array(10).fill(idle), 'every request to the endpoint with nothing in flight');
    client.destroy();
    await until('the tunnel closed on the upstream side', async () => tunnels.get(busy)![0]!.destroyed);
    await new Promise((r) => setTimeout(r, 50));
    const after = new Set<string>();
    for (let i = 0; i < 10; i++) after.add((await request(gw.url + '/x')).text);
    assert.deepEqual([...after].sort(), ['a', 'b'], 'shared again once the tunnel is gone');
  });

  test('an endpoint named by DNS is resolved, for requests and for health checks', async () => {
    const app = new Instance('app');
    await running(app);
    const gw = await gatewayWith(`  app:
    endpoints: [http://localhost:${app.port}]
    healthCheck: { path: /healthz, interval: 100ms, timeout: 500ms, unhealthyThreshold: 1 }`);
    assert.equal((await request(gw.url + '/x')).text, 'app');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(metricValue(await metrics(gw), METRIC.endpointHealthy, { upstream: 'app', endpoint: '0' }), 1);
  });

  test('a retry on connect failure is invisible; a POST body reaches the live endpoint whole', async () => {
    const live = new Instance('live', 0, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.writeHead(200);
        res.end(`${req.method} ${Buffer.concat(chunks).length}`);
      });
    });
    await running(live);
    const dead = await deadPort();
    const gw = await gatewayWith(`
  app: { endpoints: [http://127.0.0.1:${dead}, ${live.url}], outlierDetection: { consecutiveFailures: 1000 } }
`);
    const body = 'x'.repeat(200_000);
    const answers = await runConcurrently(40, 4, (i) =>
      request(gw.url + '/r', i % 2 ? { method: 'POST', body } : {}),
    );
    for (const [i, a] of answers.entries()) assert.equal(a.text, i % 2 ? `POST ${body.length}` : 'GET 0');
    const text = await metrics(gw);
    assert.ok(metricValue(text, METRIC.upstreamRetries, { route: 'all', upstream: 'app' }) >= 10, 'requests were retried');
    assert.equal(metricValue(text, METRIC.upstreamErrors, { route: 'all', upstream: 'app' }), 0);
  });

  test('a POST is never retried once its bytes were sent', async () => {
    // Reads the request, then drops the connection without an answer.
    const dropper = new Instance('dropper', 0, (req) => {
      req.resume();
      req.on('end', () => req.socket.destroy());
    });
    const other = new Instance('other');
    await running(dropper, other);
    const gw = await gatewayWith(`
  app: { endpoints: [${dropper.url}, ${other.url}], retry: { attempts: 3, on: [connect, reset, 502, 503] }, outlierDetection: { consecutiveFailures: 1000 } }
`);
    let posts502 = 0;
    for (let i = 0; i < 10; i++) {
      const a = await request(gw.url + '/pay', { method: 'POST', body: 'amount=10' });
      if (a.status === 502) posts502++;
      else assert.equal(a.status, 200);
    }
    assert.ok(posts502 >= 3, `some POSTs went to the endpoint that drops them: ${posts502}`);
    assert.equal(dropper.hits + other.hits, 10, 'each POST reached exactly one endpoint, once');
    // A GET that meets the same fate is repeated elsewhere: idempotent.
    for (let i = 0; i < 10; i++) assert.equal((await request(gw.url + '/read')).status, 200);
  });

  test('the retry budget caps amplification when every endpoint fails', async () => {
    const failing = (name: string) =>
      new Instance(name, 0, (req, res) => {
        req.resume();
        res.writeHead(503);
        res.end('down');
      });
    const a = failing('a');
    const b = failing('b');
    await running(a, b);
    const gw = await gatewayWith(`
  app: { endpoints: [${a.url}, ${b.url}], retry: { attempts: 3, on: [503], budgetPercent: 20 } }
`);
    const requests = 400;
    const answers = await runConcurrently(requests, 8, () => request(gw.url + '/x'));
    assert.ok(answers.every((x) => x.status === 503));
    const hits = a.hits + b.hits;
    // Without a budget: 3 tries each, 1200. With it: 20% of 400 plus 30 at most.
    assert.ok(hits > requests, `some retries were made: ${hits}`);
    assert.ok(hits <= requests * 1.2 + 30, `upstream saw ${hits} tries for ${requests} requests`);
  });

  test('shadow copies pick from the same pool: the health they see is the primary\'s too', async () => {
    const primary = new Instance('primary');
    const live = new Instance('live');
    await running(primary, live);
    const dead = await deadPort();
    const gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  main: ${primary.url}
  v2:
    endpoints: [http://127.0.0.1:${dead}, ${live.url}]
    outlierDetection: { consecutiveFailures: 2, baseEjectionTime: 60s }
    retry: { attempts: 1 }
routes:
  - name: dark
    match: { prefix: /dark }
    backends: [{ upstream: main }]
    shadow: [{ upstream: v2 }]
  - name: direct
    backends: [{ upstream: v2 }]
`);
    cleanup.push(() => gw.close());
    // Copies only: the dead endpoint fails them until it is ejected.
    for (let i = 0; i < 10; i++) assert.equal((await request(gw.url + '/dark/x')).status, 200);
    await until('the dead endpoint ejected by the copies', async () =>
      metricValue(await metrics(gw), METRIC.endpointEjections, { upstream: 'v2', endpoint: '0' }) === 1,
    );
    // Without retries, a user request to v2 would fail on the dead endpoint: none does, it is out for everyone.
    for (let i = 0; i < 20; i++) assert.equal((await request(gw.url + '/x')).status, 200);
    const status = await runCli(['status', '--admin', gw.adminUrl]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /v2\s+0\s+http:\/\/127\.0\.0\.1:\d+\s+1\s+out/);
    assert.match(status.stdout, /v2\s+1\s+http:\/\/127\.0\.0\.1:\d+\s+1\s+healthy/);
  });

  test('stalled uploads fill a small pool: others get 503 pool_exhausted or succeed; the upstream is not blamed', async () => {
    const app = new Instance('app');
    await running(app);
    const gw = await gatewayWith(`  app: { url: ${app.url}, maxSockets: 4, poolTimeout: 300ms }
timeouts: { body: 2s }`);
    const stalled: Socket[] = [];
    for (let i = 0; i < 500; i++) {
      const s = net.connect(gw.port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'u'.repeat(100)}`);
      stalled.push(s);
    }
    cleanup.push(async () => stalled.forEach((s) => s.destroy()));
    await new Promise((r) => setTimeout(r, 200));
    const statuses = new Map<number, number>();
    const answers = await runConcurrently(100, 10, () => request(gw.url + '/ping'));
    for (const a of answers) {
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      if (a.status === 503) assert.match(a.text, /pool exhausted/);
      else assert.equal(a.status, 200);
    }
    assert.ok((statuses.get(503) ?? 0) > 0, `the pool was full: ${JSON.stringify([...statuses])}`);
    // The stalled uploads still hold their sockets open: at timeouts.body they
    // are cut (408) and their upstream connections come free.
    await until('the pool to serve again', async () => (await request(gw.url + '/ping')).status === 200);
    for (const s of stalled) s.destroy();
    const text = await metrics(gw);
    assert.ok(metricValue(text, METRIC.upstreamErrors, { upstream: 'app', reason: 'pool_exhausted' }) > 0);
    for (const reason of ['connect', 'timeout', 'reset']) {
      assert.equal(metricValue(text, METRIC.upstreamErrors, { upstream: 'app', reason }), 0, reason);
    }
    assert.equal(metricValue(text, METRIC.endpointEjections, { upstream: 'app' }), 0, 'the endpoint is not blamed either');
  });
});
