/**
 * The process settings serve starts with (the systemd unit's): each unless
 * the operator chose otherwise, and the arguments that start it over.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ALLOCATOR_DEFAULTS, describeDefaults, missingDefaults, restartArguments, SEMI_SPACE_OPTION } from '../../src/control/process-defaults.js';

const linux = (env: NodeJS.ProcessEnv, execArgv: string[] = []) => missingDefaults({ env, execArgv, platform: 'linux' });

describe('missingDefaults', () => {
  test('gives every default when none is set', () => {
    assert.deepEqual(linux({}), { MALLOC_ARENA_MAX: '2', NODE_OPTIONS: SEMI_SPACE_OPTION });
    assert.deepEqual(linux({ NODE_ENV: 'production' }), { ...ALLOCATOR_DEFAULTS, NODE_OPTIONS: SEMI_SPACE_OPTION });
  });

  test("leaves the operator's own allocator setting alone, even an empty one", () => {
    assert.deepEqual(linux({ MALLOC_ARENA_MAX: '8' }), { NODE_OPTIONS: SEMI_SPACE_OPTION });
    assert.deepEqual(linux({ MALLOC_ARENA_MAX: '' }), { NODE_OPTIONS: SEMI_SPACE_OPTION });
  });

  test('adds the semi-space bound to NODE_OPTIONS, keeping what is there', () => {
    assert.equal(linux({ NODE_OPTIONS: '--enable-source-maps' }).NODE_OPTIONS, `--enable-source-maps ${SEMI_SPACE_OPTION}`);
    assert.equal(linux({ NODE_OPTIONS: '  ' }).NODE_OPTIONS, SEMI_SPACE_OPTION);
  });

  test("keeps the operator's own young-generation bound, however it is written", () => {
    for (const env of [{ NODE_OPTIONS: '--max-semi-space-size=16' }, { NODE_OPTIONS: '--trace-gc --max_semi_space_size=4' }]) {
      assert.equal(linux(env).NODE_OPTIONS, undefined, env.NODE_OPTIONS);
    }
    assert.equal(linux({}, ['--max-semi-space-size=32']).NODE_OPTIONS, undefined, 'from the command line');
    // A different option that starts alike is not a bound.
    assert.equal(linux({ NODE_OPTIONS: '--max-semi-space-sizes' }).NODE_OPTIONS, `--max-semi-space-sizes ${SEMI_SPACE_OPTION}`);
  });

  test("glibc's setting only where glibc is", () => {
    assert.deepEqual(missingDefaults({ env: {}, execArgv: [], platform: 'darwin' }), { NODE_OPTIONS: SEMI_SPACE_OPTION });
  });

  test('nothing is missing once all are set', () => {
    assert.deepEqual(linux({ MALLOC_ARENA_MAX: '2', NODE_OPTIONS: SEMI_SPACE_OPTION }), {});
  });
});

describe('restartArguments', () => {
  test("a script: Node's options, the script and its arguments", () => {
    assert.deepEqual(restartArguments('/usr/bin/node', ['--enable-source-maps'], ['/usr/bin/node', '/opt/gatewayctl/bin/gatewayctl', 'serve', '-c', 'g.yaml'], false), [
      '/usr/bin/node',
      '--enable-source-maps',
      '/opt/gatewayctl/bin/gatewayctl',
      'serve',
      '-c',
      'g.yaml',
    ]);
  });

  test('a single-file binary: its arguments, without the path Node puts in argv[1]', () => {
    assert.deepEqual(restartArguments('/usr/local/bin/gatewayctl', [], ['/usr/local/bin/gatewayctl', '/usr/local/bin/gatewayctl', 'serve'], true), [
      '/usr/local/bin/gatewayctl',
      'serve',
    ]);
  });
});

test('describeDefaults names each setting as an operator writes it', () => {
  assert.equal(describeDefaults(['MALLOC_ARENA_MAX', 'NODE_OPTIONS']), `MALLOC_ARENA_MAX=2 and ${SEMI_SPACE_OPTION}`);
});
