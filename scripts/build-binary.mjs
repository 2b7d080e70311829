#!/usr/bin/env node
// Builds dist/gatewayctl, a single-file executable: Node's single executable
// applications (SEA) run one CommonJS script, so esbuild bundles the CLI and
// its dependencies into one, with the files `demo`, `version` and the web
// console need embedded; Node makes the preparation blob and postject injects it into a
// copy of this node binary. Linux and other ELF hosts; macOS would also need
// the signature removed and re-added (codesign), Windows signtool.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = join(root, 'dist/sea');
const bundle = join(work, 'gatewayctl.cjs');
const blob = join(work, 'gatewayctl.blob');
const output = join(root, 'dist/gatewayctl');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// Reloads validate in a worker thread, which a binary cannot start from a
// file: its code is bundled on its own and carried as text.
/** What both bundles share: CommonJS for Node 20, import.meta.url made from the bundle's own file. */
const bundling = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // The sources are ES modules reading import.meta.url; in the bundle it is
  // the executable's own URL (SEA sets __filename to it).
  define: { 'import.meta.url': '__gatewayctlUrl' },
  banner: { js: 'const __gatewayctlUrl = require("node:url").pathToFileURL(__filename).href;' },
  legalComments: 'none',
  logLevel: 'warning',
};
const worker = await build({ ...bundling, entryPoints: [join(root, 'src/config/validate-worker.ts')], write: false });
const shadowWorker = await build({ ...bundling, entryPoints: [join(root, 'src/shadow/shadow-thread.ts')], write: false });
const embedded = {
  version: pkg.version,
  demoConfig: readFileSync(join(root, 'config/demo.yaml'), 'utf8'),
  consoleFiles: Object.fromEntries(readdirSync(join(root, 'web/console')).map((name) => [name, readFileSync(join(root, 'web/console', name), 'utf8')])),
  validateWorker: worker.outputFiles[0].text,
  shadowWorker: shadowWorker.outputFiles[0].text,
};

/**
 * Replaces src/embedded.ts with the files' text, and answers the optional
 * require('supports-color') of `debug` (inside a try, so esbuild leaves it to
 * run time, where SEA's require warns that it only loads built-in modules).
 */
const embedFiles = {
  name: 'embed-files',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/]embedded\.ts$/ }, () => ({
      contents: `export const EMBEDDED = ${JSON.stringify(embedded)};`,
      loader: 'js',
    }));
    b.onResolve({ filter: /^supports-color$/ }, () => ({ path: 'supports-color', namespace: 'absent' }));
    b.onLoad({ filter: /.*/, namespace: 'absent' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

const started = Date.now();
await build({ ...bundling, entryPoints: [join(root, 'src/cli/binary-main.ts')], outfile: bundle, plugins: [embedFiles] });

writeFileSync(
  join(work, 'sea-config.json'),
  JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }, null, 2),
);
execFileSync(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: 'inherit' });

rmSync(output, { force: true });
copyFileSync(process.execPath, output);
chmodSync(output, 0o755);
const postject = join(root, 'node_modules/postject/dist/cli.js');
try {
  // postject's ELF library warns about unnamed note sections; only failures matter.
  execFileSync(process.execPath, [postject, output, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE], { stdio: 'pipe' });
} catch (err) {
  process.stderr.write(`${err.stderr ?? ''}${err.stdout ?? ''}`);
  throw err;
}

const mb = (file) => (statSync(file).size / 1e6).toFixed(1);
process.stdout.write(
  `dist/gatewayctl: ${mb(output)} MB (node ${process.version} ${mb(process.execPath)} MB + bundle ${mb(bundle)} MB), built in ${((Date.now() - started) / 1000).toFixed(1)}s\n`,
);
