/**
 * The web console's files: every one is served under the content-hash path
 * and shipped in the npm package (what `npm pack` would publish), and a
 * missing directory costs the page, not the gateway.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { CONSOLE_DIR, consoleRoutes, loadConsole } from '../../src/admin/routes/console.js';
import { REPO_ROOT } from '../helpers/cli.js';

describe('web console files', () => {
  test('every file is served under its version path; the page names that version', () => {
    const { version, page, assets } = loadConsole();
    assert.match(version, /^[0-9a-f]{12}$/);
    const files = readdirSync(CONSOLE_DIR).filter((f) => f !== 'index.html');
    assert.deepEqual([...assets.keys()].sort(), files.sort());
    const text = page.body.toString();
    assert.ok(!text.includes('{{version}}'));
    for (const ref of text.matchAll(/(?:src|href)="\/ui\/([0-9a-f]+)\/([^"]+)"/g)) {
      assert.equal(ref[1], version);
      assert.ok(assets.has(ref[2]!), ref[2]);
    }
    assert.ok(!/<script>|<style>|\son\w+=/i.test(text), 'no inline script, style or handlers');
  });

  test('the package ships them', () => {
    const [packed] = JSON.parse(
      execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    ) as { files: { path: string }[] }[];
    const shipped = new Set(packed!.files.map((f) => f.path));
    for (const file of readdirSync(CONSOLE_DIR)) assert.ok(shipped.has(`web/console/${file}`), `web/console/${file} is in the package`);
  });

  test('without its files the console still registers (and answers 503), so the gateway starts', () => {
    const routes = consoleRoutes('/nonexistent/console');
    assert.deepEqual(
      routes.map((r) => r.path),
      ['/ui', '/ui/'],
    );
  });
});
