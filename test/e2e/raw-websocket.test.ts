/**
 * Upgrades (WebSocket) through the same screening and routing as plain
 * requests, with their own error handling and idle timeout. A tunnel opens
 * only on the upstream's own 101 for the protocol the client asked for;
 * anything else is answered and the connection closed, so nothing sent
 * after a refused upgrade reaches the upstream as raw bytes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'undici';
import { spawnServeYaml } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { deadPort } from '../helpers/upstream.js';
import { exchange, ok, RawClient, withClient, sleep, startCapture, type CaptureUpstream, type Reply } from '../helpers/raw.js';
import { METRIC } from '../../src/metrics/names.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
const H = 'Host: gw.test\r\n';
const handshake = (path: string, extra = '') =>
  `GET ${path} HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
const switching = (upgrade = 'websocket') =>
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${upgrade}\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${ACCEPT}\r\nX-From-Upstream: 1\r\n\r\n`;

/** Node >= 24.9 lets the gateway serve unsuitable Upgrade requests as plain ones. */
const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
const perRequestUpgrade = major > 24 || (major === 24 && minor >= 9);

const replies: Record<string, Reply> = {
  '/ws/echo': { bytes: switching(), then: 'tunnel' },
  '/ws/refuse': 'HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 6\r\n\r\nno way',
  '/ws/426': 'HTTP/1.1 426 Upgrade Required\r\nupgrade: websocket\r\nconnection: upgrade\r\ncontent-length: 0\r\n\r\n',
  '/ws/chunked-refusal': { bytes: 'HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n', then: 'keep' },
  '/ws/hang': 'hang',
  '/ws/wrong': { bytes: switching('h2c'), then: 'tunnel' },
  '/ws/noupgrade': { bytes: 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n', then: 'tunnel' },
  '/ws/close': { bytes: switching(), then: 'close' },
};

/** A minimal RFC 6455 endpoint on Node's http server: echoes text frames. */
function startWebSocketEcho(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => res.end('plain'));
  const sockets = new Set<Socket>();
  server.on('upgrade', (req, socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    let buffer = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buffer = Buffer.concat([buffer, d]);
      while (buffer.length >= 6) {
        const opcode = buffer[0]! & 0x0f;
        const length = buffer[1]! & 0x7f; // short frames only
        if (buffer.length < 6 + length) break;
        const mask = buffer.subarray(2, 6);
        const payload = Buffer.from(buffer.subarray(6, 6 + length).map((b, i) => b ^ mask[i % 4]!));
        buffer = buffer.subarray(6 + length);
        if (opcode === 0x8) {
          socket.end(Buffer.from([0x88, 0]));
          return;
        }
        if (opcode === 0x1) {
          const text = Buffer.from(`echo: ${payload}`);
          socket.write(Buffer.concat([Buffer.from([0x81, text.length]), text]));
        }
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () => {
          for (const s of sockets) s.destroy();
          return new Promise((r) => server.close(() => r()));
        },
      }),
    ),
  );
}

