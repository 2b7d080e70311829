/**
 * The shipped monitoring (Grafana dashboard, Prometheus alerts) and the
 * Kubernetes example only use metrics the gateway exports, and the config
 * embedded in the Kubernetes example is valid.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments, parse } from 'yaml';
import { validateConfigSource } from '../../src/config/validate.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { REPO_ROOT } from '../helpers/cli.js';

async function exportedNames(): Promise<Set<string>> {
  const metrics = new GatewayMetrics({ collectDefaults: false });
  const names = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
  }
  return names;
}

function queriedMetrics(expr: string): string[] {
  return [...new Set(expr.match(/gatewayctl_[a-z_]+/g) ?? [])];
}

describe('monitoring and deployment examples', () => {
  test('every metric the Grafana dashboard queries exists', async () => {
    const names = await exportedNames();
    const dashboard = JSON.parse(readFileSync(join(REPO_ROOT, 'config/monitoring/grafana-dashboard.json'), 'utf8'));
    const exprs: string[] = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr));
    assert.ok(exprs.length >= 10);
    for (const expr of exprs) for (const m of queriedMetrics(expr)) assert.ok(names.has(m), `${m} in ${expr}`);
    const covered = new Set(exprs.flatMap(queriedMetrics));
    for (const needed of ['gatewayctl_requests_total', 'gatewayctl_request_duration_seconds_bucket', 'gatewayctl_shadow_requests_total', 'gatewayctl_shadow_comparisons_total', 'gatewayctl_config_reloads_total']) {
      assert.ok(covered.has(needed), `dashboard shows ${needed}`);
    }
  });

  test('every metric the alert rules query exists', async () => {
    const names = await exportedNames();
    const rules = parse(readFileSync(join(REPO_ROOT, 'config/monitoring/prometheus-alerts.yaml'), 'utf8'));
    const exprs: string[] = rules.groups.flatMap((g: any) => g.rules.map((r: any) => String(r.expr)));
    assert.ok(exprs.length >= 6);
    for (const expr of exprs) for (const m of queriedMetrics(expr)) assert.ok(names.has(m), `${m} in ${expr}`);
  });

  test('the Kubernetes example carries a valid config', () => {
    const docs = parseAllDocuments(readFileSync(join(REPO_ROOT, 'config/kubernetes/gatewayctl.yaml'), 'utf8')).map((d) => d.toJS());
    const configMap = docs.find((d) => d.kind === 'ConfigMap');
    const result = validateConfigSource({ file: 'configmap:gateway.yaml', text: configMap.data['gateway.yaml'] }, { GATEWAYCTL_ADMIN_TOKEN: 'from-the-secret-0123' });
    assert.deepEqual(result.diagnostics, []);
    const deployment = docs.find((d) => d.kind === 'Deployment');
    assert.ok(deployment.spec.replicas > 1);
    assert.equal(deployment.spec.template.metadata.annotations['prometheus.io/scrape'], 'true');
  });
});
