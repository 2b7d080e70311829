/**
 * The README's npm install path from a clone: `npm pack` makes a tarball
 * with the compiled CLI (built by `prepack`, where the devDependencies are
 * present) and `npm install -g` of it installs a real copy with its runtime
 * dependencies, not a link back to the clone. Here the compiled tree of this
 * test run is packed as is (--ignore-scripts) and installed into a
 * throwaway prefix from npm's cache.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/gateway.js';

const npm = (args: string[], cwd: string) => spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 240_000 });

describe('install from a clone with npm', () => {
  test('npm pack, then npm install -g of the tarball: a working gatewayctl, independent of the clone', () => {
    const tmp = tempDir('gatewayctl-install-');
    try {
      const pack = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', tmp.dir], REPO_ROOT);
      assert.equal(pack.status, 0, pack.stderr);
      const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
      const files = info!.files.map((f) => f.path);
      assert.ok(files.includes('dist/src/cli/main.js'), 'the compiled CLI is in the package');
      assert.ok(files.includes('config/gatewayctl.service'));
      assert.ok(!files.some((f) => f.startsWith('dist/test/') || f === 'dist/gatewayctl'), 'no tests or binary in the package');

      const prefix = join(tmp.dir, 'prefix');
      const install = npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(tmp.dir, info!.filename)], tmp.dir);
      assert.equal(install.status, 0, install.stderr);
      const installed = join(prefix, 'lib/node_modules/gatewayctl');
      assert.ok(!lstatSync(installed).isSymbolicLink(), 'a copy, not a link to the clone');
      assert.ok(!realpathSync(join(prefix, 'bin/gatewayctl')).startsWith(REPO_ROOT));
      assert.ok(readdirSync(join(installed, 'node_modules')).includes('commander'), 'runtime dependencies installed');

      const bin = join(prefix, 'bin/gatewayctl');
      const version = spawnSync(bin, ['--version'], { cwd: tmp.dir, encoding: 'utf8' });
      assert.equal(version.status, 0, version.stderr);
      const init = spawnSync(bin, ['init'], { cwd: tmp.dir, encoding: 'utf8' });
      assert.equal(init.status, 0, init.stderr);
      const validate = spawnSync(bin, ['validate', '-c', 'gateway.yaml'], { cwd: tmp.dir, encoding: 'utf8' });
      assert.equal(validate.status, 0, validate.stderr);
    } finally {
      tmp.remove();
    }
  });
});
