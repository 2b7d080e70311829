/**
 * A bounded, seeded fuzz run against the real `gatewayctl serve` process:
 * valid requests mutated byte by byte and line by line, sent over raw
 * sockets. Whatever comes in, every answer is well-formed HTTP and never a
 * 500, everything the upstream receives is well-framed and clean, metric
 * series stay bounded, and afterwards the process is alive and serving.
 * A second dimension fuzzes `Connection` tokens over every method and
 * framing, with bodies that are themselves requests: exactly one upstream
 * request per client request, never the body as a request of its own.
 * Set FUZZ_SEED to replay another run, FUZZ_CASES for a longer one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawnServeYaml } from '../helpers/cli.js';
import { request, runConcurrently } from '../helpers/http.js';
import { ok, prng, RawClient, startCapture, type CaptureUpstream, type RawResult } from '../helpers/raw.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20240611);
const CASES = Number(process.env['FUZZ_CASES'] ?? 2000);

const seeds = [
  'GET /app/items?id=1 HTTP/1.1\r\nHost: gw.test\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n',
  'POST /app/orders HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"qty": 1234}',
  'PUT /app/blob HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
  'GET /app/a HTTP/1.1\r\nHost: gw.test\r\n\r\nGET /app/b HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n',
  'POST /app/expect HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody',
  'GET /app/ws HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'GET http://gw.test/app/abs HTTP/1.1\r\nHost: other.test\r\n\r\n',
  'DELETE /app/x/../y HTTP/1.0\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\nKeep-Alive: 5\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: gw.test\r\n\r\n',
  'HEAD /app/%2e%2E/%7e HTTP/1.1\r\nHost: gw.test\r\nTE: trailers\r\nTrailer: X-T\r\n\r\n',
];

const specials = ['\r', '\n', '\r\n', ' ', '\t', ':', ',', ';', '\x00', '\x0b', '\x7f', '\xff', '0', '9', 'a', '%', '/', '.', '\\', '"', '?', '#', '@', '-1', 'chunked', 'Content-Length: 5\r\n', 'Transfer-Encoding: chunked\r\n', 'Host: evil.test\r\n', 'Connection: content-length\r\n', 'Connection: transfer-encoding, host\r\n'];

type Random = ReturnType<typeof prng>;

/** One mutation of a request, chosen at random. */
function mutate(input: string, random: Random): string {
  const at = () => random.next(input.length + 1);
  switch (random.next(9)) {
    case 0: {
      const i = at();
      return input.slice(0, i) + String.fromCharCode(random.next(256)) + input.slice(i + 1);
    }
    case 1: {
      const i = at();
      return input.slice(0, i) + random.pick(specials) + input.slice(i);
    }
    case 2: {
      const i = at();
      return input.slice(0, i) + input.slice(i + 1 + random.next(8));
    }
    case 3: {
      const lines = input.split('\r\n');
      const i = 1 + random.next(Math.max(1, lines.length - 2));
      lines.splice(i, 0, ...Array.from({ length: 1 + random.next(3) }, () => lines[i] ?? ''));
      return lines.join('\r\n');
    }
    case 4: {
      const lines = input.split('\r\n');
      const i = 1 + random.next(Math.max(1, lines.length - 2));
      lines[i] = (lines[i] ?? '').toUpperCase();
      return lines.join('\r\n');
    }
    case 5:
      return input.slice(0, at());
    case 6: {
      const i = at();
      return input.slice(0, i) + 'x'.repeat(random.next(3) === 0 ? 20_000 : 300) + input.slice(i);
    }
    case 7: {
      const lines = input.split('\r\n');
      const i = 1 + random.next(Math.max(1, lines.length - 2));
      lines.splice(i, 0, `X-${random.next(1000)}${random.pick(specials)}: ${random.pick(specials)}v`);
      return lines.join('\r\n');
    }
    default:
      return input.replace(/\r\n/g, random.next(2) === 0 ? '\n' : '\r\n ');
  }
}

const ALLOWED = new Set([100, 101, 200, 400, 404, 405, 408, 413, 417, 431, 505]);
const HOP_BY_HOP = ['keep-alive', 'te', 'trailer', 'proxy-connection', 'proxy-authorization', 'x-shadow-request', 'expect'];

