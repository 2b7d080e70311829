/**
 * The request path's steps (proxy/steps.ts), one at a time over a context,
 * and the upstream request they lead to (upstream/http1.ts) against a real
 * upstream.
 */
import assert from 'node:assert/strict';
import http, { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { compileSnapshot } from '../../src/config/compile.js';
import { validateConfigSource } from '../../src/config/validate.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { ActiveConfig } from '../../src/proxy/active.js';
import { RequestContext } from '../../src/proxy/context.js';
import { headers, pick, route, screen } from '../../src/proxy/steps.js';
import { openUpstreamRequest } from '../../src/upstream/http1.js';
import { UpstreamPools } from '../../src/upstream/pools.js';

const CONFIG = `upstreams:
  app: http://127.0.0.1:9/base
routes:
  - { name: api, match: { prefix: /api }, backends: [{ upstream: app }] }
`;

function contextFor(method: string, url: string, rawHeaders: string[]): RequestContext {
  const { config, diagnostics } = validateConfigSource({ file: 'steps.yaml', text: CONFIG });
  assert.ok(config, JSON.stringify(diagnostics));
  const snapshot = compileSnapshot(config, { generation: 1, source: 'steps.yaml', loadedAt: new Date() });
  const active = new ActiveConfig(snapshot, new GatewayMetrics({ collectDefaults: false }), new Map());
  const req = new IncomingMessage(new Socket());
  req.method = method;
  req.url = url;
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.httpVersion = '1.1';
  req.rawHeaders = rawHeaders;
  for (let i = 0; i < rawHeaders.length; i += 2) req.headers[rawHeaders[i]!.toLowerCase()] = rawHeaders[i + 1]!;
  return new RequestContext(req, new ServerResponse(req), active, 'req-1', 0);
}

describe('request steps', () => {
  const pools = new UpstreamPools();
  after(() => pools.destroy());

  test('screen splits the target; route, pick and headers fill in the context', () => {
    const ctx = contextFor('GET', '/api/items/x?q=1', ['Host', 'example.test', 'Connection', 'close, x-secret', 'X-Secret', 's']);
    assert.equal(screen(ctx), undefined);
    assert.equal(ctx.path, '/api/items/x');
    assert.equal(ctx.query, '?q=1');
    assert.equal(ctx.hasBody, false);
    assert.equal(route(ctx), undefined);
    assert.equal(ctx.route?.name, 'api');
    assert.equal(pick(ctx, pools), undefined);
    assert.equal(ctx.upstream?.name, 'app');
    assert.equal(ctx.pool, pools.poolFor(ctx.upstream!));
    headers(ctx);
    assert.equal(ctx.req.url, '/api/items/x?q=1');
    assert.equal(ctx.req.headers['x-request-id'], 'req-1');
    assert.equal(ctx.req.headers['x-secret'], undefined, 'a header named by Connection never crosses');
    assert.equal(ctx.req.headers.connection, undefined);
  });

  test('a refusal is a rejection with a status and a reason, and the context stays unrouted', () => {
    const framing = contextFor('POST', '/api', ['Host', 'h', 'Content-Length', '1', 'Transfer-Encoding', 'chunked']);
    assert.deepEqual([screen(framing)?.status, screen(framing)?.reason], [400, 'framing']);
    const nowhere = contextFor('GET', '/elsewhere', ['Host', 'h']);
    assert.equal(screen(nowhere), undefined);
    const refused = route(nowhere);
    assert.deepEqual([refused?.status, refused?.reason, refused?.unmatched], [404, 'no_route', true]);
    assert.equal(nowhere.route, undefined);
  });
});

describe('upstream HTTP/1.1 requests', () => {
  test('the endpoint path is joined, the headers sent as prepared, an IPv6 host reached', async () => {
    let seen: { url: string; headers: http.IncomingHttpHeaders } | undefined;
    const server = http.createServer((req, res) => {
      seen = { url: req.url!, headers: req.headers };
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
    after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const pools = new UpstreamPools();
    after(() => pools.destroy());
    const { config } = validateConfigSource({ file: 'v6.yaml', text: CONFIG.replace('http://127.0.0.1:9/base', `http://[::1]:${port}/base`) });
    const snapshot = compileSnapshot(config!, { generation: 1, source: 'v6.yaml', loadedAt: new Date() });
    const endpoint = pools.poolFor(snapshot.upstreams.get('app')!).pick(undefined);
    assert.equal(endpoint.hostname, '::1');
    const request = openUpstreamRequest(endpoint, 'GET', '/base/x?y=1', { host: 'client.test', 'x-request-id': 'r' });
    request.end();
    const status = await new Promise<number>((resolve, reject) => {
      request.on('error', reject);
      request.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
    });
    assert.equal(status, 200);
    assert.equal(seen?.url, '/base/x?y=1');
    assert.equal(seen?.headers.host, 'client.test', 'the client Host is kept');
    assert.equal(seen?.headers['x-request-id'], 'r');
    assert.equal(seen?.headers['x-forwarded-for'], undefined, 'nothing is added on the way');
  });
});
