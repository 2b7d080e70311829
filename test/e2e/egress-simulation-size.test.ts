/**
 * Simulation files past a config's size, in a running gateway: a long
 * `record export` loads back at start and on reload, and a file past the
 * simulation limit is refused, named as what it is, with the running one
 * kept.
 */
import assert from 'node:assert/strict';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MAX_CONFIG_BYTES, SIMULATION_LIMITS } from '../../src/config/load.js';
import { runCli } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MAX_SIMULATION_BYTES = SIMULATION_LIMITS.maxBytes;

/** An export-shaped simulation of at least `bytes`: one pair per order, the last answering `last`. */
function largeSimulation(bytes: number, last: string): string {
  const pair = (path: string, body: string) =>
    JSON.stringify({
      request: { method: [{ matcher: 'exact', value: 'GET' }], path: [{ matcher: 'exact', value: path }], query: {} },
      response: { status: 200, body, encodedBody: false, headers: { 'content-type': ['text/plain'] }, templated: false },
    });
  const pairs: string[] = [];
  let size = 0;
  while (size < bytes) {
    const next = pair(`/orders/${pairs.length}`, 'x'.repeat(1000));
    pairs.push(next);
    size += next.length + 1;
  }
  pairs.push(pair('/orders/last', last));
  return JSON.stringify({ data: { pairs: [] }, meta: { schemaVersion: 'v5.2' } }).replace('"pairs":[]', `"pairs":[${pairs.join(',')}]`);
}

describe('simulation files past a config size', () => {
  let gw: TestGateway;
  let dark = '';
  const tmp = tempDir();
  const yaml = (simulation: string) => `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams: { a: "http://127.0.0.1:9" }
routes: [{ name: r, backends: [{ upstream: a }] }]
egress: { live: 127.0.0.1:0, dark: 127.0.0.1:0 }
dependencies:
  orders: { url: "http://127.0.0.1:9", simulation: ${simulation}, wait: 1ms }
`;
  const last = async () => request(`${dark}/orders/orders/last`);

  before(async () => {
    const text = largeSimulation(MAX_CONFIG_BYTES + 1024, 'first');
    assert.ok(Buffer.byteLength(text) > MAX_CONFIG_BYTES);
    writeFileSync(join(tmp.dir, 'orders.json'), text);
    writeFileSync(join(tmp.dir, 'gateway.yaml'), yaml('orders.json'));
    gw = await startGateway('', { configFile: join(tmp.dir, 'gateway.yaml') });
    dark = `http://127.0.0.1:${gw.egress.addresses.dark!.port}`;
  });

  after(async () => {
    await gw.close();
    tmp.remove();
  });

  test('one just over 4 MiB loads at start, and its watcher does not take it for changed', async () => {
    const answer = await last();
    assert.equal(answer.status, 200);
    assert.equal(answer.text, 'first');
    assert.equal(answer.headers['x-gatewayctl-egress'], 'simulated');
    // The watcher polls every second in tests; a reload it started would be logged well within 3 s.
    await sleep(3000);
    assert.ok(!gw.logs.some((l) => JSON.stringify(l).includes('simulation-file')), 'no reload for an unchanged simulation');
  });

  test('a larger one loads on reload, validated off the serving thread', async () => {
    writeFileSync(join(tmp.dir, 'orders.json'), largeSimulation(3 * MAX_CONFIG_BYTES, 'second'));
    const reload = await request(`${gw.adminUrl}/reload`, { method: 'POST', headers: { 'x-requested-by': 'test' } });
    assert.equal(reload.status, 200, reload.text);
    assert.equal((await last()).text, 'second');
  });

  test('one over the simulation limit is refused, named as a simulation with the limit; the last good one stays', async () => {
    // Sparse: the size is all the check reads.
    const huge = join(tmp.dir, 'huge.json');
    writeFileSync(huge, '');
    truncateSync(huge, MAX_SIMULATION_BYTES + 1);
    const refusal = new RegExp(`huge\\.json:1:1: error: simulation is ${MAX_SIMULATION_BYTES + 1} bytes; the limit is ${MAX_SIMULATION_BYTES}`);
    writeFileSync(join(tmp.dir, 'check.yaml'), yaml('huge.json'));
    const cli = await runCli(['validate', '--config', join(tmp.dir, 'check.yaml')], { cwd: tmp.dir });
    assert.notEqual(cli.code, 0);
    assert.match(cli.stdout + cli.stderr, refusal);
    assert.doesNotMatch(cli.stdout + cli.stderr, /config is \d+ bytes/);

    gw.writeConfig(yaml('huge.json'));
    const reload = await request(`${gw.adminUrl}/reload`, { method: 'POST', headers: { 'x-requested-by': 'test' } });
    assert.equal(reload.status, 422);
    assert.match(reload.text, new RegExp(`simulation is ${MAX_SIMULATION_BYTES + 1} bytes; the limit is ${MAX_SIMULATION_BYTES}`));
    assert.equal((await last()).text, 'second');
  });
});
