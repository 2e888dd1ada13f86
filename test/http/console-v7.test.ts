import type { Browser, Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRunner } from '../../src/billing/run/runner.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { buildConsole, hasChromium, launchChromium, watchProblems } from '../support/console.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * The console's mandate page names the Worldpay card API a mandate's credential is charged
 * through, and a v7 credential's scheme reference with its trailing spaces visible (real
 * Chromium against the server over loopback).
 */
const TOKEN = 'console-v7-token';
const PAN = '4444333322221111';

describe.skipIf(!hasChromium)('console: a v7 mandate', () => {
  let w: World;
  let server: AdminServer;
  let url: string;
  let browser: Browser;
  let page: Page;
  let dispose = () => {};
  const problems: string[] = [];
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN } });
    const app = await w.app(new Date('2027-06-01T09:00:00Z'));
    const assets = await buildConsole();
    dispose = assets.dispose;
    server = await createAdminServer({ ctx: app, runner: createRunner(app), consoleAssets: assets.dir });
    url = await server.listen('127.0.0.1:0');
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage();
    watchProblems(page, problems);
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await w?.close();
    dispose();
  });

  const create = async (credential: unknown) => {
    const res = await request(`${url}/v1/mandates`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        customerRef: `console-v7-${Math.random().toString(36).slice(2)}`,
        intent: 'subscription',
        amount: 1999,
        currency: 'GBP',
        narrative: 'Console v7',
        interval: '1 month',
        credential,
      }),
    });
    const body = (await res.body.json()) as { id: number };
    expect(res.statusCode, JSON.stringify(body)).toBe(201);
    return body.id;
  };
  const facts = async (id: number) => {
    await page.goto(`${url}/ui/mandates/${id}`);
    await page.getByRole('heading', { name: `Mandate #${id}` }).waitFor();
    return page.locator('.facts').textContent();
  };

  it('shows "Worldpay v7 · scheme reference" with the reference as stored, and v6 for a link', {
    timeout: 180_000,
  }, async () => {
    await page.goto(`${url}/ui`);
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // the overview's figures are drawn once all its requests have answered: leaving before would
    // abort them, which the page-problems check below counts
    await page.getByLabel('Book').waitFor();

    const v7 = await create({
      api: 'v7',
      schemeReference: 'MCCOLXT1C0104  ',
      card: { number: PAN, expiryMonth: 12, expiryYear: 2030 },
    });
    const shown = await facts(v7);
    expect(shown).toContain('Worldpay v7 · scheme reference "MCCOLXT1C0104  "');
    expect(shown).not.toContain(PAN);

    const v6 = await create({ link: (await w.verify()).href });
    const v6Shown = await facts(v6);
    expect(v6Shown).toContain('Worldpay v6');
    expect(v6Shown).not.toContain('scheme reference');
    expect(problems).toEqual([]);
  });
});
