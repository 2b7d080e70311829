/**
 * gRPC through the gateway with @grpc/grpc-js on both ends, over h2c and
 * over TLS (h2 by ALPN): every call kind, deadlines, cancellation, an
 * upstream that is down, large messages, a canary split with a sticky
 * metadata key, and the grpc_code metric.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { bidi, clientStream, collect, EchoClient, serverStream, startEchoServer, unary, type EchoReply, type EchoServer } from '../helpers/grpc.js';
import { fixture, pem } from '../helpers/tls.js';

const config = (upstreams: string, routes: string, extra = '') => `
listen: { address: 127.0.0.1:0, h2c: true }
admin: 127.0.0.1:0
${extra}
upstreams:
${upstreams}
routes:
${routes}
`;

const echoRoute = `  - name: echo
    match: { prefix: /test.Echo, grpc: true }
    backends: [{ upstream: v1 }]`;

async function metrics(gw: TestGateway): Promise<string> {
  return (await fetch(gw.adminUrl + '/metrics')).text();
}

describe('gRPC over h2c', () => {
  let v1: EchoServer;
  let gw: TestGateway;
  let client: grpc.Client;
  before(async () => {
    v1 = await startEchoServer('v1');
    gw = await startGateway(config(`  v1: { url: ${v1.url}, protocol: h2c }`, echoRoute));
    client = new EchoClient(`127.0.0.1:${gw.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await gw.close();
    await v1.close();
  });

  test('a unary call passes, metadata and all', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('x-user', 'alice');
    const reply = await unary(client, { text: 'hello' }, { metadata });
    assert.deepEqual(reply, { text: 'hello', server: 'v1' });
    assert.equal(v1.lastMetadata?.get('x-user')[0], 'alice');
    // The gateway's own request id reaches the upstream as metadata.
    assert.ok(v1.lastMetadata?.get('x-request-id')[0]);
  });

  test("an upstream's gRPC error reaches the client with its status and message", async () => {
    await assert.rejects(unary(client, { text: 'fail' }), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.NOT_FOUND);
      assert.equal(err.details, 'no such thing');
      return true;
    });
  });

  test('server streaming delivers every message in order', async () => {
    const replies = await collect<EchoReply>(serverStream(client, { text: 's', count: 50 }));
    assert.deepEqual(
      replies.map((r) => r.index),
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  test('client streaming and bidi pass message by message', async () => {
    const joined = await clientStream(client, [{ text: 'a' }, { text: 'b' }, { text: 'c' }]);
    assert.equal(joined.text, 'a,b,c');
    const call = bidi(client);
    const answers: EchoReply[] = [];
    // Each answer comes back before the next message is sent: a true conversation, not a buffered batch.
    for (const text of ['one', 'two', 'three']) {
      const answered = new Promise<EchoReply>((resolve) => call.once('data', resolve));
      call.write({ text });
      answers.push(await answered);
    }
    call.end();
    await new Promise((resolve) => call.on('status', resolve));
    assert.deepEqual(
      answers.map((a) => a.text),
      ['one', 'two', 'three'],
    );
  });

  test('large messages pass both ways', async () => {
    const reply = await unary(client, { text: 'x'.repeat(1024 * 1024), pad: 3 * 1024 * 1024 - 64 * 1024 });
    assert.equal(reply.text.length, 1024 * 1024);
    assert.equal(reply.pad?.length, 3 * 1024 * 1024 - 64 * 1024);
  });

  test('a call past its deadline ends DEADLINE_EXCEEDED, and the upstream hears the cancel', async () => {
    const cancelledBefore = v1.cancelled;
    await assert.rejects(unary(client, { text: 'slow', delayMs: 2000 }, { deadlineMs: 300 }), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
      return true;
    });
    await waitFor(() => v1.cancelled > cancelledBefore);
  });

  test('a cancelled server stream cancels the upstream call', async () => {
    const cancelledBefore = v1.cancelled;
    const call = serverStream(client, { text: 'long', count: 1000, delayMs: 20 });
    await new Promise((resolve) => call.once('data', resolve));
    call.on('error', () => undefined);
    call.cancel();
    await waitFor(() => v1.cancelled > cancelledBefore);
  });

  test('metrics count calls by grpc_code', async () => {
    const text = await metrics(gw);
    assert.match(text, /gatewayctl_grpc_requests_total\{route="echo",upstream="v1",grpc_code="OK"\} [1-9]/);
    assert.match(text, /gatewayctl_grpc_requests_total\{route="echo",upstream="v1",grpc_code="NotFound"\} 1/);
  });
});

describe('gRPC failures the gateway tells', () => {
  test('an upstream that is down gives UNAVAILABLE; a slow one past grpc-timeout DEADLINE_EXCEEDED', async () => {
    const slow = await startEchoServer('slow');
    const gw = await startGateway(
      config(
        `  down: { url: http://127.0.0.1:1, protocol: h2c }\n  slow: { url: ${slow.url}, protocol: h2c, timeout: 10s }`,
        `  - name: down\n    match: { prefix: /test.Echo/Unary, headers: { x-target: down } }\n    backends: [{ upstream: down }]\n  - name: slow\n    match: { prefix: /test.Echo }\n    backends: [{ upstream: slow }]`,
      ),
    );
    const client = new EchoClient(`127.0.0.1:${gw.port}`, grpc.credentials.createInsecure());
    try {
      const metadata = new grpc.Metadata();
      metadata.set('x-target', 'down');
      await assert.rejects(unary(client, { text: 'x' }, { metadata }), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNAVAILABLE);
        return true;
      });
      // The client's deadline travels as grpc-timeout; the gateway enforces it too.
      await assert.rejects(unary(client, { text: 'x', delayMs: 3000 }, { deadlineMs: 400 }), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
        return true;
      });
      const text = await metrics(gw);
      assert.match(text, /gatewayctl_grpc_requests_total\{route="down",upstream="down",grpc_code="Unavailable"\} 1/);
      assert.match(text, /gatewayctl_upstream_errors_total\{route="down",upstream="down",reason="connect"\} 1/);
    } finally {
      client.close();
      await gw.close();
      await slow.close();
    }
  });
});

describe('gRPC canary with a sticky metadata key', () => {
  test('weights split calls; one key stays on one backend', async () => {
    const v1 = await startEchoServer('v1');
    const v2 = await startEchoServer('v2');
    const gw = await startGateway(
      config(
        `  v1: { url: ${v1.url}, protocol: h2c }\n  v2: { url: ${v2.url}, protocol: h2c }`,
        `  - name: echo\n    match: { prefix: /test.Echo, grpc: true }\n    backends: [{ upstream: v1, weight: 50 }, { upstream: v2, weight: 50 }]\n    sticky: { header: x-user }`,
      ),
    );
    const client = new EchoClient(`127.0.0.1:${gw.port}`, grpc.credentials.createInsecure());
    try {
      const servers = new Map<string, Set<string>>();
      for (let user = 0; user < 40; user++) {
        for (let i = 0; i < 3; i++) {
          const metadata = new grpc.Metadata();
          metadata.set('x-user', `user-${user}`);
          const reply = await unary(client, { text: 'x' }, { metadata });
          const set = servers.get(`user-${user}`) ?? new Set();
          set.add(reply.server);
          servers.set(`user-${user}`, set);
        }
      }
      for (const [user, set] of servers) assert.equal(set.size, 1, `${user} moved between backends`);
      const onV2 = [...servers.values()].filter((s) => s.has('v2')).length;
      // 40 keys at 50%: both backends get some (the chance of all on one is 2^-39).
      assert.ok(onV2 > 0 && onV2 < 40, `${onV2} of 40 keys on v2`);
    } finally {
      client.close();
      await gw.close();
      await v1.close();
      await v2.close();
    }
  });
});

describe('gRPC over TLS (h2 by ALPN)', () => {
  test('unary and server streaming through an HTTPS listener, to a TLS h2 upstream', async () => {
    const upstream = await startEchoServer('tls-upstream', { cert: pem('localhost.pem'), key: pem('localhost.key') });
    const gw = await startGateway(
      `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
tls:
  cert: ${fixture('example.pem')}
  key: ${fixture('example.key')}
upstreams:
  v1: { url: https://127.0.0.1:${upstream.port}, protocol: h2, tls: { ca: ${fixture('ca.pem')} } }
routes:
${echoRoute}
`,
    );
    const credentials = grpc.credentials.createSsl(Buffer.from(pem('ca.pem')));
    const client = new EchoClient(`127.0.0.1:${gw.port}`, credentials, { 'grpc.ssl_target_name_override': 'shop.example.com', 'grpc.default_authority': 'shop.example.com' });
    try {
      assert.deepEqual(await unary(client, { text: 'secure' }), { text: 'secure', server: 'tls-upstream' });
      const replies = await collect<EchoReply>(serverStream(client, { text: 's', count: 5 }));
      assert.equal(replies.length, 5);
    } finally {
      client.close();
      await gw.close();
      await upstream.close();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
