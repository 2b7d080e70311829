/**
 * The shipped monitoring (Grafana dashboard, Prometheus alerts) and the
 * Kubernetes example only use metrics the gateway exports, and the config
 * embedded in the Kubernetes example is valid.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { parseAllDocuments, parse } from 'yaml';
import { validateConfigSource } from '../../src/config/validate.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { bucketsOf, METRIC } from '../../src/metrics/names.js';

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
    for (const needed of [METRIC.requests, bucketsOf(METRIC.requestDuration), METRIC.shadowRequests, METRIC.shadowComparisons, METRIC.configReloads]) {
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
    const gateways = docs.find((d) => d.kind === 'StatefulSet');
    assert.ok(gateways.spec.replicas > 1);
    assert.equal(gateways.spec.template.metadata.annotations['prometheus.io/scrape'], 'true');
  });

  describe('the Kubernetes example', () => {
    const docs = parseAllDocuments(readFileSync(join(REPO_ROOT, 'config/kubernetes/gatewayctl.yaml'), 'utf8')).map((d) => d.toJS());
    const ofKind = (kind: string) => docs.filter((d) => d.kind === kind);
    const gateways = ofKind('StatefulSet')[0];
    const pod = gateways.spec.template;
    const container = pod.spec.containers[0];
    const config = parse(ofKind('ConfigMap')[0].data['gateway.yaml']);
    const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => labels?.[k] === v);
    const ajv = new Ajv({ allErrors: true, strict: false });

    test('a PodDisruptionBudget (policy/v1) covering the gateway pods', () => {
      const [pdb] = ofKind('PodDisruptionBudget');
      const valid = ajv.validate(PDB_SCHEMA, pdb);
      assert.ok(valid, ajv.errorsText());
      assert.ok(matches(pdb.spec.selector.matchLabels, pod.metadata.labels), 'selects the gateway pods');
      if (pdb.spec.minAvailable !== undefined) assert.ok(pdb.spec.minAvailable < gateways.spec.replicas, 'leaves room to evict one');
    });

    test('a ServiceMonitor scraping every pod\'s admin /metrics as job="gatewayctl"', () => {
      const [monitor] = ofKind('ServiceMonitor');
      const valid = ajv.validate(SERVICE_MONITOR_SCHEMA, monitor);
      assert.ok(valid, ajv.errorsText());
      const services = ofKind('Service').filter((s) => matches(monitor.spec.selector.matchLabels, s.metadata.labels));
      assert.equal(services.length, 1, 'selects exactly one Service');
      const [service] = services;
      assert.ok(matches(service.spec.selector, pod.metadata.labels), 'the Service selects the gateway pods');
      assert.equal(service.metadata.namespace, monitor.metadata.namespace);
      const endpoint = monitor.spec.endpoints[0];
      const port = service.spec.ports.find((p: { name: string }) => p.name === endpoint.port);
      assert.ok(port, `the Service has a port named ${endpoint.port}`);
      const containerPort = container.ports.find((p: { name: string }) => p.name === port.targetPort);
      assert.equal(containerPort.containerPort, Number(String(config.admin).split(':').at(-1)), 'the admin listener');
      assert.equal(endpoint.path, '/metrics');
      assert.ok(endpoint.relabelings.some((r: any) => r.targetLabel === 'job' && r.replacement === 'gatewayctl'), 'job="gatewayctl", as the rules expect');
    });

    test('release state survives a restart: stateDir is on a persistent volume, not an emptyDir', () => {
      const mount = container.volumeMounts.find((m: { mountPath: string }) => m.mountPath === config.stateDir);
      assert.ok(mount, `stateDir ${config.stateDir} is mounted`);
      assert.ok(!pod.spec.volumes.some((v: any) => v.name === mount.name), 'not a pod volume (emptyDir dies with the pod)');
      assert.ok(gateways.spec.volumeClaimTemplates.some((c: any) => c.metadata.name === mount.name), 'a claim per pod');
    });

    test('drains with the gateway\'s own signal handling: no preStop command from the image', () => {
      assert.equal(container.lifecycle?.preStop?.exec, undefined);
      const args: string[] = container.args;
      assert.ok(args.includes('--drain-delay'), 'serve --drain-delay covers the endpoint update');
      const delaySeconds = Number(args[args.indexOf('--drain-delay') + 1]!.replace(/s$/, ''));
      const drainSeconds = Number(String(config.timeouts.drain).replace(/s$/, ''));
      assert.ok(pod.spec.terminationGracePeriodSeconds > delaySeconds + drainSeconds, 'grace period above delay plus drain');
    });
  });
});

/** The fields of policy/v1 PodDisruptionBudget the example relies on, as the API server requires them. */
const PDB_SCHEMA = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'policy/v1' },
    kind: { const: 'PodDisruptionBudget' },
    metadata: { type: 'object', required: ['name', 'namespace'], properties: { name: { type: 'string', minLength: 1 } } },
    spec: {
      type: 'object',
      required: ['selector'],
      properties: {
        selector: { type: 'object', required: ['matchLabels'], properties: { matchLabels: { type: 'object', minProperties: 1 } } },
        minAvailable: { type: ['integer', 'string'] },
        maxUnavailable: { type: ['integer', 'string'] },
      },
      // One of the two, not both (the API server refuses both).
      oneOf: [{ required: ['minAvailable'] }, { required: ['maxUnavailable'] }],
    },
  },
};

/** The fields of the Prometheus Operator's monitoring.coreos.com/v1 ServiceMonitor the example relies on. */
const SERVICE_MONITOR_SCHEMA = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'monitoring.coreos.com/v1' },
    kind: { const: 'ServiceMonitor' },
    metadata: { type: 'object', required: ['name', 'namespace'] },
    spec: {
      type: 'object',
      required: ['selector', 'endpoints'],
      properties: {
        selector: { type: 'object', required: ['matchLabels'], properties: { matchLabels: { type: 'object', minProperties: 1 } } },
        endpoints: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            required: ['port'],
            properties: {
              port: { type: 'string' },
              path: { type: 'string', pattern: '^/' },
              interval: { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$' },
              relabelings: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    action: { enum: ['replace', 'keep', 'drop', 'labelmap', 'labeldrop', 'labelkeep', 'hashmod', 'lowercase', 'uppercase', 'keepequal', 'dropequal'] },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};
