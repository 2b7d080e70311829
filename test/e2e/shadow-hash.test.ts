/**
 * Answers past diff.maxBodyBytes are compared by length and the SHA-256 of
 * the whole body. The primary's is computed on the shadow thread that
 * compares the pair, from pieces the serving thread copies over: these
 * tests hold it to the real digest, whatever the answer's framing and
 * however it is cut into pieces.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import type { DiffEvent } from '../../src/diff/types.js';
import { HASH_PIECE_BYTES } from '../../src/shadow/compare-pool.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { openSse } from '../helpers/sse.js';
import { startUpstream, type TestUpstream, type UpstreamHandler } from '../helpers/upstream.js';

/** Two and a half pieces: the last piece is partial. */
const SIZE = Math.floor(HASH_PIECE_BYTES * 2.5);
const body = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) body[i] = (i * 7919) % 251;
const altered = Buffer.from(body);
altered[SIZE - 1] = (altered[SIZE - 1]! + 1) % 256;
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** `declared`: with Content-Length; otherwise chunked, in writes of odd sizes. */
const answer =
  (bytes: Buffer, declared: boolean): UpstreamHandler =>
  async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', ...(declared ? { 'content-length': String(bytes.length) } : {}) });
    if (declared) return void res.end(bytes);
    for (let at = 0; at < bytes.length; at += 100_003) {
      res.write(bytes.subarray(at, at + 100_003));
      await new Promise((resolve) => setImmediate(resolve));
    }
    res.end();
  };

describe('the primary answer past diff.maxBodyBytes, hashed on a shadow thread', () => {
  const upstreams: TestUpstream[] = [];
  let gw: TestGateway;

  before(async () => {
    const [primary, primaryChunked, twin, twinChunked, other] = await Promise.all([
      startUpstream('primary', answer(body, true)),
      startUpstream('primary-chunked', answer(body, false)),
      startUpstream('twin', answer(body, true)),
      startUpstream('twin-chunked', answer(body, false)),
      startUpstream('other', answer(altered, true)),
    ]);
    upstreams.push(primary, primaryChunked, twin, twinChunked, other);
    // Every copy is sent: the counts below are exact, and this process's loop
    // (upstreams, client and gateway in one) can pass the shedding threshold
    // on a slower machine, which sent one copy of three to /differs in CI.
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
limits: { shadowShedAbove: 1 }
upstreams:
  primary: ${primary.url}
  primary-chunked: ${primaryChunked.url}
  twin: ${twin.url}
  twin-chunked: ${twinChunked.url}
  other: ${other.url}
routes:
  - { name: same, match: { prefix: /same }, backends: [{ upstream: primary }], shadow: [{ upstream: twin-chunked }], diff: { maxBodyBytes: 64kb } }
  - { name: same-chunked, match: { prefix: /chunked }, backends: [{ upstream: primary-chunked }], shadow: [{ upstream: twin }], diff: { maxBodyBytes: 64kb } }
  - { name: differs, match: { prefix: /differs }, backends: [{ upstream: primary-chunked }], shadow: [{ upstream: other }], diff: { maxBodyBytes: 64kb } }
`);
  });

  after(async () => {
    await gw.close();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  test('equal bodies match, declared or chunked, and a body that differs in its last byte does not', async () => {
    for (const path of ['/same', '/chunked', '/differs']) {
      for (let i = 0; i < 3; i++) {
        const r = await request(gw.url + path);
        assert.equal(r.status, 200);
        assert.equal(r.text.length > 0, true);
      }
    }
    await gw.settled();
    const routes = ['same', 'same-chunked', 'differs'];
    const expected = [
      ['same', 3, 0],
      ['same-chunked', 3, 0],
      ['differs', 0, 3],
    ];
    const found = (metrics: string) => routes.map((route) => [route, ...['match', 'diff'].map((result) => metricValue(metrics, 'gatewayctl_shadow_comparisons_total', { route, result }))]);
    // Counts reach the metrics with the thread's next report (up to 50 ms after
    // a pair is compared); a slow machine gets a few seconds for the last ones.
    let metrics = '';
    for (const until = Date.now() + 5_000; ; await new Promise((resolve) => setTimeout(resolve, 50))) {
      metrics = (await request(gw.adminUrl + '/metrics')).text;
      if (isDeepStrictEqual(found(metrics), expected) || Date.now() > until) break;
    }
    // Where a pair went missing, if one does: each copy's outcome, and the pairs not compared.
    const outcomes = (route: string) =>
      ['completed', 'error', 'timeout', 'dropped', 'skipped']
        .map((outcome) => [outcome, metricValue(metrics, 'gatewayctl_shadow_requests_total', { route, outcome })] as const)
        .filter(([, n]) => n > 0)
        .map(([outcome, n]) => `${n} ${outcome}`)
        .join(', ');
    const missing = routes.map((route) => `${route}: copies ${outcomes(route) || 'none'}; ${metricValue(metrics, 'gatewayctl_shadow_compare_dropped_total', { route })} pairs not compared`);
    assert.deepEqual(found(metrics), expected, missing.join('; '));
    assert.equal(gw.diffs.engine.pendingBytes, 0);
  });

  test('the event shows each side by its length and the digest of its whole body', async () => {
    const stream = await openSse(gw.adminUrl + '/diffs?route=differs&replay=1');
    try {
      const [message] = await stream.waitFor(1);
      const event = JSON.parse(message!.data) as DiffEvent;
      assert.equal(event.truncated, true);
      const difference = event.differences[0]!;
      assert.equal(String(difference.primary), `${SIZE} bytes, sha256 ${sha(body).slice(0, 16)}`);
      assert.equal(String(difference.shadow), `${SIZE} bytes, sha256 ${sha(altered).slice(0, 16)}`);
    } finally {
      stream.close();
    }
  });
});
