/**
 * A real browser for tests: Debian's chromium (or $GATEWAYCTL_CHROMIUM),
 * headless, driven by playwright-core, with a fresh profile each launch.
 */
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { tempDir } from './gateway.js';

export const CHROMIUM = process.env['GATEWAYCTL_CHROMIUM'] ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  readonly context: BrowserContext;
  /** A new tab; its console errors and uncaught exceptions are collected in `errors`. */
  page(options?: { colorScheme?: 'light' | 'dark' }): Promise<{ page: Page; errors: string[] }>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (.ci/run does) or set $GATEWAYCTL_CHROMIUM`);
  const profile = tempDir('gatewayctl-browser-');
  // The profile directory goes through Playwright's own option, which passes --user-data-dir.
  const context = await chromium.launchPersistentContext(profile.dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1440, height: 900 },
  });
  return {
    context,
    async page(options = {}) {
      const page = await context.newPage();
      if (options.colorScheme) await page.emulateMedia({ colorScheme: options.colorScheme });
      const errors: string[] = [];
      page.on('console', (m: ConsoleMessage) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
      return { page, errors };
    },
    async close() {
      await context.close();
      profile.remove();
    },
  };
}

/**
 * How much of a PNG is not its most common colour, and how many colours it
 * has, measured by decoding it in the browser (a canvas in a blank tab).
 */
export async function pngInk(browser: TestBrowser, png: Buffer): Promise<{ width: number; height: number; colours: number; inkShare: number }> {
  const page = await browser.context.newPage();
  try {
    // Runs in the page: written as source, since this project compiles without DOM types.
    return (await page.evaluate(`(async (dataUrl) => {
      const image = new Image();
      image.src = dataUrl;
      await image.decode();
      const canvas = document.createElement('canvas');
      canvas.width = image.width;
      canvas.height = image.height;
      const g = canvas.getContext('2d');
      g.drawImage(image, 0, 0);
      const data = g.getImageData(0, 0, image.width, image.height).data;
      const counts = new Map();
      for (let i = 0; i < data.length; i += 4) {
        const rgb = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
        counts.set(rgb, (counts.get(rgb) ?? 0) + 1);
      }
      const pixels = data.length / 4;
      const background = Math.max(...counts.values());
      return { width: image.width, height: image.height, colours: counts.size, inkShare: (pixels - background) / pixels };
    })(${JSON.stringify(`data:image/png;base64,${png.toString('base64')}`)})`)) as { width: number; height: number; colours: number; inkShare: number };
  } finally {
    await page.close();
  }
}