describe('fuzzing the request parser and screening', () => {
  let upstream: CaptureUpstream;
  let serve: Awaited<ReturnType<typeof spawnServeYaml>>;
  before(async () => {
    // A HEAD answer has no body: a canned one would desynchronize the connection.
    upstream = await startCapture((req) => ok(req.method === 'HEAD' ? '' : `${req.method} ${req.target} ${req.body.length}`));
    serve = await spawnServeYaml(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { cap: ${upstream.url} }
limits: { maxBodyBytes: 64kb, maxHeaderCount: 50 }
timeouts: { header: 1s, body: 1s, idle: 2s, upstream: 2s, websocketIdle: 1s }
routes:
  - { name: app, match: { prefix: /app }, backends: [{ upstream: cap }] }
`);
  });
  after(async () => {
    await serve.close();
    await upstream.close();
  });

  test(`${CASES} mutated requests (seed ${SEED}): well-formed answers, clean upstream traffic, the process alive`, async (t) => {
    const random = prng(SEED);
    const inputs = Array.from({ length: CASES }, () => {
      let text = random.pick(seeds);
      for (let n = 1 + random.next(3); n > 0; n--) text = mutate(text, random);
      // Sometimes in pieces, to cross packet boundaries.
      const cut = random.next(3) === 0 ? 1 + random.next(Math.max(1, text.length - 1)) : 0;
      return { text, cut };
    });
    const statuses = new Map<number, number>();
    const problems: string[] = [];
    const send = async ({ text, cut }: { text: string; cut: number }): Promise<RawResult> => {
      const client = new RawClient(serve.port);
      try {
        await client.connected;
        if (cut > 0) await client.write(text.slice(0, cut), { delayMs: 5 }, text.slice(cut));
        else await client.write(text);
        // Wait briefly for an answer, then half-close so an incomplete
        // request ends instead of waiting for the header timeout.
        let got = await client.read({ responses: 1, timeoutMs: 250, settleMs: 10 });
        if (got.responses.length === 0 && !got.closed) {
          client.socket.end();
          got = await client.read({ responses: 1, timeoutMs: 1500, settleMs: 10 });
        }
        return got;
      } finally {
        client.close();
      }
    };
    await runConcurrently(inputs.length, 24, async (i) => {
      const got = await send(inputs[i]!);
      if (got.malformed) problems.push(`#${i} malformed answer ${JSON.stringify(got.text.slice(0, 200))} to ${JSON.stringify(inputs[i]!.text.slice(0, 200))}`);
      for (const r of got.responses) {
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (!ALLOWED.has(r.status)) problems.push(`#${i} status ${r.status} for ${JSON.stringify(inputs[i]!.text.slice(0, 200))}: ${got.text.slice(0, 300)}`);
      }
    });
    const summary = [...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(' ');
    assert.deepEqual(problems, [], summary);
    assert.ok((statuses.get(200) ?? 0) > 20 && (statuses.get(400) ?? 0) > 100, `a useful mix of outcomes: ${summary}`);

    // The upstream only ever got well-framed, clean requests.
    assert.deepEqual(upstream.unparsable, []);
    for (const r of upstream.requests) {
      assert.equal(r.version, 'HTTP/1.1', r.head);
      assert.equal(r.headerAll('host').length, 1, r.head);
      assert.ok(r.target.startsWith('/app'), r.head);
      assert.ok(!r.target.split('?')[0]!.split('/').some((s) => s === '.' || s === '..'), r.head);
      for (const name of HOP_BY_HOP) assert.equal(r.header(name), undefined, `${name} in ${r.head}`);
      // Upgrade only on a real upgrade, which the gateway itself states.
      if (r.header('upgrade') !== undefined) assert.equal(r.header('connection'), 'upgrade', r.head);
      else assert.equal(r.header('connection'), 'keep-alive', r.head);
    }

    // Metric series depend on the config, never on what clients sent.
    const metrics = (await request(serve.adminUrl + '/metrics')).text;
    const series = metrics.split('\n').filter((l) => l.startsWith('gatewayctl_requests_total{'));
    assert.ok(series.length <= 16, series.join('\n'));
    assert.ok(!/evil|fuzz|xxxx/i.test(metrics.split('\n').filter((l) => l.startsWith('gatewayctl_')).join('\n')));

    // Alive and serving.
    assert.equal(serve.child.exitCode, null);
    assert.equal((await request(`${serve.url}/app/after-fuzz`)).text, 'GET /app/after-fuzz 0');
    assert.equal((await request(serve.adminUrl + '/healthz')).status, 200);
    t.diagnostic(`statuses: ${summary}; upstream requests: ${upstream.requests.length}`);
  });

  test(`${Math.ceil(CASES / 4)} requests with fuzzed Connection tokens (seed ${SEED}): one upstream request per client request`, async () => {
    const random = prng(SEED + 1);
    const tokens = ['content-length', 'Content-Length', 'transfer-encoding', 'TRANSFER-ENCODING', 'host', 'Host', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-request-id', 'x-shadow-request', 'forwarded', 'x-real-ip', 'keep-alive', 'close', 'te', 'trailer', 'upgrade', 'expect', 'x-a', ''];
    const separators = [',', ', ', ' ,', ',,', ' , '];
    const methods = ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST', 'PUT', 'PATCH'];
    const count = Math.ceil(CASES / 4);
    const cases = Array.from({ length: count }, (_, i) => {
      const method = random.pick(methods);
      const inner = `${random.pick(['GET', 'POST', 'DELETE'])} /app/smuggled-${i} HTTP/1.1\r\nHost: internal\r\n${random.next(2) ? 'Content-Length: 0\r\n' : ''}\r\n`;
      const connectionLines = Array.from({ length: 1 + random.next(2) }, () =>
        `${random.pick(['Connection', 'connection', 'CONNECTION'])}: ${Array.from({ length: 1 + random.next(4) }, () => random.pick(tokens)).join(random.pick(separators))}\r\n`,
      ).join('');
      const framing = random.next(3);
      const framed =
        framing === 0
          ? `Content-Length: ${inner.length}\r\n\r\n${inner}`
          : framing === 1
            ? `Transfer-Encoding: chunked\r\n\r\n${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`
            : '\r\n';
      const host = random.next(4) === 0 ? '' : 'Host: gw.test\r\n';
      return { method, framed: framing !== 2, text: `${method} /app/conn/${i} HTTP/1.1\r\n${host}${connectionLines}${framed}` };
    });
    const answered = new Map<number, number>();
    const problems: string[] = [];
    const before = upstream.requests.length;
    await runConcurrently(count, 24, async (i) => {
      const c = cases[i]!;
      const client = new RawClient(serve.port);
      try {
        await client.connected;
        await client.write(c.text);
        const got = await client.read({ responses: 1, timeoutMs: 2000, settleMs: 10, headRequests: c.method === 'HEAD' ? new Set([0]) : new Set() });
        if (got.malformed || got.responses.length === 0) problems.push(`#${i} no well-formed answer: ${JSON.stringify(got.text.slice(0, 200))} to ${JSON.stringify(c.text)}`);
        else answered.set(i, got.first.status);
      } finally {
        client.close();
      }
    });
    // Connections to the upstream are pooled: a smuggled request would show as an extra one.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const received = upstream.requests.slice(before);
    const perCase = new Map<string, number>();
    for (const r of received) perCase.set(r.target, (perCase.get(r.target) ?? 0) + 1);
    for (const [target, times] of perCase) if (times !== 1) problems.push(`${target} reached the upstream ${times} times`);
    for (const target of upstream.headTargets) if (target.includes('smuggled')) problems.push(`smuggled request reached the upstream: ${target}`);
    const ok200 = [...answered.values()].filter((s) => s === 200).length;
    assert.deepEqual(problems, []);
    assert.deepEqual(upstream.unparsable, []);
    assert.equal(received.length, ok200, 'one upstream request per 200 answer');
    assert.ok(ok200 > count / 2, `most were served: ${ok200} of ${count}`);
    for (const r of received) {
      const i = Number(r.target.split('/').pop());
      const c = cases[i]!;
      assert.equal(r.method, c.method, r.head);
      assert.deepEqual(r.headerAll('host'), ['gw.test'], r.head);
      assert.equal(r.header('x-forwarded-for'), '127.0.0.1', r.head);
      if (c.framed) assert.ok(r.body.toString('latin1').includes(`/app/smuggled-${i}`), r.head);
    }
  });
});
