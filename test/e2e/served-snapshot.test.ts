/**
 * The control plane keeps one served snapshot: compiled once per accepted
 * config or release move, read (never compiled) by GET /status, and
 * numbered so that workers acknowledge exactly the snapshot they took.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnServe } from '../helpers/cli.js';
import { startGateway, tempDir } from '../helpers/gateway.js';
import { request, runConcurrently } from '../helpers/http.js';
import { releaseConfig } from '../helpers/release.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const POST = { method: 'POST', headers: { 'x-requested-by': 'test' } };
/** A release that stays at 10% until an operator moves it. */
const MANUAL = 'candidate: v2\nsteps: [10, 100]\ninterval: 1h\nminRequests: 1000000';

describe('the served snapshot', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  const tmp = tempDir();
  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
  });
  after(async () => {
    await v1.close();
    await v2.close();
    tmp.remove();
  });

  test('status reads it; reloads and release moves replace it, each with a new served generation', async () => {
    const gw = await startGateway(releaseConfig(v1, v2, join(tmp.dir, 'one'), MANUAL));
    try {
      const first = gw.gateway.served();
      assert.equal(first.generation, 1);
      assert.equal(first.servedGeneration, 1);
      assert.deepEqual(
        first.routes[0]!.config.backends.map((b) => b.upstream),
        ['v1', 'v2'],
        'the release is applied to what is served',
      );
      for (let i = 0; i < 3; i++) assert.equal((await request(gw.adminUrl + '/status')).status, 200);
      assert.equal(gw.gateway.served(), first, 'GET /status compiles nothing');
      assert.equal((await request(gw.adminUrl + '/status')).json().generation, 1);

      assert.equal((await request(gw.adminUrl + '/releases/shop/promote', POST)).status, 200);
      const promoted = gw.gateway.served();
      assert.equal(promoted.generation, 1, 'a release move keeps the config generation');
      assert.equal(promoted.servedGeneration, 2);
      assert.deepEqual(promoted.routes[0]!.config.backends.find((b) => b.weight > 0)?.upstream, 'v2');

      const unchanged = await request(gw.adminUrl + '/reload', POST);
      assert.equal(unchanged.json().unchanged, true);
      assert.equal(gw.gateway.served(), promoted, 'an unchanged config compiles nothing');

      gw.writeConfig(releaseConfig(v1, v2, join(tmp.dir, 'one'), MANUAL).replace('sticky: { header: x-user-id }', 'sticky: { header: x-user }'));
      const reloaded = await request(gw.adminUrl + '/reload', POST);
      assert.equal(reloaded.status, 200);
      assert.equal(reloaded.json().generation, 2);
      assert.equal(gw.gateway.served().servedGeneration, 3);
      assert.equal(gw.gateway.served().generation, 2);
    } finally {
      await gw.close();
    }
  });

  test('--workers 2: a release move is acknowledged by every worker before the answer', async () => {
    const file = join(tmp.dir, 'workers.yaml');
    writeFileSync(file, releaseConfig(v1, v2, join(tmp.dir, 'workers'), MANUAL));
    const serve = await spawnServe(['-c', file, '--workers', '2']);
    try {
      assert.equal((await request(serve.adminUrl + '/releases/shop/pause', POST)).status, 200);
      assert.equal((await request(serve.adminUrl + '/releases/shop/promote', POST)).status, 200);
      // Separate connections, so both workers answer.
      const after = await runConcurrently(60, 6, async () => (await request(serve.url + '/shop/x')).json().upstream);
      assert.ok(after.every((u) => u === 'v2'), after.join(','));
    } finally {
      await serve.stop();
    }
  });
});