describe('raw websocket', () => {
  let upstream: CaptureUpstream;
  let echo: { url: string; close(): Promise<void> };
  let gw: TestGateway;
  let port: number;
  before(async () => {
    upstream = await startCapture((req) => replies[req.target] ?? ok(`plain ${req.method} ${req.target} upgrade=${req.header('upgrade') ?? '-'}`));
    echo = await startWebSocketEcho();
    const dead = await deadPort();
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  ws: { url: ${upstream.url}, timeout: 600ms }
  echo: ${echo.url}
  dead: http://127.0.0.1:${dead}
limits: { maxHeaderCount: 20 }
timeouts: { websocketIdle: 500ms }
routes:
  - { name: ws, match: { prefix: /ws }, backends: [{ upstream: ws }] }
  - { name: real, match: { prefix: /real }, backends: [{ upstream: echo }] }
  - { name: dead, match: { prefix: /dead }, backends: [{ upstream: dead }] }
`);
    port = gw.port;
  });
  after(async () => {
    await gw.close();
    await upstream.close();
    await echo.close();
  });

  test('a WebSocket handshake is forwarded with clean headers and the tunnel carries bytes both ways', async () => {
    await withClient(port, async (client) => {
      const before = upstream.requests.length;
      await client.write(handshake('/ws/echo', 'X-Request-Id: ws-1\r\nConnection-Private: 1\r\nProxy-Authorization: Basic eDp5\r\n'));
      const got = await client.read();
      assert.equal(got.first.status, 101, got.text);
      assert.equal(got.first.header('upgrade'), 'websocket');
      assert.match(got.first.header('connection') ?? '', /upgrade/i);
      assert.equal(got.first.header('sec-websocket-accept'), ACCEPT);
      assert.equal(got.first.header('x-from-upstream'), '1');
      const r = upstream.requests[before]!;
      assert.equal(r.method, 'GET');
      assert.equal(r.target, '/ws/echo');
      assert.equal(r.header('upgrade'), 'websocket');
      assert.equal(r.header('connection'), 'upgrade');
      assert.equal(r.header('sec-websocket-key'), KEY);
      assert.equal(r.header('x-request-id'), 'ws-1');
      assert.equal(r.header('x-forwarded-for'), '127.0.0.1');
      assert.equal(r.header('proxy-authorization'), undefined);
      const mark = client.bytes.length;
      await client.write('ping-1');
      assert.ok(await client.until(() => client.text(mark) === 'ping-1', 2000), client.text(mark));
      const metrics = (await request(gw.adminUrl + '/metrics')).text;
      assert.ok(metricValue(metrics, METRIC.requests, { route: 'ws', code: '101' }) >= 1);
    });
  });

  test('bytes sent right behind the handshake reach the upstream only after its 101', async () => {
    await withClient(port, async (client) => {
      await client.write(handshake('/ws/echo') + 'early-bytes');
      assert.ok(await client.until(() => client.text().endsWith('early-bytes'), 2000), client.text());
      assert.match(client.text(), /^HTTP\/1\.1 101 /);
    });
  });

  const refusals: { name: string; path: string; extra?: string; status: number; raw?: string }[] = [
    { name: 'upstream refuses (403): relayed, closed', path: '/ws/refuse', status: 403 },
    { name: 'upstream answers 426: relayed, closed', path: '/ws/426', status: 426 },
    { name: 'upstream refuses with a chunked body: relayed, closed', path: '/ws/chunked-refusal', status: 404 },
    { name: 'upstream never answers: 504', path: '/ws/hang', status: 504 },
    { name: 'upstream down: 502', path: '/dead/ws', status: 502 },
    { name: 'upstream switches to another protocol: 502', path: '/ws/wrong', status: 502 },
    { name: 'upstream 101 without Upgrade: 502', path: '/ws/noupgrade', status: 502 },
    { name: 'no route: 404', path: '/nowhere', status: 404 },
    { name: 'dot segments: 400', path: '/ws/../admin', status: 400 },
    { name: 'encoded slash: 400', path: '/ws%2fecho', status: 400 },
    { name: 'too many headers: 431', path: '/ws/echo', extra: Array.from({ length: 20 }, (_, i) => `X-${i}: v\r\n`).join(''), status: 431 },
    { name: 'two Host headers: 400', path: '/ws/echo', extra: 'Host: evil.test\r\n', status: 400 },
    { name: 'malformed Upgrade value: 400', path: '/ws/echo', raw: `GET /ws/echo HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: web socket\r\n\r\n`, status: 400 },
  ];
  for (const c of refusals) {
    test(`${c.name}; nothing sent after it is tunnelled`, async () => {
      const before = upstream.requests.length;
      const tunnelled = () => upstream.connections.reduce((n, conn) => n + (conn.tunnel?.length ?? 0), 0);
      const tunnelBefore = tunnelled();
      const smuggled = `GET /ws/smuggled HTTP/1.1\r\n${H}\r\n`;
      const got = await exchange(port, [c.raw ?? handshake(c.path, c.extra ?? ''), smuggled], { timeoutMs: 3000, settleMs: 200 });
      assert.equal(got.malformed, false, got.text);
      assert.equal(got.first.status, c.status, got.text);
      assert.ok(got.closed, 'the connection is closed after a failed upgrade');
      assert.equal(got.responses.length, 1, got.text);
      await sleep(20);
      assert.ok(!upstream.requests.slice(before).some((r) => r.target === '/ws/smuggled'), 'the bytes after a refused upgrade never reach the upstream');
      assert.equal(tunnelled(), tunnelBefore);
      if (c.status === 403) assert.equal(got.first.body.toString(), 'no way');
    });
  }

  test(`an Upgrade on POST with a body is ${perRequestUpgrade ? 'served as a plain request' : 'refused (400)'}`, async () => {
    const got = await exchange(port, `POST /ws/post HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello`, { settleMs: 100 });
    if (perRequestUpgrade) {
      assert.equal(got.first.status, 200, got.text);
      assert.equal(got.first.body.toString(), 'plain POST /ws/post upgrade=-');
    } else {
      assert.equal(got.first.status, 400, got.text);
      assert.ok(got.closed);
    }
  });

  test(`an Upgrade on HTTP/1.0 is ${perRequestUpgrade ? 'ignored' : 'refused (400)'}`, async () => {
    const got = await exchange(port, `GET /ws/old HTTP/1.0\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, { settleMs: 100 });
    assert.equal(got.first.status, perRequestUpgrade ? 200 : 400, got.text);
  });

  test('a client that resets during the handshake (reported): upstream request dropped, gateway serving', async () => {
    const conns = upstream.connections.length;
    const heads = upstream.heads;
    for (let i = 0; i < 20; i++) {
      const client = new RawClient(port);
      await client.connected;
      await client.write(handshake('/ws/hang'));
      if (i % 2 === 0) await upstream.waitForHeads(heads + i / 2 + 1).catch(() => undefined);
      client.resetNow();
    }
    const used = () => upstream.connections.slice(conns);
    const deadline = Date.now() + 3000;
    while (used().some((c) => !c.closed) && Date.now() < deadline) await sleep(10);
    assert.ok(used().every((c) => c.closed), 'upstream connections of reset handshakes are closed');
    assert.equal((await exchange(port, `GET /ws/plain HTTP/1.1\r\n${H}\r\n`)).first.status, 200);
  });

  test('a client that resets inside the tunnel: the upstream side is closed', async () => {
    const client = new RawClient(port);
    await client.connected;
    await client.write(handshake('/ws/echo'));
    assert.equal((await client.read()).first.status, 101);
    await client.write('reset-marker');
    await client.until(() => client.text().endsWith('reset-marker'), 1000);
    const conn = upstream.connections.find((c) => c.tunnel?.some((b) => b.toString().includes('reset-marker')))!;
    assert.ok(conn && !conn.closed);
    client.resetNow();
    const deadline = Date.now() + 2000;
    while (!conn.closed && Date.now() < deadline) await sleep(10);
    assert.ok(conn.closed);
  });

  test('an upstream that closes the tunnel closes the client connection', async () => {
    await withClient(port, async (client) => {
      await client.write(handshake('/ws/close'));
      assert.ok(await client.until(() => client.closed, 2000), 'client connection closed');
      assert.match(client.text(), /^HTTP\/1\.1 101 /);
    });
  });

  test('a tunnel idle for timeouts.websocketIdle is closed; traffic keeps it open', async () => {
    await withClient(port, async (client) => {
      await client.write(handshake('/ws/echo'));
      assert.equal((await client.read()).first.status, 101);
      const opened = Date.now();
      for (let i = 0; i < 6; i++) {
        await sleep(200);
        await client.write(`k${i}`);
      }
      assert.ok(!client.closed, `still open after ${Date.now() - opened} ms of traffic`);
      assert.ok(await client.until(() => client.text().endsWith('k5'), 1000));
      const quiet = Date.now();
      assert.ok(await client.until(() => client.closed, 3000), 'closed when idle');
      const idle = Date.now() - quiet;
      assert.ok(idle >= 400 && idle < 2500, `closed after ${idle} ms of silence (websocketIdle 500 ms)`);
    });
  });

  test('an open tunnel does not hold up a graceful shutdown', async () => {
    const serve = await spawnServeYaml(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { ws: ${upstream.url} }
timeouts: { drain: 20s }
routes:
  - { name: ws, backends: [{ upstream: ws }] }
`);
    try {
      await withClient(serve.port, async (client) => {
        await client.write(handshake('/ws/echo'));
        assert.equal((await client.read()).first.status, 101);
        const t = Date.now();
        const code = await Promise.race([serve.stop('SIGTERM'), sleep(5000).then(() => 'still running')]);
        assert.equal(code, 0);
        assert.ok(Date.now() - t < 4000, `exited after ${Date.now() - t} ms (drain limit 20 s)`);
        assert.ok(await client.until(() => client.closed, 1000), 'the tunnel was closed');
      });
    } finally {
      await serve.close();
    }
  });

  test('a real WebSocket client talks through the gateway', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/real/chat`);
    try {
      const message = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no message')), 3000);
        ws.onerror = (e) => reject(new Error(`websocket error: ${String((e as { message?: string }).message ?? e)}`));
        ws.onopen = () => ws.send('hello');
        ws.onmessage = (e) => {
          clearTimeout(timer);
          resolve(String(e.data));
        };
      });
      assert.equal(message, 'echo: hello');
    } finally {
      ws.close();
    }
  });
});
