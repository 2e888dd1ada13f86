import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';

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
