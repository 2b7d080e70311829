/**
 * The cases reported against Node 20 with http-proxy 1.18, replayed against
 * the real `gatewayctl serve` process: after each, the process is alive and
 * serving, and the upstream saw nothing it should not have.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawnServeYaml } from '../helpers/cli.js';
import { request, runConcurrently } from '../helpers/http.js';
import { exchange, ok, RawClient, sleep, startCapture, withClient, type CaptureUpstream } from '../helpers/raw.js';

const H = 'Host: gw.test\r\n';

describe('reported cases, against the CLI process', () => {
  let upstream: CaptureUpstream;
  let serve: Awaited<ReturnType<typeof spawnServeYaml>>;
  before(async () => {
    upstream = await startCapture(
      (req) => {
        if (req.target === '/ws') return { bytes: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', then: 'tunnel' };
        if (req.target === '/ws-slow' || req.target.startsWith('/hold')) return 'hang';
        if (req.target === '/trailer-answer') return 'HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nContent-Length: 2\r\n\r\nok';
        return ok(`${req.method} ${req.target} ${req.body.length}`);
      },
      { replyAfterHead: true },
    );
    serve = await spawnServeYaml(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { cap: ${upstream.url} }
routes:
  - { name: all, backends: [{ upstream: cap }] }
`);
  });
  after(async () => {
    await serve.close();
    await upstream.close();
  });

  const assertServing = async () => {
    assert.equal(serve.child.exitCode, null, 'the gateway process is alive');
    assert.equal(serve.child.signalCode, null);
    const got = await exchange(serve.port, `GET /alive HTTP/1.1\r\n${H}\r\n`);
    assert.equal(got.first.status, 200, got.text);
    assert.equal((await request(serve.adminUrl + '/healthz')).status, 200);
  };

  test('a second request smuggled behind 1,000+ filler headers and Content-Length', async () => {
    const smuggled = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
    const fillers = Array.from({ length: 1100 }, (_, i) => `X-F${i}: a\r\n`).join('');
    const before = upstream.heads;
    const got = await exchange(serve.port, `POST /front HTTP/1.1\r\n${H}${fillers}Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`, { settleMs: 200 });
    assert.equal(got.first.status, 431, got.text);
    assert.ok(got.closed);
    await sleep(50);
    assert.equal(upstream.heads, before, 'nothing reached the upstream');
    assert.ok(!upstream.headTargets.has('/smuggled'));
    await assertServing();
  });

  test('single-packet requests with a Trailer header (Content-Length and chunked), and a Trailer in the answer', async () => {
    const packets = [
      `POST /t1 HTTP/1.1\r\n${H}Trailer: X-Sum\r\nContent-Length: 5\r\n\r\nhello`,
      `POST /t2 HTTP/1.1\r\n${H}Trailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n`,
      `GET /t3 HTTP/1.1\r\n${H}Trailer: X-Sum\r\n\r\n`,
      `GET /trailer-answer HTTP/1.1\r\n${H}\r\n`,
    ];
    for (const packet of packets) {
      const got = await exchange(serve.port, Buffer.from(packet, 'latin1'));
      assert.equal(got.first.status, 200, got.text);
      assert.equal(got.first.header('trailer'), undefined);
    }
    for (const target of ['/t1', '/t2', '/t3']) {
      const r = upstream.requests.find((x) => x.target === target)!;
      assert.equal(r.header('trailer'), undefined, `${target}: no Trailer header upstream`);
    }
    await assertServing();
  });

  test('WebSocket upgrades whose client resets: during the handshake, right after it, inside the tunnel', async () => {
    const handshake = (path: string) => `GET ${path} HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    for (let i = 0; i < 30; i++) {
      const client = new RawClient(serve.port);
      await client.connected;
      if (i % 3 === 0) {
        // reset in the same moment as the handshake is sent
        client.socket.write(handshake('/ws-slow'));
        client.resetNow();
      } else if (i % 3 === 1) {
        await client.write(handshake('/ws'));
        client.resetNow();
      } else {
        await client.write(handshake('/ws'));
        await client.until(() => client.text().includes('\r\n\r\n'), 1000);
        await client.write('frame-bytes');
        client.resetNow();
      }
    }
    await assertServing();
  });

  test('an Expect header does not skip header clean-up', async () => {
    await withClient(serve.port, async (client) => {
      await client.write(
        `POST /expect HTTP/1.1\r\n${H}Expect: 100-continue\r\nConnection: X-Private\r\nX-Private: 1\r\nX-Shadow-Request: 1\r\n` +
          `Proxy-Authorization: Basic eDp5\r\nX-Forwarded-For: 6.6.6.6\r\nContent-Length: 5\r\n\r\n`,
      );
      assert.ok(await client.until(() => client.text().includes('100 Continue'), 2000), client.text());
      await client.write('hello');
      const got = await client.read({ responses: 2 });
      assert.equal(got.responses.at(-1)?.status, 200, got.text);
    });
    const r = upstream.requests.find((x) => x.target === '/expect')!;
    for (const name of ['expect', 'x-private', 'x-shadow-request', 'proxy-authorization']) assert.equal(r.header(name), undefined, name);
    assert.deepEqual(r.headerAll('x-forwarded-for'), ['127.0.0.1']);
    assert.match(r.header('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    await assertServing();
  });

  test('upstream connections do not stay open after clients abort', async () => {
    await runConcurrently(300, 20, async (i) => {
      const client = new RawClient(serve.port);
      try {
        await client.connected;
        await client.write(`GET /hold?${i} HTTP/1.1\r\n${H}\r\n`);
        await client.until(() => upstream.headTargets.has(`/hold?${i}`), 2000);
      } finally {
        client.resetNow();
      }
    });
    await upstream.waitForClosed((target) => target.startsWith('/hold'), 5000);
    const carried = upstream.connections.filter((c) => c.targets.some((t) => t.startsWith('/hold')));
    assert.ok(carried.length >= 250, `${carried.length} upstream connections carried the 300 aborted requests`);
    await assertServing();
  });
});
