/**
 * config/gatewayctl.service: the directives operations rely on, and
 * `systemd-analyze verify` (when systemd is on the machine).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ALLOCATOR_DEFAULTS } from '../../src/control/process-defaults.js';
import { BIN, REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';

const unit = readFileSync(join(REPO_ROOT, 'config/gatewayctl.service'), 'utf8');
const directive = (name: string) => unit.split('\n').filter((l) => l.startsWith(`${name}=`)).map((l) => l.slice(name.length + 1));

function hasSystemdAnalyze(): boolean {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('systemd unit', () => {
  test('runs serve on a config under /etc/gatewayctl with JSON logs', () => {
    assert.match(directive('ExecStart')[0]!, /gatewayctl serve --config \/etc\/gatewayctl\/gateway\.yaml --log-format json/);
  });
  test('runs the installed single-file binary', () => {
    for (const name of ['ExecStartPre', 'ExecStart', 'ExecReload']) assert.match(directive(name)[0]!, /^\/usr\/local\/bin\/gatewayctl /, name);
  });
  test('is Type=notify, accepting the systemd-notify helper processes', () => {
    assert.deepEqual(directive('Type'), ['notify']);
    assert.deepEqual(directive('NotifyAccess'), ['all']);
  });
  test('reload is confirmed by the gateway; stop drains with room to spare; restarts on failure', () => {
    assert.deepEqual(directive('ExecReload'), ['/usr/local/bin/gatewayctl reload']);
    assert.ok(Number(directive('TimeoutStopSec')[0]) > 30, 'stop timeout above the default 30s drain');
    assert.deepEqual(directive('Restart'), ['on-failure']);
    assert.deepEqual(directive('KillMode'), ['mixed'], 'only the primary gets SIGTERM; it drains its workers');
  });
  test('is hardened', () => {
    for (const [name, value] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['DynamicUser', 'yes'],
      ['StateDirectory', 'gatewayctl'],
      ['PrivateTmp', 'yes'],
    ]) {
      assert.deepEqual(directive(name!), [value], name);
    }
    assert.equal(directive('MemoryDenyWriteExecute').length, 0, 'V8 needs writable-executable memory');
  });
  test("its environment is one Node starts with: a typo in NODE_OPTIONS would stop the service from starting", () => {
    const environment = Object.fromEntries(directive('Environment').map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    assert.ok(environment['NODE_OPTIONS']?.includes('--max-semi-space-size='), 'the young generation is bounded');
    // The same allocator settings the primary gives the workers it forks.
    for (const [name, value] of Object.entries(ALLOCATOR_DEFAULTS)) assert.equal(environment[name], value, name);
    // Node refuses to start on an option it does not take from NODE_OPTIONS.
    execFileSync(process.execPath, ['-e', '0'], { env: { ...process.env, ...environment }, stdio: 'pipe' });
    execFileSync(BIN, ['--version'], { env: { ...process.env, ...environment }, stdio: 'pipe' });
  });
  test('passes systemd-analyze verify', { skip: !hasSystemdAnalyze() && 'systemd-analyze not installed' }, () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'gatewayctl.service');
      writeFileSync(file, unit.replaceAll('/usr/local/bin/gatewayctl', BIN));
      const out = execFileSync('systemd-analyze', ['verify', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.equal(out.trim(), '');
    } finally {
      tmp.remove();
    }
  });
});
