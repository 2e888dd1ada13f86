import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';

/**
 * The console under test: its assets built from ui/ into a directory of the test's own, and
 * Debian's Chromium driven headless through playwright-core (tests skip, saying why, without it).
 */

export const CHROMIUM = process.env.REBILL_CHROMIUM ?? '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);
if (!hasChromium)
  console.warn(
    `console browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set REBILL_CHROMIUM)`,
  );

/** The console's assets, built from ui/ into a new directory; `dispose` removes it. */
export async function buildConsole(): Promise<{ dir: string; dispose: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'rebill-ui-'));
  const { buildUi } = (await import('../../scripts/build.js' as string)) as {
    buildUi(outdir: string): Promise<string>;
  };
  return { dir: await buildUi(dir), dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Headless Chromium, as the console tests run it. */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Any console error or warning, uncaught exception, failed request or error answer of the page, as a line in `problems`. */
export function watchProblems(page: Page, problems: string[]): void {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
}

/** Where the README's screenshots live. */
export const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'docs', 'screenshots');

/**
 * A screenshot of the page for the README: always taken (so a page that cannot be drawn still
 * fails), and written to docs/screenshots/<name>.png only with REBILL_SCREENSHOTS=1, so a
 * test run never rewrites a committed picture with rendering noise. Regenerate them on purpose
 * after a page changed: `REBILL_SCREENSHOTS=1 npx vitest run test/http/console.test.ts`.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const png = await page.screenshot({ fullPage: true });
  if (process.env.REBILL_SCREENSHOTS !== '1') return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  writeFileSync(join(SCREENSHOTS, `${name}.png`), png);
}
