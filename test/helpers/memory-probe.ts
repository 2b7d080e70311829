/**
 * Run as its own process with --expose-gc: a gateway in front of a primary
 * and a shadow that never answers, driven in batches; after each batch a
 * full GC, then the live heap and RSS are printed as one JSON line. Live
 * heap after GC is what a leak grows; RSS also follows V8's heap sizing,
 * which differs between Node versions.
 */
import http from 'node:http';
import { hungShadowConfig } from './configs.js';
import { startGateway } from './gateway.js';
import { request, runConcurrently } from './http.js';
import { startUpstream } from './upstream.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const batches = Number(process.argv[2] ?? 6);
const perBatch = Number(process.argv[3] ?? 500);

const primary = await startUpstream('primary', (_req, res) => {
  res.end('ok');
});
const hung = await startUpstream('hung', () => undefined);
const gw = await startGateway(hungShadowConfig(primary.url, hung.url), { watch: false });
const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
for (let b = 0; b < batches; b++) {
  let failed = 0;
  await runConcurrently(perBatch, 20, async (i) => {
    const r = await request(`${gw.url}/x/${i}`, { agent });
    if (r.status !== 200 || r.text !== 'ok') failed++;
  });
  // The test upstreams keep what they received; that is not the gateway's.
  primary.received.length = 0;
  hung.received.length = 0;
  gc();
  gc();
  const m = process.memoryUsage();
  process.stdout.write(JSON.stringify({ requests: (b + 1) * perBatch, failed, heapUsed: m.heapUsed, rss: m.rss }) + '\n');
}
agent.destroy();
await gw.close();
await primary.close();
await hung.close();
