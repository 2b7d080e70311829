// Writes docs/console.png and docs/console-overview.png: the demo in the web
// console, taken with the real browser the tests use (Debian's chromium, or
// $GATEWAYCTL_CHROMIUM). Run after `npm run build`:
//   node scripts/console-screenshot.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startDemo } from '../dist/src/demo/run.js';
import { Logger } from '../dist/src/log/logger.js';

const docs = new URL('../docs/', import.meta.url);
const demo = await startDemo({ port: 0, adminPort: 0, logger: new Logger(() => undefined, 'error'), rate: 12 });
const profile = mkdtempSync(join(tmpdir(), 'gatewayctl-screenshot-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.GATEWAYCTL_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1440, height: 1200 },
});
try {
  // Let the baseline teach what is noise and the charts gather some points.
  await new Promise((resolve) => setTimeout(resolve, 25_000));
  const page = await browser.newPage();
  await page.goto(`${demo.consoleUrl}#overview`);
  await page.locator('#connection', { hasText: 'live' }).waitFor();
  await page.waitForTimeout(5000);
  await page.screenshot({ path: new URL('console-overview.png', docs).pathname });
  await page.click('nav button[data-tab="differences"]');
  await page.locator('tr.finding').first().click();
  await page.locator('#pair .jn.diff').first().waitFor();
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: new URL('console.png', docs).pathname });
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  await demo.close();
}
