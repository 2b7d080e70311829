/**
 * `gatewayctl demo` from a user's seat: live diffs (the checkout's call difference
 * too) within 30 seconds, one charge per checkout, and
 * Ctrl-C leaves nothing running.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { describe, test } from 'node:test';
import { BIN, REPO_ROOT } from '../helpers/cli.js';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

describe('gatewayctl demo', () => {
  test('shows live diffs within 30 seconds and stops cleanly on Ctrl-C', async () => {
    const child = spawn(process.execPath, [BIN, 'demo', '--port', '0', '--admin-port', '0', '--rate', '20'], {
      cwd: REPO_ROOT,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const started = Date.now();
    try {
      const seen = () =>
        /\/hits\/0\/title: \(absent\) → "|status: 200 → 500/.test(out) &&
        /call payments POST \/charges \/amount: "10\.00" → "12\.00"/.test(out) &&
        /checkout: [1-9]\d* checkouts, the payment provider received \d+ charges/.test(out);
      while (!seen()) {
        if (Date.now() - started > 30_000) throw new Error(`no diff shown in 30 s\nstdout:\n${out}\nstderr:\n${err}`);
        if (child.exitCode !== null) throw new Error(`demo exited early\n${out}\n${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(out, /products\s+GET \/api\/products\s+→ shop-v1 80% · shop-v2 20% \(sticky by x-user-id\)/);
      assert.match(out, /curl -s http:\/\/127\.0\.0\.1:\d+\/api\/products\/1/);
      assert.match(out, /masked as noise/, 'the baseline cancels ids and timestamps');
      // One charge per checkout (a few may be in flight when counted): the dark v2 charged nobody.
      const [, checkouts, charges] = /checkout: (\d+) checkouts, the payment provider received (\d+) charges/.exec(out)!.map(Number);
      assert.ok(charges! >= checkouts! && charges! <= checkouts! + 10, `${checkouts} checkouts, ${charges} charges`);
      assert.doesNotMatch(out, /\/meta\/requestId|\/meta\/generatedAt/, 'noise is never shown as a difference');
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0);
    // config/demo.yaml's ports, or free ones when another demo holds those.
    const ports = out.match(/three shop services on (\d+), (\d+), (\d+)/)!.slice(1).map(Number);
    for (const port of ports) assert.ok(await portFree(port), `port ${port} freed`);
  });
});
