/**
 * The README must not drift from the code: the config reference is what the
 * spec generates, every metric is documented (error codes: errors.test.ts), and
 * every command has its line in the CLI section.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { withReference } from '../../src/config/reference.js';
import { GatewayMetrics } from '../../src/metrics/registry.js';
import { REPO_ROOT } from '../helpers/cli.js';

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

describe('README', () => {
  test('the config reference is current (npm run docs)', () => {
    assert.equal(readme, withReference(readme));
  });
  test('every gatewayctl_ metric is documented', async () => {
    const metrics = new GatewayMetrics({ collectDefaults: false });
    const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
    assert.ok(names.length > 10);
    for (const name of names) assert.ok(readme.includes(name), name);
  });
  test('every command is in the CLI section', () => {
    for (const command of ['serve', 'validate', 'diff', 'diff summary', 'status', 'release', 'record export', 'init', 'demo']) {
      assert.ok(readme.includes(`gatewayctl ${command} `), command);
    }
  });
});
