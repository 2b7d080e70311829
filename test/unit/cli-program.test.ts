/**
 * The command line as a program, in this process: building it runs
 * nothing, every command that talks to admin APIs has the shared admin
 * flags, and commands resolve to their exit statuses without a child.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Command } from 'commander';
import { parseAdminUrl } from '../../src/cli/admin-options.js';
import { buildProgram, runCommandLine } from '../../src/cli/program.js';
import { tempDir } from '../helpers/gateway.js';

function find(program: Command, path: string): Command {
  let command = program;
  for (const name of path.split(' ')) {
    const next = command.commands.find((c) => c.name() === name);
    assert.ok(next, `no command "${path}"`);
    command = next;
  }
  return command;
}

describe('gatewayctl program', () => {
  test('every command that talks to admin APIs takes --admin, --token and --admin-ca', () => {
    const program = buildProgram(() => assert.fail('building the program runs no command'));
    const admin = [
      'status',
      'reload',
      'diff',
      'diff summary',
      'diff show',
      'record export',
      'release status',
      'release pause',
      'release resume',
      'release promote',
      'release rollback',
      'release run',
    ];
    for (const path of admin) {
      const flags = find(program, path).options.map((o) => o.long);
      for (const flag of ['--admin', '--token', '--admin-ca']) assert.ok(flags.includes(flag), `${path} lacks ${flag}`);
    }
  });

  test('--admin accepts a URL, HOST:PORT or a port; other schemes are usage errors', () => {
    assert.equal(parseAdminUrl('10.0.0.1:9901').href, 'http://10.0.0.1:9901/');
    assert.equal(parseAdminUrl('9901').href, 'http://127.0.0.1:9901/');
    assert.equal(parseAdminUrl('https://gw.example:9443').href, 'https://gw.example:9443/');
    assert.throws(() => parseAdminUrl('ftp://gw.example'), { code: 'GW_USAGE' });
  });

  test('commands resolve to the exit status of their error code', async () => {
    const tmp = tempDir();
    try {
      const run = (...args: string[]) => runCommandLine(['node', 'gatewayctl', ...args]);
      assert.equal(await run('status', '--admin', 'ftp://nowhere'), 2, 'usage');
      assert.equal(await run('validate', '-c', join(tmp.dir, 'missing.yaml')), 2, 'unreadable config');
      assert.equal(await run('init', '-c', join(tmp.dir, 'no-dir', 'gateway.yaml')), 1, 'write failed');
      assert.equal(await run('no-such-command'), 2);
    } finally {
      tmp.remove();
    }
  });
});
