/**
 * The lint's house rules fire: a rule that silently stops resolving imports
 * would pass every file, so each rule is shown one violation it must report.
 * Sources are linted as text under real paths, against the real config.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ESLint } from 'eslint';
import { REPO_ROOT } from '../helpers/cli.js';

// Texts are not files of the TypeScript project, so the type-aware rules stay out.
const eslint = new ESLint({
  cwd: REPO_ROOT,
  overrideConfig: {
    languageOptions: { parserOptions: { projectService: false } },
    rules: { '@typescript-eslint/no-floating-promises': 'off', '@typescript-eslint/no-misused-promises': 'off' },
  },
});

async function problems(path: string, text: string): Promise<string[]> {
  const [result] = await eslint.lintText(text, { filePath: `${REPO_ROOT}${path}` });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

describe('lint house rules', () => {
  test('serving never imports control', async () => {
    const found = await problems('src/serving/probe.ts', "import { Gateway } from '../control/gateway.js';\nexport const g = Gateway;\n");
    assert.equal(found.length, 1, found.join('\n'));
    assert.match(found[0]!, /^import-x\/no-restricted-paths: .*serving \(floor \d\) must not import control/);
  });

  test('nothing below cli/ imports cli/', async () => {
    const found = await problems('src/control/probe.ts', "import { table } from '../cli/output.js';\nexport const t = table;\n");
    assert.match(found.join('\n'), /control \(floor \d\) must not import cli/);
  });

  test('a file placed on a lower floor than its folder is held to it', async () => {
    const found = await problems('src/config/types.ts', "import { readConfigFile } from './load.js';\nexport const l = readConfigFile;\n");
    assert.match(found.join('\n'), /base \(floor 0\) must not import model/);
  });

  test('a lower floor may be imported', async () => {
    const found = await problems('src/proxy/probe.ts', "import { GatewayError } from '../errors.js';\nexport const e = GatewayError;\n");
    assert.deepEqual(found, []);
  });

  test('an import cycle is reported', async () => {
    // config/defaults.ts imports ./schema.js (a value): schema.ts importing it back closes a cycle.
    const found = await problems('src/config/schema.ts', "import { defaultsAt } from './defaults.js';\nexport const d = defaultsAt;\n");
    assert.ok(found.some((f) => f.startsWith('import-x/no-cycle')), found.join('\n'));
  });

  test('private fields of Node and libraries are refused', async () => {
    const text = 'declare const s: { _httpMessage: unknown; parser: { incoming: unknown } };\nexport const a = s._httpMessage;\nexport const b = s.parser.incoming;\n';
    const found = await problems('src/proxy/probe.ts', text);
    assert.equal(found.filter((f) => f.startsWith('no-restricted-syntax')).length, 2, found.join('\n'));
  });
});

test("the README's layout names every folder under src/", () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const layout = readme.slice(readme.indexOf('### Layout'), readme.indexOf('\n## ', readme.indexOf('### Layout')));
  const folders = readdirSync(join(REPO_ROOT, 'src'), { withFileTypes: true }).filter((d) => d.isDirectory());
  assert.ok(folders.length > 10);
  for (const folder of folders) assert.ok(layout.includes(`\`${folder.name}/\``), `README Layout does not place src/${folder.name}/`);
});
