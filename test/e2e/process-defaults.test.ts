/**
 * `serve` outside the systemd unit: it starts itself over with the unit's
 * process settings where Node can (process.execve, Node 22.15 and later),
 * keeping its pid and serving as before, and says so; where Node cannot,
 * it says what it runs without. The operator's own settings are kept.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SEMI_SPACE_OPTION } from '../../src/control/process-defaults.js';
import { spawnServe } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const canStartOver = typeof (process as unknown as { execve?: unknown }).execve === 'function';

const environOf = (pid: number) => new Map(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));

describe('process settings outside the systemd unit', { skip: process.platform !== 'linux' && 'reads /proc' }, () => {
  let upstream: TestUpstream;
  const tmp = tempDir();
  let file: string;
  before(async () => {
    upstream = await startUpstream('a');
    file = join(tmp.dir, 'gateway.yaml');
    writeFileSync(file, `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nupstreams: { a: ${upstream.url} }\nroutes:\n  - { name: app, backends: [{ upstream: a }] }\n`);
  });
  after(async () => {
    await upstream.close();
    tmp.remove();
  });

  test(canStartOver ? 'are taken by starting over, same pid' : 'are named as missing where Node cannot start over', async () => {
    const serve = await spawnServe(['-c', file], { env: { MALLOC_ARENA_MAX: undefined, NODE_OPTIONS: undefined } });
    try {
      const environ = environOf(serve.child.pid!);
      const said = serve.logs.filter((l) => l.event === 'serve.process');
      assert.equal(said.length, 1, JSON.stringify(serve.logs));
      if (canStartOver) {
        assert.equal(environ.get('MALLOC_ARENA_MAX'), '2');
        assert.equal(environ.get('NODE_OPTIONS'), SEMI_SPACE_OPTION);
        assert.deepEqual(said[0]!.added, ['MALLOC_ARENA_MAX', 'NODE_OPTIONS']);
        assert.match(said[0]!.msg, /started over with MALLOC_ARENA_MAX=2 and --max-semi-space-size=8/);
      } else {
        assert.equal(environ.has('MALLOC_ARENA_MAX'), false);
        assert.deepEqual(said[0]!.missing, ['MALLOC_ARENA_MAX', 'NODE_OPTIONS']);
        assert.match(said[0]!.msg, /running without MALLOC_ARENA_MAX=2 and --max-semi-space-size=8: Node \S+ cannot start a process over/);
      }
      const answer = await request(serve.url + '/x');
      assert.equal(answer.status, 200);
      assert.equal(answer.json().upstream, 'a');
    } finally {
      assert.equal(await serve.stop(), 0);
    }
  });

  test("keeps the operator's own settings and says nothing", async () => {
    const serve = await spawnServe(['-c', file], { env: { MALLOC_ARENA_MAX: '4', NODE_OPTIONS: '--max-semi-space-size=16' } });
    try {
      const environ = environOf(serve.child.pid!);
      assert.equal(environ.get('MALLOC_ARENA_MAX'), '4');
      assert.equal(environ.get('NODE_OPTIONS'), '--max-semi-space-size=16');
      assert.equal(environ.has('GATEWAYCTL_RESTARTED_WITH'), false, 'it did not start over');
      assert.deepEqual(serve.logs.filter((l) => l.event === 'serve.process'), []);
      assert.equal((await request(serve.url + '/x')).status, 200);
    } finally {
      assert.equal(await serve.stop(), 0);
    }
  });
});
