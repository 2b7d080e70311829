/**
 * Shadow copies shed while the serving thread is saturated
 * (src/shadow/load-shedding.ts). The gateway runs in this process, so a
 * timer that keeps the loop busy 19 ms of every 20 saturates the very loop
 * that serves: its event-loop utilization is real, not faked.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { METRIC } from '../../src/metrics/names.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { metricValue } from '../helpers/metrics.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const config = (primary: string, shadow: string, shedAbove: number) => `
listen: 127.0.0.1:0
upstreams:
  v1: ${primary}
  v2: ${shadow}
routes:
  - name: shop
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2 }]
    diff: { enabled: false }
limits:
  shadowShedAbove: ${shedAbove}
`;

/** Requests (see requestFor) while this process's loop is kept busy 19 ms of every 20. */
async function requestSaturated(url: string, ms: number): Promise<number> {
  const timer = setInterval(() => {
    const until = performance.now() + 19;
    while (performance.now() < until);
  }, 1);
  try {
    return await requestFor(url, ms);
  } finally {
    clearInterval(timer);
  }
}

/** Requests one after another for `ms`; every answer must be the primary's. */
async function requestFor(url: string, ms: number): Promise<number> {
  let sent = 0;
  for (const until = performance.now() + ms; performance.now() < until; sent++) {
    const answer = await request(url);
    assert.equal(answer.status, 200);
    assert.equal(answer.json<{ upstream: string }>().upstream, 'v1');
  }
  return sent;
}

async function sendCalmly(gw: TestGateway, shadow: TestUpstream, count: number): Promise<void> {
  const before = shadow.received.length;
  for (let i = 0; i < count; i++) assert.equal((await request(`${gw.url}/item/${i}`)).status, 200);
  await shadow.waitFor(before + count, 5000);
}

describe('shadow load shedding', () => {
  let primary: TestUpstream;
  let shadow: TestUpstream;
  before(async () => {
    primary = await startUpstream('v1');
    shadow = await startUpstream('v2');
  });
  after(async () => {
    await Promise.all([primary.close(), shadow.close()]);
  });

  test('a saturated serving thread sheds copies (counted as dropped, logged, shown in the ratio), users answered; calm again, every copy goes', async (t) => {
    const gw = await startGateway(config(primary.url, shadow.url, 0.9));
    try {
      const metrics = async () => (await request(gw.adminUrl + '/metrics')).text;
      await sendCalmly(gw, shadow, 10);
      assert.equal(metricValue(await metrics(), METRIC.shadowAdmittedRatio), 1);

      const copiesBefore = shadow.received.length;
      const sent = await requestSaturated(`${gw.url}/item`, 2000);
      await gw.settled();
      const saturated = await metrics();
      const copies = shadow.received.length - copiesBefore;
      const dropped = metricValue(saturated, METRIC.shadowRequests, { route: 'shop', outcome: 'dropped' });
      t.diagnostic(`saturated: ${sent} requests, ${copies} copies, ${dropped} dropped, admitted ratio ${metricValue(saturated, METRIC.shadowAdmittedRatio)}`);
      assert.ok(sent >= 8, `${sent} requests served while saturated`);
      assert.ok(metricValue(saturated, METRIC.shadowAdmittedRatio) <= 0.25, `admitted ratio ${metricValue(saturated, METRIC.shadowAdmittedRatio)}`);
      assert.ok(copies < sent / 2, `${copies} copies for ${sent} requests`);
      assert.equal(copies + dropped, sent, 'every chosen copy was sent or counted as dropped');
      assert.ok(gw.logs.some((r) => r.event === 'shadow.shedding' && r.level === 'warn'));

      // A quiet moment, then every copy goes again: the share doubles per quiet window, from 1/128 at worst.
      await sleep(2200);
      await sendCalmly(gw, shadow, 10);
      assert.equal(metricValue(await metrics(), METRIC.shadowAdmittedRatio), 1);
      assert.ok(gw.logs.some((r) => r.event === 'shadow.shedding.end'));
    } finally {
      await gw.close();
    }
  });

  test('limits.shadowShedAbove: 1 never sheds, saturated or not', async () => {
    const gw = await startGateway(config(primary.url, shadow.url, 1));
    try {
      const copiesBefore = shadow.received.length;
      const sent = await requestSaturated(`${gw.url}/item`, 1000);
      await shadow.waitFor(copiesBefore + sent, 5000);
      const metrics = (await request(gw.adminUrl + '/metrics')).text;
      assert.equal(metricValue(metrics, METRIC.shadowRequests, { route: 'shop', outcome: 'dropped' }), 0);
      assert.equal(metricValue(metrics, METRIC.shadowAdmittedRatio), 1);
    } finally {
      await gw.close();
    }
  });
});
