#!/usr/bin/env node
// Start-up of the single-file binary (dist/gatewayctl, from npm run
// build:binary) against the source tree (node bin/gatewayctl), measured side
// by side in one run: `--version` and `validate` of the starter config,
// alternating the two, reported as medians and their ratio, with the file
// size. Usage: npm run bench:binary [-- --runs N]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const runsFlag = process.argv.indexOf('--runs');
const runs = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 15;
const binary = join(root, 'dist/gatewayctl');
const dir = mkdtempSync(join(tmpdir(), 'gatewayctl-startup-'));

const variants = {
  binary: (args) => [binary, args],
  source: (args) => [process.execPath, [join(root, 'bin/gatewayctl'), ...args]],
};
const commands = { version: ['--version'], validate: ['validate', '-c', 'gateway.yaml'] };

function timeOnce([file, args]) {
  const started = process.hrtime.bigint();
  const result = spawnSync(file, args, { cwd: dir, stdio: 'ignore', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`${file} ${args.join(' ')} exited ${result.status}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  execFileSync(binary, ['init'], { cwd: dir, stdio: 'ignore' });
  const rows = [];
  for (const [name, args] of Object.entries(commands)) {
    const times = { binary: [], source: [] };
    for (const v of Object.keys(variants)) timeOnce(variants[v](args)); // warm the page cache
    for (let i = 0; i < runs; i++) for (const v of Object.keys(variants)) times[v].push(timeOnce(variants[v](args)));
    const b = median(times.binary);
    const s = median(times.source);
    rows.push(`${name.padEnd(9)} binary ${b.toFixed(0).padStart(5)} ms   source ${s.toFixed(0).padStart(5)} ms   binary/source ${(b / s).toFixed(2)}`);
  }
  console.log(`dist/gatewayctl: ${(statSync(binary).size / 1e6).toFixed(1)} MB; medians of ${runs} runs each, alternating`);
  for (const row of rows) console.log(row);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
