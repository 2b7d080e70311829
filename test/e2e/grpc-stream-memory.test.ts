/**
 * A long bidi gRPC call mirrored with `shadow[].streaming: true` to a shadow
 * that never reads: the real `serve` process, a grpc-js client and server.
 * The call carries many times limits.shadowBodyBytes and never ends by
 * itself (the client cancels it): the copy is cut at the bound and counted,
 * the user's call goes on whole, and the gateway's memory stays far below
 * what the call carried. A copy whose queue would pass the in-flight byte
 * budget is cancelled the same way, as dropped.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { bidi, startEchoServer, startStuckH2Server, EchoClient, type EchoReply, type EchoServer } from '../helpers/grpc.js';
import { spawnServeYaml } from '../helpers/cli.js';
import { startGateway } from '../helpers/gateway.js';
import { metricValue } from '../helpers/metrics.js';
import { METRIC } from '../../src/metrics/names.js';

const MB = 1024 * 1024;

/** A gateway config: every Echo call to `primary`, mirrored streaming calls and all to the stuck shadow. */
const mirroredEcho = (primary: EchoServer, stuckPort: number, limits: string) => `
listen: { address: 127.0.0.1:0, h2c: true }
admin: 127.0.0.1:0
limits: { ${limits} }
upstreams:
  primary: { url: ${primary.url}, protocol: h2c }
  stuck: { url: http://127.0.0.1:${stuckPort}, protocol: h2c }
routes:
  - name: echo
    match: { prefix: /test.Echo/, grpc: true }
    backends: [{ upstream: primary }]
    shadow: [{ upstream: stuck, methods: [POST], streaming: true }]
`;

describe('a long mirrored bidi call to a shadow that never reads', () => {
  let primary: EchoServer;
  let stuck: Awaited<ReturnType<typeof startStuckH2Server>>;
  let serve: Awaited<ReturnType<typeof spawnServeYaml>>;
  let client: grpc.Client;

  before(async () => {
    primary = await startEchoServer('primary');
    stuck = await startStuckH2Server();
    // Default shadow limits: shadowBodyBytes 1mb, shadowInflightBytes 32mb. The call's own bytes may run long.
    serve = await spawnServeYaml(mirroredEcho(primary, stuck.port, 'maxBodyBytes: 1gb'));
    client = new EchoClient(`127.0.0.1:${serve.port}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await serve?.close();
    await primary?.close();
    await stuck?.close();
  });

  test('192 MB through the call: the copy is cut at 1 MB, every answer is the primary’s, memory stays bounded', async (t) => {
    const metrics = async () => (await fetch(serve.adminUrl + '/metrics')).text();
    const rssBefore = metricValue(await metrics(), 'process_resident_memory_bytes');
    let rssPeak = rssBefore;
    const text = 'x'.repeat(16 * 1024);
    const total = 12_288; // 192 MB of requests, as much again in answers
    const window = 16;
    const call = bidi(client);
    let sent = 0;
    let received = 0;
    let wrong = 0;
    const done = new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`only ${received} of ${total} answers in time`)), 120_000);
      call.on('data', (reply: EchoReply) => {
        if (reply.server !== 'primary' || reply.text !== text || reply.index !== received) wrong++;
        received++;
        if (received === total) {
          clearTimeout(deadline);
          resolve();
        } else if (sent < total) {
          call.write({ text });
          sent++;
        }
      });
      call.on('error', (err: grpc.ServiceError) => {
        clearTimeout(deadline);
        if (err.code !== grpc.status.CANCELLED) reject(err);
      });
    });
    for (; sent < window; sent++) call.write({ text });
    const sampler = setInterval(() => {
      void metrics().then((m) => (rssPeak = Math.max(rssPeak, metricValue(m, 'process_resident_memory_bytes'))), () => undefined);
    }, 200);
    try {
      await done;
    } finally {
      clearInterval(sampler);
    }
    // The call never ends by itself: the user cancels it.
    call.cancel();
    const m = await metrics();
    rssPeak = Math.max(rssPeak, metricValue(m, 'process_resident_memory_bytes'));
    const skipped = metricValue(m, METRIC.shadowRequests, { route: 'echo', outcome: 'skipped' });
    t.diagnostic(`RSS ${(rssBefore / MB).toFixed(0)} MB before, peak ${(rssPeak / MB).toFixed(0)} MB, over ${(total * text.length) / MB} MB carried each way`);
    assert.equal(wrong, 0, "every answer is the primary's, in order");
    assert.equal(skipped, 1, 'the copy was cut at limits.shadowBodyBytes, and counted');
    assert.deepEqual(stuck.resets, [http2.constants.NGHTTP2_CANCEL]);
    assert.equal(metricValue(m, METRIC.shadowInflight), 0);
    // Relaying alone grows RSS by about 40-55 MB whatever the call's length (32 to 256 MB measured);
    // a copy holding the call's bytes would add the 192 MB it carried.
    assert.ok(rssPeak - rssBefore < 128 * MB, `RSS grew ${((rssPeak - rssBefore) / MB).toFixed(0)} MB`);
  });
});

describe('a mirrored stream past the in-flight byte budget', () => {
  test('the copy is cancelled and counted as dropped; the user call goes on whole', async () => {
    const primary = await startEchoServer('primary');
    const stuck = await startStuckH2Server();
    // The copy's queue passes the budget long before the request passes shadowBodyBytes.
    const gw = await startGateway(mirroredEcho(primary, stuck.port, 'shadowInflightBytes: 32kb, shadowBodyBytes: 10mb'));
    const client = new EchoClient(`127.0.0.1:${gw.port}`, grpc.credentials.createInsecure());
    try {
      const text = 'y'.repeat(4096);
      const call = bidi(client);
      const answers: EchoReply[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (reply: EchoReply) => {
          answers.push(reply);
          if (answers.length < 100) call.write({ text });
          else call.end();
        });
        call.on('error', reject);
        call.on('end', resolve);
      });
      call.write({ text });
      await done;
      assert.ok(answers.length === 100 && answers.every((a, i) => a.server === 'primary' && a.index === i && a.text === text));
      const m = await (await fetch(gw.adminUrl + '/metrics')).text();
      assert.equal(metricValue(m, METRIC.shadowRequests, { route: 'echo', outcome: 'dropped' }), 1);
      assert.equal(metricValue(m, METRIC.shadowRequests, { route: 'echo', outcome: 'skipped' }), 0);
      assert.equal(metricValue(m, METRIC.shadowInflight), 0);
    } finally {
      client.close();
      await gw.close();
      await primary.close();
      await stuck.close();
    }
  });
});
