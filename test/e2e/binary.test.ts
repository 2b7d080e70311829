/**
 * The single-file binary (`npm run build:binary`), copied alone into an
 * empty directory, with no node_modules, sources or config/ beside it:
 * init and validate, serve (with workers forked from the binary itself)
 * and reload, demo, and diff against the demo.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eachLine, REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/** Why the binary cannot be built here, or undefined when it can. */
function buildToolMissing(): string | undefined {
  for (const pkg of ['esbuild', 'postject']) {
    if (!existsSync(join(REPO_ROOT, 'node_modules', pkg))) return `${pkg} not installed (npm ci installs the devDependencies)`;
  }
  return undefined;
}

const skip = buildToolMissing();

function run(bin: string, args: string[], cwd: string, timeoutMs = 30_000) {
  const result = spawnSync(bin, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env: { PATH: '/usr/bin:/bin', NO_COLOR: '1', HOME: cwd } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A child whose stdout lines are kept, with a wait for one that matches. */
function watch(child: ChildProcess) {
  const lines: string[] = [];
  let stderr = '';
  eachLine(child.stdout!, (line) => lines.push(line));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    lines,
    exited,
    async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
      const started = Date.now();
      for (;;) {
        for (const line of lines) {
          const m = line.match(pattern);
          if (m) return m;
        }
        if (child.exitCode !== null) throw new Error(`exited early:\n${lines.join('\n')}\n${stderr}`);
        if (Date.now() - started > timeoutMs) throw new Error(`${pattern} not seen:\n${lines.join('\n')}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

describe('the single-file binary, alone in an empty directory', { skip }, () => {
  let dir: ReturnType<typeof tempDir>;
  let bin: string;

  before(() => {
    const build = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/build-binary.mjs')], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 });
    assert.equal(build.status, 0, `build:binary failed\n${build.stdout}\n${build.stderr}`);
    dir = tempDir('gatewayctl-binary-');
    bin = join(dir.dir, 'gatewayctl');
    copyFileSync(join(REPO_ROOT, 'dist/gatewayctl'), bin);
    assert.deepEqual(readdirSync(dir.dir), ['gatewayctl']);
  });
  after(() => dir?.remove());

  test('--version, init and validate', () => {
    const version = run(bin, ['--version'], dir.dir);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+/);
    assert.equal(version.stderr, '', 'no runtime warnings');
    assert.equal(run(bin, ['init'], dir.dir).code, 0);
    const valid = run(bin, ['validate', '-c', 'gateway.yaml'], dir.dir);
    assert.equal(valid.code, 0, valid.stderr);
    assert.match(valid.stderr, /valid: 1 route/);
    writeFileSync(join(dir.dir, 'broken.yaml'), 'listen: 127.0.0.1:0\nroutes: [{ name: x, backends: [{ upstream: nowhere }] }]\n');
    const invalid = run(bin, ['validate', '-c', 'broken.yaml'], dir.dir);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stdout, /broken\.yaml:\d+:\d+: error: /);
  });

  describe('serve', () => {
    let upstream: TestUpstream;
    before(async () => {
      upstream = await startUpstream('v1');
    });
    after(async () => upstream?.close());

    test('proxies with two workers forked from the binary, reloads, drains on SIGTERM', async () => {
      writeFileSync(
        join(dir.dir, 'serve.yaml'),
        `listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nupstreams:\n  v1: ${upstream.url}\nroutes:\n  - name: app\n    backends: [{ upstream: v1 }]\n`,
      );
      const child = spawn(bin, ['serve', '-c', 'serve.yaml', '--workers', '2', '--log-format', 'json'], {
        cwd: dir.dir,
        env: { PATH: '/usr/bin:/bin', HOME: dir.dir },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const serve = watch(child);
      try {
        const m = await serve.waitFor(/"event":"gateway\.listening".*"listen":\{"host":"127\.0\.0\.1","port":(\d+)\},"admin":\{"host":"127\.0\.0\.1","port":(\d+)\}/);
        const [, port, adminPort] = m;
        for (let i = 0; i < 10; i++) {
          const answer = await request(`http://127.0.0.1:${port}/item/${i}`);
          assert.equal(answer.status, 200);
          assert.equal(answer.json().upstream, 'v1');
        }
        const metrics = (await request(`http://127.0.0.1:${adminPort}/metrics`)).body.toString();
        assert.match(metrics, /gatewayctl_requests_total\{route="app",upstream="v1",code="200"\} 10/);
        const reload = run(bin, ['reload', '--admin', `127.0.0.1:${adminPort}`], dir.dir);
        assert.equal(reload.code, 0, reload.stderr);
        assert.match(reload.stdout, /config unchanged/);
        const workers = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
        assert.equal(workers.length, 2, 'two worker processes');
        for (const pid of workers) assert.equal(readlinkSync(`/proc/${pid}/exe`), bin, 'each worker runs the binary itself');
      } finally {
        child.kill('SIGTERM');
      }
      assert.equal(await serve.exited, 0);
    });
  });

  test('demo shows live diffs, and diff follows them from the same binary', async () => {
    const child = spawn(bin, ['demo', '--port', '0', '--admin-port', '0', '--rate', '20'], {
      cwd: dir.dir,
      env: { PATH: '/usr/bin:/bin', HOME: dir.dir, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const demo = watch(child);
    try {
      const [, admin] = await demo.waitFor(/gatewayctl diff --admin (http:\/\/127\.0\.0\.1:\d+)/);
      await demo.waitFor(/\/hits\/0\/title: \(absent\) → "|status: 200 → 500/);
      const diff = run(bin, ['diff', '--admin', admin!, '--count', '1', '--json'], dir.dir, 60_000);
      assert.equal(diff.code, 0, diff.stderr);
      const event = JSON.parse(diff.stdout.trim().split('\n')[0]!);
      assert.equal(typeof event.route, 'string');
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await demo.exited, 0);
  });
});
