/**
 * Plain-HTTP upstream connections read into one buffer per thread
 * (src/upstream/shared-reads.ts). These tests hold that to what it must
 * never do, change a byte: answers read over many connections at once,
 * some held back by clients that read slowly, arrive byte for byte; the
 * shadow thread's copies, read the same way, compare equal to them; and
 * an upgraded connection keeps what it reads while other answers share the
 * buffer.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { sleep } from '../helpers/raw.js';

/** Bytes no two answers share: a xorshift stream seeded per answer. */
function bytesFor(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const sizeOf = (seed: number) => 150_000 + ((seed * 7919) % 450_000);
const tick = () => new Promise((resolve) => setImmediate(resolve));

/**
 * GET /bodies/<seed> (or /plain/<seed>): that seed's bytes, declared or chunked (odd seeds), in
 * writes of odd sizes so reads end anywhere. An upgrade answers 101 with
 * bytes behind it in the same write, then a burst of `TUNNEL_BYTES`.
 */
const TUNNEL_HEAD = Buffer.from('bytes-right-behind-the-101|');
// More than the loopback's socket buffers hold, so a paused client leaves
// some of it queued in the gateway while other answers are read.
const TUNNEL_BYTES = bytesFor(99_991, 16_000_000);

function startBodies(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = http.createServer(async (req, res) => {
    const seed = Number(/^\/(?:bodies|plain)\/(\d+)/.exec(req.url ?? '')?.[1] ?? 0);
    const bytes = bytesFor(seed, sizeOf(seed));
    const chunked = seed % 2 === 1;
    res.writeHead(200, { 'content-type': 'application/octet-stream', ...(chunked ? {} : { 'content-length': String(bytes.length) }) });
    for (let at = 0, step = 30_011; at < bytes.length; at += step, step = (step * 3) % 90_001 || 30_011) {
      if (!res.write(bytes.subarray(at, at + step))) await new Promise((resolve) => res.once('drain', resolve));
      await tick();
    }
    res.end();
  });
  server.on('upgrade', async (_req, socket: Socket) => {
    socket.on('error', () => undefined);
    socket.write(Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw-test\r\nConnection: Upgrade\r\n\r\n'), TUNNEL_HEAD]));
    for (let at = 0; at < TUNNEL_BYTES.length; at += 70_001) {
      if (!socket.write(TUNNEL_BYTES.subarray(at, at + 70_001))) await new Promise((resolve) => socket.once('drain', resolve));
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      }),
    ),
  );
}

/** GETs `url` and hashes the body; a slow reader pauses after each chunk. */
function fetchHash(url: string, slow: boolean): Promise<{ status: number; sha: string; length: number }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        const hash = createHash('sha256');
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          length += chunk.length;
          if (slow) {
            res.pause();
            setTimeout(() => res.resume(), 3);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, sha: hash.digest('hex'), length }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

describe('upstream answers read through the shared buffer', () => {
  let primary: Awaited<ReturnType<typeof startBodies>>;
  let twin: Awaited<ReturnType<typeof startBodies>>;
  let gw: TestGateway;

  before(async () => {
    [primary, twin] = await Promise.all([startBodies(), startBodies()]);
    // Every copy is sent (no shedding), and bodies are compared whole.
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
limits: { shadowShedAbove: 1 }
upstreams:
  primary: ${primary.url}
  twin: ${twin.url}
routes:
  - { name: bodies, match: { prefix: /bodies }, backends: [{ upstream: primary }], shadow: [{ upstream: twin }], diff: { maxBodyBytes: 1mb } }
  - { name: plain, match: { prefix: /plain }, backends: [{ upstream: primary }] }
  - { name: tunnel, match: { prefix: /tunnel }, backends: [{ upstream: primary }] }
`);
  });

  after(async () => {
    await gw.close();
    await Promise.all([primary.close(), twin.close()]);
  });

  test('24 answers at once, half read slowly, arrive byte for byte, and their shadow copies compare equal', async () => {
    const seeds = Array.from({ length: 24 }, (_, i) => i + 1);
    const got = await Promise.all(seeds.map((seed) => fetchHash(`${gw.url}/bodies/${seed}`, seed % 4 < 2)));
    for (const [i, seed] of seeds.entries()) {
      const expected = bytesFor(seed, sizeOf(seed));
      assert.equal(got[i]!.status, 200);
      assert.equal(got[i]!.length, expected.length, `answer ${seed}: length`);
      assert.equal(got[i]!.sha, sha(expected), `answer ${seed}: bytes`);
    }
    await gw.settled();
    // Counts reach the metrics with the thread's next report.
    let metrics = '';
    const count = (result: string) => metricValue(metrics, 'gatewayctl_shadow_comparisons_total', { route: 'bodies', result });
    const notCompared = () => metricValue(metrics, 'gatewayctl_shadow_compare_dropped_total', { route: 'bodies' });
    for (const until = Date.now() + 5_000; ; await sleep(50)) {
      metrics = (await request(gw.adminUrl + '/metrics')).text;
      if (count('match') + count('diff') + notCompared() >= seeds.length || Date.now() > until) break;
    }
    assert.equal(count('diff'), 0, 'a shadow answer read differently from its primary');
    assert.equal(count('match') + notCompared(), seeds.length);
    assert.ok(count('match') >= seeds.length / 2, `only ${count('match')} pairs compared`);
  });

  test('an upgraded connection keeps the bytes behind its 101 and all it reads, while answers share the buffer', async () => {
    const client = net.connect(gw.port, '127.0.0.1');
    const received: Buffer[] = [];
    let total = 0;
    client.on('data', (chunk: Buffer) => {
      received.push(chunk);
      total += chunk.length;
    });
    await new Promise((resolve) => client.once('connect', resolve));
    // The client reads nothing for a while: the tunnel's bytes back up into the
    // gateway, and wait there while other answers are read.
    client.pause();
    client.write('GET /tunnel HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: raw-test\r\n\r\n');
    await sleep(200);
    const others = Promise.all([3, 6, 9, 12].map((seed) => fetchHash(`${gw.url}/plain/${seed}`, false)));
    await sleep(200);
    client.resume();
    const answers = await others;
    for (const [i, seed] of [3, 6, 9, 12].entries()) assert.equal(answers[i]!.sha, sha(bytesFor(seed, sizeOf(seed))), `answer ${seed}`);
    const headEnd = () => Buffer.concat(received).indexOf('\r\n\r\n');
    for (const until = Date.now() + 10_000; Date.now() < until; await sleep(20)) {
      const at = headEnd();
      if (at >= 0 && total - at - 4 >= TUNNEL_HEAD.length + TUNNEL_BYTES.length) break;
    }
    client.destroy();
    const all = Buffer.concat(received);
    const at = all.indexOf('\r\n\r\n');
    assert.match(all.subarray(0, at).toString('latin1'), /^HTTP\/1\.1 101 /);
    const tunnelled = all.subarray(at + 4);
    assert.equal(tunnelled.length, TUNNEL_HEAD.length + TUNNEL_BYTES.length);
    assert.equal(tunnelled.subarray(0, TUNNEL_HEAD.length).toString(), TUNNEL_HEAD.toString());
    assert.equal(sha(tunnelled.subarray(TUNNEL_HEAD.length)), sha(TUNNEL_BYTES));
  });
});
