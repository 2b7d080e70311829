/**
 * Example pairs through the admin API and the CLI: GET /diffs/examples by
 * event id and by finding, behind the token like /diffs, and
 * `gatewayctl diff show`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, spawnServe } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const TOKEN = 'examples-token-0123456789';

describe('example pairs over the admin API and the CLI', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  let gw: TestGateway;
  const auth = { authorization: `Bearer ${TOKEN}` };
  before(async () => {
    const answer = (price: number) => (_req: unknown, res: import('node:http').ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'sid=s3cr3t' });
      res.end(JSON.stringify({ id: 1, price }));
    };
    v1 = await startUpstream('v1', answer(10));
    v2 = await startUpstream('v2', answer(12));
    gw = await startGateway(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, token: ${TOKEN} }
upstreams: { v1: ${v1.url}, v2: ${v2.url} }
routes:
  - name: shop
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2 }]
`);
    await request(`${gw.url}/shop/1`, { headers: { 'x-request-id': 'req-example-1' } });
    await gw.settled();
    for (let i = 0; i < 50 && gw.diffs.store.recent({}, { limit: 1 }).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  });
  after(async () => {
    await gw.close();
    await v1.close();
    await v2.close();
  });

  const eventId = () => gw.diffs.store.recent({}, { limit: 1 })[0]!.id;

  test('by event id and by finding; the token is needed, as for /diffs', async () => {
    const id = eventId();
    assert.equal((await request(`${gw.adminUrl}/diffs/examples/${id}`)).status, 401);
    const byId = await request(`${gw.adminUrl}/diffs/examples/${id}`, { headers: auth });
    assert.equal(byId.status, 200, byId.text);
    const { event, example } = byId.json();
    assert.equal(event.requestId, 'req-example-1');
    assert.deepEqual(example.primary.body, { format: 'json', value: { id: 1, price: 10 } });
    assert.deepEqual(example.shadow.body, { format: 'json', value: { id: 1, price: 12 } });
    assert.equal(example.primary.headers['set-cookie'], '(redacted)');
    assert.deepEqual(example.differing, [{ kind: 'body', path: '/price', template: '/price' }]);
    const byFinding = await request(`${gw.adminUrl}/diffs/examples?route=shop&shadow=v2&kind=body&path=%2Fprice`, { headers: auth });
    assert.equal(byFinding.json().event.id, id);
    const missing = await request(`${gw.adminUrl}/diffs/examples/nope-1`, { headers: auth });
    assert.equal(missing.status, 404);
    assert.equal((await request(`${gw.adminUrl}/diffs/examples/%E0%A4%A`, { headers: auth })).status, 404);
  });

  test('`gatewayctl diff show` prints both sides with the differing place marked', async () => {
    const id = eventId();
    const shown = await runCli(['diff', 'show', id, '--admin', gw.adminUrl, '--token', TOKEN]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /primary: v1/);
    assert.match(shown.stdout, /shadow: v2/);
    assert.match(shown.stdout, /^! +"price": 10,?$/m);
    assert.match(shown.stdout, /^! +"price": 12,?$/m);
    assert.match(shown.stdout, /^ +"id": 1,$/m);
    assert.ok(!shown.stdout.includes('s3cr3t'));
    const json = await runCli(['diff', 'show', '--route', 'shop', '--shadow', 'v2', '--kind', 'body', '--path', '/price', '--json', '--admin', gw.adminUrl], {
      env: { GATEWAYCTL_ADMIN_TOKEN: TOKEN },
    });
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).event.id, id);
    const gone = await runCli(['diff', 'show', 'nope-1', '--admin', gw.adminUrl, '--token', TOKEN]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no example pair kept/);
    const usage = await runCli(['diff', 'show', '--route', 'shop', '--admin', gw.adminUrl]);
    assert.equal(usage.code, 2);
  });

  test('with --workers 2 the pairs compared in workers reach the primary with their examples', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(
      file,
      `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { v1: ${v1.url}, v2: ${v2.url} }
routes:
  - name: shop
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2 }]
`,
    );
    const serve = await spawnServe(['-c', file, '--workers', '2']);
    try {
      for (let i = 0; i < 4; i++) await request(`${serve.url}/shop/${i}`, { headers: { 'x-request-id': `w-${i}` } });
      let found: any;
      for (let i = 0; i < 100 && !found; i++) {
        const r = await request(`${serve.adminUrl}/diffs/examples?route=shop&shadow=v2&kind=body&path=%2Fprice`);
        if (r.status === 200) found = r.json();
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(found, 'an example arrived from a worker');
      assert.match(found.event.requestId, /^w-\d$/);
      assert.deepEqual(found.example.shadow.body, { format: 'json', value: { id: 1, price: 12 } });
    } finally {
      await serve.stop();
      tmp.remove();
    }
  });
});
