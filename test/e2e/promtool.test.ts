/**
 * The shipped monitoring, checked by its real consumer, promtool (Debian's
 * `prometheus` package): the alert rules load and pass their unit tests,
 * every dashboard query parses, the dashboard's ratio panels read 0 (not
 * "No data") on a healthy system, every rule and query keeps `job` and
 * `namespace`, and a live gateway's /metrics passes `promtool check metrics`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../helpers/cli.js';
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const MONITORING = join(REPO_ROOT, 'config/monitoring');
const ALERTS = join(MONITORING, 'prometheus-alerts.yaml');

function promtoolMissing(): string | undefined {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'promtool not installed (Debian package "prometheus"; .ci/run installs it)';
  }
}

function promtool(args: string[], options: { input?: string; cwd?: string } = {}): { code: number | null; out: string } {
  const result = spawnSync('promtool', args, { input: options.input ?? '', cwd: options.cwd ?? REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, out: `${result.stdout}${result.stderr}` };
}

interface Rule {
  alert: string;
  expr: string;
}
const rules: Rule[] = parse(readFileSync(ALERTS, 'utf8')).groups.flatMap((g: { rules: Rule[] }) => g.rules);

interface Target {
  refId: string;
  expr: string;
}
const dashboard = JSON.parse(readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8'));
const panels: { id: number; title: string; targets: Target[]; fieldConfig: { defaults: { noValue?: string } } }[] = dashboard.panels;

/** A dashboard query as Prometheus receives it with "All" picked in every variable. */
const withAllPicked = (expr: string) => expr.replace(/\$(job|namespace|route)\b/g, '.*');

/** Every aggregation's `by (...)` list in a PromQL expression. */
function groupings(expr: string): string[][] {
  return [...expr.matchAll(/\b(?:sum|max|min|avg|count)\s+by\s*\(([^)]*)\)/g)].map((m) => m[1]!.split(',').map((s) => s.trim()));
}

describe('monitoring checked with promtool', { skip: promtoolMissing() }, () => {
  test('promtool check rules: the alert rules load', () => {
    const { code, out } = promtool(['check', 'rules', ALERTS]);
    assert.equal(code, 0, out);
    assert.match(out, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  test('promtool test rules: every alert has unit tests, and they pass', () => {
    const testFiles = readdirSync(MONITORING).filter((f) => f.endsWith('.test.yaml'));
    assert.ok(testFiles.length >= 1);
    const tested = new Set<string>();
    for (const file of testFiles) {
      const suite = parse(readFileSync(join(MONITORING, file), 'utf8'));
      for (const t of suite.tests) for (const a of t.alert_rule_test ?? []) if (a.exp_alerts?.length) tested.add(a.alertname);
      const { code, out } = promtool(['test', 'rules', file], { cwd: MONITORING });
      assert.equal(code, 0, out);
      assert.match(out, /SUCCESS/);
    }
    for (const rule of rules) assert.ok(tested.has(rule.alert), `${rule.alert} has a test where it fires`);
  });

  test('every rule and every dashboard query keeps job and namespace', () => {
    const exprs = [...rules.map((r) => r.expr), ...panels.flatMap((p) => p.targets.map((t) => t.expr))];
    for (const expr of exprs) {
      assert.doesNotMatch(expr, /\b(?:sum|max|min|avg|count)\s*\(/, `an aggregation without "by" drops job and namespace: ${expr}`);
      for (const labels of groupings(expr)) {
        assert.ok(labels.includes('job') && labels.includes('namespace'), `by (${labels.join(', ')}) in ${expr}`);
      }
    }
    for (const panel of panels) for (const t of panel.targets) assert.match(t.expr, /job=~"\$job",namespace=~"\$namespace"/, `${panel.title}: ${t.expr}`);
    const variables = dashboard.templating.list.map((v: { name: string }) => v.name);
    for (const name of ['job', 'namespace', 'route']) assert.ok(variables.includes(name), `dashboard variable ${name}`);
  });

  test('promtool check rules: every dashboard query parses', () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'dashboard-queries.yaml');
      const recording = panels.flatMap((p) => p.targets.map((t) => ({ record: `dashboard:panel_${p.id}_${t.refId}`, expr: withAllPicked(t.expr) })));
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: recording }] }));
      const { code, out } = promtool(['check', 'rules', file]);
      assert.equal(code, 0, out);
      assert.match(out, new RegExp(`SUCCESS: ${recording.length} rules found`));
    } finally {
      tmp.remove();
    }
  });

  test('on a healthy system the 5xx-share and diff-rate panels read 0, and no panel shows "No data"', () => {
    for (const panel of panels) assert.equal(panel.fieldConfig.defaults.noValue, '0', `${panel.title}: noValue`);
    const tmp = tempDir();
    try {
      writeFileSync(join(tmp.dir, 'empty-rules.yaml'), 'groups: []\n');
      const scope = 'job="gatewayctl",namespace="prod",instance="p:9901",route="shop",upstream="v1"';
      const healthy = [
        { series: `gatewayctl_requests_total{${scope},code="200"}`, values: '0+600x10' },
        { series: `gatewayctl_shadow_comparisons_total{${scope},result="match"}`, values: '0+60x10' },
      ];
      const zero = [{ labels: '{job="gatewayctl",namespace="prod",route="shop",upstream="v1"}', value: 0 }];
      const byTitle = (words: RegExp) => {
        const panel = panels.find((p) => words.test(p.title));
        assert.ok(panel, `a panel titled ${words}`);
        return withAllPicked(panel.targets[0]!.expr);
      };
      const suite = {
        rule_files: ['empty-rules.yaml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: healthy,
            promql_expr_test: [
              { expr: byTitle(/5xx share/), eval_time: '8m', exp_samples: zero },
              { expr: byTitle(/diff rate/i), eval_time: '8m', exp_samples: zero },
            ],
          },
        ],
      };
      writeFileSync(join(tmp.dir, 'dashboard.test.yaml'), stringify(suite));
      const { code, out } = promtool(['test', 'rules', 'dashboard.test.yaml'], { cwd: tmp.dir });
      assert.equal(code, 0, out);
    } finally {
      tmp.remove();
    }
  });

  describe('against a live gateway', () => {
    let upstream: TestUpstream;
    let shadow: TestUpstream;
    let gw: TestGateway;
    before(async () => {
      upstream = await startUpstream('v1');
      shadow = await startUpstream('v2');
      gw = await startGateway(`listen: 127.0.0.1:0
admin: 127.0.0.1:0
upstreams:
  v1: ${upstream.url}
  v2: ${shadow.url}
routes:
  - name: shop
    backends: [{ upstream: v1 }]
    shadow: [{ upstream: v2, percent: 100 }]
    diff: {}
`);
      for (let i = 0; i < 20; i++) await request(`${gw.url}/item/${i}`);
    });
    after(async () => {
      await gw?.close();
      await upstream?.close();
      await shadow?.close();
    });

    test('promtool check metrics: /metrics parses, and no gatewayctl_ metric has a lint problem', async () => {
      const text = (await request(gw.adminUrl + '/metrics')).body.toString();
      assert.match(text, /gatewayctl_requests_total\{/);
      const { code, out } = promtool(['check', 'metrics'], { input: text });
      // 0: clean; 3: lint problems only (1 would be a parse error).
      assert.ok(code === 0 || code === 3, `promtool check metrics exited ${code}: ${out}`);
      const ours = out.split('\n').filter((line) => line.startsWith('gatewayctl_'));
      assert.deepEqual(ours, [], out);
    });
  });
});
