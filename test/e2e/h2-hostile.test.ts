/**
 * Hostile HTTP/2 clients, on raw frames written by hand: each gets the
 * HTTP/2 error it deserves, the process stays up and serves the next
 * client, and its memory stays bounded.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { ErrorCode, Flags, frame, FrameType, indexedHeader, plainHeader, rawH2, requestBlock, rstStream } from '../helpers/h2-frames.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

describe('hostile HTTP/2 clients', () => {
  let app: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    app = await startUpstream('app');
    gw = await startGateway(`
listen: { address: 127.0.0.1:0, h2c: true }
admin: 127.0.0.1:0
limits: { h2MaxConcurrentStreams: 50, h2MaxResetsPerSecond: 50 }
# After a connection error of its own, nghttp2 stops reading: such connections end when idle (serving/h2.ts).
timeouts: { idle: 2s }
upstreams:
  app: ${app.url}
routes:
  - name: app
    backends: [{ upstream: app }]
`);
  });
  after(async () => {
    await gw.close();
    await app.close();
  });

  /** A well-behaved HTTP/2 client still gets its answer. */
  async function stillServes(): Promise<void> {
    const session = http2.connect(`http://127.0.0.1:${gw.port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/after' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
      });
      assert.equal(status, 200);
    } finally {
      session.close();
    }
  }

  test('rapid reset (CVE-2023-44487): the connection ends with ENHANCE_YOUR_CALM, few requests reach the upstream', async () => {
    const heapBefore = process.memoryUsage().heapUsed;
    const client = await rawH2(gw.port);
    const before = app.received.length;
    const block = requestBlock('localhost');
    const streams = 20_000;
    for (let i = 0; i < streams && !client.closed; i++) {
      const id = 1 + 2 * i;
      client.write(Buffer.concat([frame(FrameType.HEADERS, Flags.END_HEADERS | Flags.END_STREAM, id, block), rstStream(id, ErrorCode.CANCEL)]));
      if (i % 500 === 499) await new Promise((r) => setImmediate(r));
    }
    const goaway = await client.waitFor((f) => f.type === FrameType.GOAWAY);
    assert.ok(goaway, 'a GOAWAY before the connection closed');
    assert.equal(client.goaway()?.code, ErrorCode.ENHANCE_YOUR_CALM);
    client.close();
    const reached = app.received.length - before;
    assert.ok(reached < streams / 4, `${reached} of ${streams} reset streams reached the upstream`);
    await stillServes();
    assert.ok(process.memoryUsage().heapUsed - heapBefore < 100 * 1024 * 1024, 'heap grew by less than 100 MB');
  });

  test('a CONTINUATION flood ends the connection with a GOAWAY', async () => {
    const client = await rawH2(gw.port);
    client.write(frame(FrameType.HEADERS, 0, 1, requestBlock('localhost')));
    let sent = 0;
    for (; sent < 10_000 && !client.closed; sent++) {
      client.write(frame(FrameType.CONTINUATION, 0, 1, plainHeader(`x-flood-${sent % 100}`, 'y'.repeat(100))));
      if (sent % 200 === 199) await new Promise((r) => setImmediate(r));
    }
    const goaway = await client.waitFor((f) => f.type === FrameType.GOAWAY);
    assert.ok(goaway || client.closed, 'the connection was ended');
    assert.ok(sent < 10_000 || client.goaway(), 'ended before the flood was over');
    client.close();
    await stillServes();
  });

  test('HPACK table abuse: a header list that decodes past maxHeaderBytes is refused, the connection serves on', async () => {
    const client = await rawH2(gw.port);
    // One 4000-byte entry in the dynamic table, then referenced 100 times: 400 kB decoded from 100 bytes.
    const bomb = Buffer.concat([requestBlock('localhost'), indexedHeader('x-bomb', 'b'.repeat(4000)), Buffer.alloc(100, 0xbe)]);
    client.write(frame(FrameType.HEADERS, Flags.END_HEADERS | Flags.END_STREAM, 1, bomb));
    const refused = await client.waitFor((f) => (f.type === FrameType.RST_STREAM && f.stream === 1) || f.type === FrameType.GOAWAY || (f.type === FrameType.HEADERS && f.stream === 1));
    assert.ok(refused, 'an answer to the bomb');
    // Refused at the HTTP/2 layer (431, RST_STREAM or GOAWAY), never forwarded.
    if (refused.type === FrameType.HEADERS) {
      // Answered by the HTTP/2 layer itself: 431 (":status" literal, "431"), never the upstream's answer.
      assert.equal(refused.payload.subarray(0, 5).toString('latin1'), '\x48\x03431');
    }
    assert.equal(app.received.filter((r) => r.headers['x-bomb'] !== undefined).length, 0, 'the bomb never reached the upstream');
    // A table size update above what the gateway allows is a COMPRESSION_ERROR.
    const other = await rawH2(gw.port);
    other.write(frame(FrameType.HEADERS, Flags.END_HEADERS | Flags.END_STREAM, 1, Buffer.concat([Buffer.from([0x3f, 0xe1, 0xff, 0x03]), requestBlock('localhost')])));
    await other.waitFor((f) => f.type === FrameType.GOAWAY);
    assert.equal(other.goaway()?.code, ErrorCode.COMPRESSION_ERROR);
    client.close();
    other.close();
    await stillServes();
  });

  test('a frame over SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR', async () => {
    const client = await rawH2(gw.port);
    client.write(frame(FrameType.HEADERS, Flags.END_HEADERS, 1, requestBlock('localhost', { post: true })));
    client.write(frame(FrameType.DATA, 0, 1, Buffer.alloc(20_000, 0x61)));
    await client.waitFor((f) => f.type === FrameType.GOAWAY);
    assert.equal(client.goaway()?.code, ErrorCode.FRAME_SIZE_ERROR);
    client.close();
    await stillServes();
  });

  test('a client that opens more streams than h2MaxConcurrentStreams loses its connection; no extra stream is served', async () => {
    const client = await rawH2(gw.port);
    await client.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flags.ACK) === 0);
    // Open streams (POST, body never sent) and keep them open, far past the advertised 50.
    for (let i = 0; i < 400 && !client.closed; i++) {
      client.write(frame(FrameType.HEADERS, Flags.END_HEADERS, 1 + 2 * i, requestBlock('localhost', { post: true })));
    }
    // nghttp2 treats a stream over the acknowledged limit as a connection error: GOAWAY.
    assert.ok(await client.waitFor((f) => f.type === FrameType.GOAWAY), 'GOAWAY');
    const goaway = client.frames.find((f) => f.type === FrameType.GOAWAY)!;
    const lastStream = goaway.payload.readUInt32BE(0) & 0x7fffffff;
    assert.ok(lastStream <= 2 * 50 - 1, `last stream processed ${lastStream}: none beyond the limit`);
    client.close();
    await stillServes();
  });
});
