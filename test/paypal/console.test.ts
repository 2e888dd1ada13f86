import type { Browser, Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { buildConsole, hasChromium, launchChromium, watchProblems } from '../support/console.ts';
import { loseNextAnswer, movePaypalAt, paypalAtSandbox, refundsSent } from '../support/paypal.ts';
import { startWorld, type World } from '../support/world.ts';

const TOKEN = 'paypal-console-token';
const NOW = new Date('2026-06-01T10:00:00Z');

describe.skipIf(!hasChromium)('PayPal payments in the console (headless Chromium)', () => {
  let w: World;
  let server: AdminServer;
  let url: string;
  let browser: Browser;
  let page: Page;
  let disposeAssets = () => {};
  const problems: string[] = [];
  /** Problems a step provoked on purpose: each pattern excuses one. */
  const expected: RegExp[] = [];

  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN } });
    const app = await w.app(NOW);
    const assets = await buildConsole();
    disposeAssets = assets.dispose;
    server = await createAdminServer({ ctx: app, runner: createRunner(app), consoleAssets: assets.dir });
    url = await server.listen('127.0.0.1:0');
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    watchProblems(page, problems);
    await page.goto(`${url}/ui`);
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await w?.close();
    disposeAssets();
  });

  /** A payment at the sandbox, tracked through the API (the console tracks nothing itself). */
  async function track(amount: number, extra: Record<string, unknown> = {}, lastEvent?: 'authorized') {
    const s = await paypalAtSandbox(w, { amount, ...(lastEvent ? { lastEvent } : {}) });
    const res = await request(`${url}/v1/paypal-payments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        eventsLink: s.eventsLink,
        amount,
        currency: 'GBP',
        customerRef: 'console-pp',
        ...extra,
      }),
    });
    const body = (await res.body.json()) as { id: number };
    expect(res.statusCode).toBe(201);
    return { ...s, id: body.id };
  }

  /** Click an action's button, fill its dialog's amount if asked, confirm, and wait for the page to settle. */
  async function act(label: string, amount?: string) {
    await page.getByRole('button', { name: label, exact: true }).click();
    const dialog = page.getByRole('dialog');
    if (amount !== undefined) await dialog.getByLabel('Amount (GBP)').fill(amount);
    await dialog.getByRole('button', { name: label, exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
  }

  const refundRows = () => page.getByRole('region', { name: 'Refunds' }).locator('tbody tr');
  const alertText = async () => {
    const alert = page.getByRole('alert');
    await alert.waitFor();
    return alert.textContent();
  };

  it('lists PayPal payments, on their own page and on the mandate they were tracked on', async () => {
    const v = await w.verify();
    const m = await createMandate(await w.app(NOW), {
      customerRef: 'console-pp',
      intent: 'subscription',
      amount: 5000,
      currency: 'GBP',
      narrative: 'PayPal console',
      interval: '1 month',
      start: NOW,
      credential: { link: v.href },
    });
    const a = await track(5000, { mandateId: m.id });
    await page.getByRole('link', { name: 'PayPal', exact: true }).click();
    await page.getByRole('heading', { name: 'PayPal payments' }).waitFor();
    const list = page.getByRole('region', { name: 'PayPal payments' });
    await list.getByRole('link', { name: `PayPal #${a.id}` }).waitFor();
    expect(await list.textContent()).toContain('50.00 GBP');

    await page.goto(`${url}/ui/mandates/${m.id}`);
    const onMandate = page.getByRole('region', { name: `PayPal payments of mandate ${m.id}` });
    await onMandate.getByRole('link', { name: `PayPal #${a.id}` }).click();
    await page.getByRole('heading', { name: `PayPal #${a.id}` }).waitFor();
  });

  it('two partial refunds each reach Worldpay once; a third over what is left is refused with its sentence', async () => {
    const a = await track(5000);
    await page.goto(`${url}/ui/paypal/${a.id}`);
    await page.getByRole('heading', { name: `PayPal #${a.id}` }).waitFor();
    await act('Partial refund', '10.00');
    await refundRows().nth(0).waitFor();
    await act('Partial refund', '15.00');
    await refundRows().nth(1).waitFor();
    expect(await page.locator('dl.facts').textContent()).toContain('Left25.00 GBP');
    await act('Partial refund', '25.01');
    expect(await alertText()).toMatch(
      /refunding 25\.01 GBP would exceed what is left, 25\.00 GBP of 50\.00 GBP/,
    );
    const sent = refundsSent(w, a.paymentId);
    expect(sent.map((e) => e.amount)).toEqual([1000, 1500]);
    expect(new Set(sent.map((e) => e.reference)).size).toBe(2);
    expected.push(/^HTTP 409: POST .*\/partial-refund$/, /^console error: Failed to load resource: .* 409/);
  });

  it('refuses a refund while the payment is authorized, and refunds it once the sandbox moves it on', async () => {
    const b = await track(2000, {}, 'authorized');
    await page.goto(`${url}/ui/paypal/${b.id}`);
    await page.getByRole('heading', { name: `PayPal #${b.id}` }).waitFor();
    await act('Refund');
    expect(await alertText()).toMatch(/latest event is authorized; a refund needs sentForSettlement/);
    expect(refundsSent(w, b.paymentId)).toEqual([]);
    expected.push(/^HTTP 409: POST .*\/refund$/, /^console error: Failed to load resource: .* 409/);

    await movePaypalAt(w, b.eventsLink, 'sentForSettlement');
    await page.reload();
    await page.getByRole('heading', { name: `PayPal #${b.id}` }).waitFor();
    await act('Refund');
    await refundRows().nth(0).waitFor();
    expect(await refundRows().nth(0).textContent()).toContain('accepted');
    expect(refundsSent(w, b.paymentId)).toHaveLength(1);
  });

  it('a refund whose answer is lost is sent once, however often the operator clicks', async () => {
    const c = await track(3000);
    await loseNextAnswer(w, c.paymentId, 'refund');
    await page.goto(`${url}/ui/paypal/${c.id}`);
    await page.getByRole('heading', { name: `PayPal #${c.id}` }).waitFor();
    await act('Refund');
    // The answer was lost; the page, reloaded, asked Worldpay: the refund happened, recorded once.
    await refundRows().nth(0).waitFor();
    await page.getByRole('region', { name: 'Refunds' }).getByText('accepted').waitFor();
    await act('Refund');
    expect(await alertText()).toMatch(/latest event is sentForRefund/);
    expected.push(/^HTTP 409: POST .*\/refund$/, /^console error: Failed to load resource: .* 409/);
    await page.reload();
    await page.getByRole('heading', { name: `PayPal #${c.id}` }).waitFor();
    await act('Refund');
    await page.getByRole('alert').waitFor();
    expected.push(/^HTTP 409: POST .*\/refund$/, /^console error: Failed to load resource: .* 409/);
    expect(refundsSent(w, c.paymentId).map((e) => e.responseLost)).toEqual([true]);
    expect(refundsSent(w, c.paymentId)).toHaveLength(1);
  });

  it('the page had no console error, page error or failed request but those provoked on purpose', () => {
    const left = problems.filter((p) => {
      const i = expected.findIndex((re) => re.test(p));
      if (i < 0) return true;
      expected.splice(i, 1);
      return false;
    });
    expect(left).toEqual([]);
  });
});
