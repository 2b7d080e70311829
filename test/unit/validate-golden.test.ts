/**
 * Golden files: each test/fixtures/validate/NAME.yaml is run through the real
 * `gatewayctl validate`; its exit status and stdout must equal NAME.expected.
 * UPDATE_GOLDEN=1 writes the expected files; without it a missing one
 * fails, so a new fixture cannot pass on a result nobody has read.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT, runCli } from '../helpers/cli.js';

const DIR = 'test/fixtures/validate';
const fixtures = readdirSync(join(REPO_ROOT, DIR)).filter((f) => f.endsWith('.yaml')).sort();

describe('validate golden files', () => {
  test('there are at least 15 kinds of broken config', () => {
    const broken = fixtures.filter((f) => readExpected(f)?.startsWith('exit: 1'));
    assert.ok(broken.length >= 15, `only ${broken.length} broken fixtures`);
  });

  for (const fixture of fixtures) {
    test(fixture, async () => {
      const started = Date.now();
      const result = await runCli(['validate', '--no-frame', '-c', `${DIR}/${fixture}`]);
      assert.ok(Date.now() - started < 5000, 'validate must answer quickly');
      assert.equal(result.signal, null);
      const actual = `exit: ${result.code}\n${result.stdout}`;
      const expectedFile = join(REPO_ROOT, DIR, fixture.replace(/\.yaml$/, '.expected'));
      if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(expectedFile, actual);
      const expected = readExpected(fixture);
      assert.ok(expected !== undefined, `${DIR}/${fixture}: no expected file; write it with UPDATE_GOLDEN=1 and review it`);
      assert.equal(actual, expected);
      // Every problem line is compiler-style with a real position.
      for (const line of result.stdout.split('\n').filter(Boolean)) {
        assert.match(line, /^test\/fixtures\/validate\/[\w.-]+\.yaml:\d+:\d+: (error|warning): \S/);
      }
    });
  }
});

function readExpected(fixture: string): string | undefined {
  const file = join(REPO_ROOT, DIR, fixture.replace(/\.yaml$/, '.expected'));
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}
