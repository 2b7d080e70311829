/**
 * The one metrics reader (src/metrics/read.ts) and the metric names
 * (src/metrics/names.ts): Prometheus text and prom-client's JSON of the same
 * registry read as the same samples, and the registry exports exactly the
 * names the constants declare.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bucketsOf, METRIC, sumOf } from '../../src/metrics/names.js';
import { labelKey, samplesFromJson, samplesFromText, sumBy, type Sample } from '../../src/metrics/read.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { evidenceFrom } from '../../src/release/evidence.js';

/** A registry with some traffic on two upstreams of one route. */
function busyRegistry(): GatewayMetrics {
  const metrics = new GatewayMetrics({ collectDefaults: false });
  const v1 = metrics.requestStats('shop', 'v1');
  const v2 = metrics.requestStats('shop', 'v2');
  for (let i = 0; i < 50; i++) v1.observe(200, 0.004 + i / 10_000);
  for (let i = 0; i < 9; i++) v2.observe(200, 0.02);
  v2.observe(503, 0.3);
  v2.upstreamError('pool_exhausted');
  metrics.shadowStats('shop', 'v3').count('completed', 0.01);
  metrics.shadowComparisons.inc({ route: 'shop', upstream: 'v3', result: 'diff' }, 2);
  return metrics;
}

const byKey = (samples: readonly Sample[]) =>
  samples.map((s) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}=${s.value}`).sort();

describe('metrics reader', () => {
  test('text: labels with escapes, comments and blank lines skipped, +Inf as a label value, non-numbers dropped', () => {
    const samples = samplesFromText(
      [
        '# HELP gatewayctl_requests_total Requests.',
        '# TYPE gatewayctl_requests_total counter',
        'gatewayctl_requests_total{route="a \\"b\\"\\nc",upstream="v1",code="200"} 7',
        'gatewayctl_request_duration_seconds_bucket{route="a",upstream="v1",le="+Inf"} 3',
        'process_resident_memory_bytes 1024',
        '',
        'gatewayctl_connections_limit{listener="main"} NaN',
      ].join('\n'),
    );
    assert.deepEqual(samples, [
      { name: 'gatewayctl_requests_total', labels: { route: 'a "b"\nc', upstream: 'v1', code: '200' }, value: 7 },
      { name: 'gatewayctl_request_duration_seconds_bucket', labels: { route: 'a', upstream: 'v1', le: '+Inf' }, value: 3 },
      { name: 'process_resident_memory_bytes', labels: {}, value: 1024 },
    ]);
  });

  test("a registry's text and its JSON read as the same samples, and as the same release evidence", async () => {
    const metrics = busyRegistry();
    const fromText = samplesFromText(await metrics.registry.metrics()).filter((s) => s.name.startsWith('gatewayctl_'));
    const fromJson = samplesFromJson(await metrics.registry.getMetricsAsJSON());
    assert.deepEqual(byKey(fromText), byKey(fromJson));
    const evidence = evidenceFrom(fromJson);
    assert.deepEqual(evidenceFrom(fromText), evidence);
    assert.equal(evidence.routes['shop']!.backends['v2']!.requests, 10);
    assert.equal(evidence.routes['shop']!.backends['v2']!.errors, 0, "the gateway's own 503 is not the upstream's");
    assert.deepEqual(evidence.routes['shop']!.comparisons['v3'], { match: 0, diff: 2 });
  });

  test('JSON: only the metrics asked for, when a set is given', async () => {
    const json = await busyRegistry().registry.getMetricsAsJSON();
    const names = new Set(samplesFromJson(json, new Set([METRIC.requestDuration, METRIC.shadowRequests])).map((s) => s.name));
    assert.deepEqual([...names].sort(), [bucketsOf(METRIC.requestDuration), 'gatewayctl_request_duration_seconds_count', sumOf(METRIC.requestDuration), METRIC.shadowRequests].sort());
  });

  test('sums by label values, a missing label reading as empty', async () => {
    const samples = samplesFromJson(await busyRegistry().registry.getMetricsAsJSON());
    const requests = sumBy(samples, METRIC.requests, ['upstream', 'code']);
    assert.equal(requests.get(labelKey('v1', '200')), 50);
    assert.equal(requests.get(labelKey('v2', '503')), 1);
    assert.equal(sumBy(samples, METRIC.requests, ['upstream', 'nothing']).get(labelKey('v2', '')), 10);
    const buckets = sumBy(samples, bucketsOf(METRIC.requestDuration), ['upstream', 'le']);
    assert.equal(buckets.get(labelKey('v2', '+Inf')), 10);
    assert.ok(Math.abs(sumBy(samples, sumOf(METRIC.requestDuration), ['upstream']).get('v2')! - 0.48) < 1e-9);
  });

  test('the registry exports exactly the declared metric names', async () => {
    const metrics = new GatewayMetrics({ collectDefaults: false });
    const exported = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).sort();
    assert.deepEqual(exported, Object.values(METRIC).sort());
  });
});
