import { readFileSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordDispute } from '../../src/billing/disputes/record.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { type ChargeAction, type ChargeStanding, chargeActions } from '../../src/domain/charge-actions.ts';
import { RUN_COUNT_LABELS } from '../../src/domain/labels.ts';
import { CONSOLE_CSP } from '../../src/http/console.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { MEANING } from '../../ui/src/meaning.ts';
import {
  buildConsole as buildAssets,
  hasChromium,
  launchChromium,
  screenshot,
  watchProblems,
} from '../support/console.ts';
import { DAY } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

const TOKEN = 'console-test-token';
// Browser-side code is given as strings: this project's TypeScript has no DOM types.
/**
 * A canvas read once (a second read makes Chromium warn): how many pixels are not transparent,
 * and how many are exactly each colour given (a bar's inside, not its antialiased edge).
 */
const canvasPixels = (selector: string, colours: string[] = []) => `(() => {
  const want = ${JSON.stringify(colours)}.map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const c = document.querySelector(${JSON.stringify(selector)});
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  const byColour = want.map(() => 0);
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0) painted++;
    want.forEach(([r, g, b], k) => {
      if (d[i] === r && d[i + 1] === g && d[i + 2] === b && d[i + 3] === 255) byColour[k]++;
    });
  }
  return { painted, byColour };
})()`;

const built: (() => void)[] = [];
afterAll(() => {
  for (const dispose of built) dispose();
});

/** The console's assets, built from ui/ into a directory of this file's own. */
async function buildConsole(): Promise<string> {
  const { dir, dispose } = await buildAssets();
  built.push(dispose);
  return dir;
}

/**
 * A scripted dunning story, run day by day before the console opens:
 *  story-51: refused 51, authorized on attempt 2 (recovered);
 *  story-05: refused 05 (do not honour), then authorized;
 *  story-33: refused 33 (expired card): waits for a new card;
 *  story-ok: authorized first time.
 */
async function story(w: World, t0: Date) {
  const app = await w.app(t0);
  const make = async (ref: string, amount: number, codes: string[]) => {
    const v = await w.verify();
    if (codes.length > 0)
      w.sandbox.script({
        match: { chainId: v.chainId },
        outcomes: codes.map((code) => ({ type: 'refuse' as const, code })),
      });
    const { createMandate } = await import('../../src/billing/mandates/index.ts');
    return createMandate(app, {
      customerRef: ref,
      intent: 'subscription',
      amount,
      currency: 'GBP',
      narrative: 'Console story',
      interval: '1 month',
      start: t0,
      credential: { link: v.href },
    });
  };
  await make('story-51', 1000, ['51']);
  await make('story-05', 2000, ['05']);
  await make('story-33', 3000, ['33']);
  await make('story-ok', 2999, []);
  for (let d = 0; d < 10; d++) {
    const at = new Date(t0.getTime() + d * DAY + 3_600_000);
    await runBilling(await w.app(at), { asOf: at, trigger: 'test' });
  }
}

describe('console over HTTP: sessions, CSRF, headers', () => {
  let w: World;
  let server: AdminServer;
  let url: string;
  const t0 = new Date('2027-06-01T09:00:00Z');
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN } });
    const app = await w.app(t0);
    server = await createAdminServer({
      ctx: app,
      runner: createRunner(app),
      consoleAssets: await buildConsole(),
    });
    url = await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    await server?.close();
    await w?.close();
  });

  const signIn = async (token = TOKEN) => {
    const res = await request(`${url}/ui/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    const body = (await res.body.json()) as { csrfToken?: string; error?: { code: string; message: string } };
    const cookie = String(res.headers['set-cookie'] ?? '');
    return { status: res.statusCode, body, cookie, value: /rebill_session=([^;]*)/.exec(cookie)?.[1] ?? '' };
  };

  it('serves the app shell with a strict CSP and its bundled assets, nothing from elsewhere', async () => {
    const res = await request(`${url}/ui/mandates/7`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(res.headers['x-frame-options']).toBe('DENY');
    const html = await res.body.text();
    expect(html).toContain('/ui/assets/app.js');
    expect(html).not.toMatch(/https?:\/\//);
    const js = await request(`${url}/ui/assets/app.js`);
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
    expect((await js.body.text()).length).toBeGreaterThan(10_000);
    const missing = await request(`${url}/ui/assets/nope.js`);
    expect(missing.statusCode).toBe(404);
    await missing.body.text();
  });

  it('a token buys an HttpOnly SameSite=Strict cookie with an expiry; a wrong token buys nothing', async () => {
    const bad = await signIn('wrong');
    expect(bad.status).toBe(403);
    expect(bad.body).toMatchObject({ error: { code: 'forbidden', message: 'the admin token is not valid' } });
    expect(bad.cookie).toBe('');
    const ok = await signIn();
    expect(ok.status).toBe(201);
    expect(ok.cookie).toMatch(/HttpOnly/);
    expect(ok.cookie).toMatch(/SameSite=Strict/);
    expect(ok.cookie).toMatch(/Max-Age=28800/);
    expect(ok.cookie).not.toContain(TOKEN);
    expect(ok.body.csrfToken).toMatch(/^[\w-]{20,}$/);
  });

  it('the cookie reads the API; a change needs the CSRF token; signing out ends the session', async () => {
    const s = await signIn();
    const cookie = `rebill_session=${s.value}`;
    const list = await request(`${url}/v1/mandates`, { headers: { cookie } });
    expect(list.statusCode).toBe(200);
    await list.body.json();
    const v = await w.verify();
    const create = (headers: Record<string, string>) =>
      request(`${url}/v1/mandates`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie, ...headers },
        body: JSON.stringify({
          customerRef: 'csrf-1',
          intent: 'subscription',
          amount: 500,
          currency: 'GBP',
          narrative: 'CSRF',
          interval: '1 month',
          start: t0.toISOString(),
          credential: { link: v.href },
        }),
      });
    const forged = await create({});
    expect(forged.statusCode).toBe(403);
    expect(((await forged.body.json()) as { error: { code: string } }).error.code).toBe('csrf');
    const wrong = await create({ 'x-csrf-token': 'not-it' });
    expect(wrong.statusCode).toBe(403);
    await wrong.body.text();
    const made = await create({ 'x-csrf-token': s.body.csrfToken! });
    expect(made.statusCode).toBe(201);
    await made.body.json();

    const end = await request(`${url}/ui/session/end`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': s.body.csrfToken! },
      body: '{}',
    });
    expect(end.statusCode).toBe(204);
    expect(String(end.headers['set-cookie'])).toMatch(/Max-Age=0/);
    const after = await request(`${url}/v1/mandates`, { headers: { cookie } });
    expect(after.statusCode).toBe(401);
    await after.body.text();
    const state = await request(`${url}/ui/session`, { headers: { cookie } });
    expect(await state.body.json()).toEqual({ signedIn: false });
  });
});

describe.skipIf(!hasChromium)('console in headless Chromium', () => {
  let w: World;
  let server: AdminServer;
  let url: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  /** Problems a step provoked on purpose: each pattern excuses one. */
  const expected: RegExp[] = [];
  const t0 = new Date('2027-06-01T09:00:00Z');

  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN } });
    await story(w, t0);
    const app = await w.app(new Date(t0.getTime() + 12 * DAY));
    server = await createAdminServer({
      ctx: app,
      runner: createRunner(app),
      consoleAssets: await buildConsole(),
    });
    url = await server.listen('127.0.0.1:0');
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    // Any console error, uncaught exception, failed request or error answer fails the test.
    watchProblems(page, problems);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await w?.close();
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await request(`${url}${path}`, {
      method: method as 'GET',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  };

  it('signs in with the keyboard alone', async () => {
    await page.goto(`${url}/ui`);
    await page.getByLabel('Admin token').waitFor();
    // the token field has the focus on arrival; Enter submits
    expect(await page.evaluate("document.activeElement?.getAttribute('name')")).toBe('token');
    await page.keyboard.type(TOKEN);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // the overview's figures are shown once all its requests have answered
    await page.getByLabel('Book').waitFor();
    await page.keyboard.press('Tab');
    const focused = await page.evaluate('document.activeElement?.textContent');
    expect(focused).toBe('rebill');
  });

  it('shows the scripted story: figures, and the refusals chart with its codes', async () => {
    await page.goto(`${url}/ui?from=2027-06-01&to=2027-07-01`);
    const refusals = page.locator('#chart-refusals');
    await refusals.locator('canvas').waitFor();
    const labels = await Promise.all(
      (await refusals.locator('tbody tr').all()).map((row) => row.locator('th, td').allTextContents()),
    );
    // refused and recovered per first refusal code, from the script above
    expect(labels).toEqual(
      expect.arrayContaining([
        ['51', '1', '1'],
        ['05', '1', '1'],
        ['33', '1', '0'],
      ]),
    );
    expect(labels).toHaveLength(3);
    // the canvas was drawn on: some pixels are not transparent
    const { refused, recovered, authorized } = MEANING as Record<string, string>;
    const refusalBars = await page.evaluate<{ painted: number; byColour: number[] }>(
      canvasPixels('#chart-refusals canvas', [refused!, recovered!, authorized!]),
    );
    expect(refusalBars.painted).toBeGreaterThan(500);
    // colours by meaning: refused bars red, recovered green, whatever the series' order
    expect(refusalBars.byColour[0]).toBeGreaterThan(100);
    expect(refusalBars.byColour[1]).toBeGreaterThan(100);
    expect(refusalBars.byColour[2]).toBe(0);
    const dailyBars = await page.evaluate<{ byColour: number[] }>(
      canvasPixels('#chart-daily canvas', [authorized!, refused!]),
    );
    expect(dailyBars.byColour[0]).toBeGreaterThan(100);
    expect(dailyBars.byColour[1]).toBeGreaterThan(100);
    const gbp = page.getByLabel('Figures in GBP');
    const figures = await gbp.textContent();
    expect(figures).toContain('3 · 59.99 GBP'); // charged: 10.00 + 20.00 + 29.99
    expect(figures).toContain('2 · 30.00 GBP'); // recovered by retry: 10.00 + 20.00
    // refunds and the net, as the summary report gives them
    const report = (await api('GET', '/v1/reports/summary?from=2027-06-01&to=2027-07-01&currency=GBP'))
      .body as { currencies: { refundedAmount: number; netAmount: number }[] };
    const summary = report.currencies[0]!;
    const figure = async (term: string) =>
      (await gbp
        .locator('dt', { hasText: new RegExp(`^${term}$`) })
        .locator('xpath=following-sibling::dd[1]')
        .textContent())!;
    expect(await figure('Refunded')).toBe(`${(summary.refundedAmount / 100).toFixed(2)} GBP`);
    expect(await figure('Net of refunds')).toBe(`${(summary.netAmount / 100).toFixed(2)} GBP`);
    // the next 30 days from the server's clock (June 13th): the three active mandates on July 1st
    expect(await page.getByLabel('Book').textContent()).toContain('Next 30 days59.99 GBP');
    await screenshot(page, 'overview');
  });

  it('shows a mandate created through the API, and pauses it', async () => {
    const v = await w.verify();
    const created = await api('POST', '/v1/mandates', {
      customerRef: 'console-new',
      intent: 'subscription',
      amount: 1250,
      currency: 'GBP',
      narrative: 'Console new',
      interval: '1 month',
      start: '2027-07-01T09:00:00Z',
      credential: { link: v.href },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    await page.getByRole('link', { name: 'Mandates', exact: true }).click();
    await page.getByRole('heading', { name: 'Mandates' }).waitFor();
    await page.getByLabel('Customer starts with').fill('console-new');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('link', { name: `#${id}` }).click();
    await page.getByRole('heading', { name: `Mandate #${id}` }).waitFor();
    expect(await page.locator('h1 .badge').textContent()).toBe('active');
    expect(await page.locator('.facts').textContent()).toContain('12.50 GBP');
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Pause' }).click();
    await page.locator('h1 .badge', { hasText: 'paused' }).waitFor();
    expect(await page.getByRole('status').textContent()).toContain(`Mandate ${id} paused`);
    // no date beside "Nothing planned": a paused mandate has no next due
    expect(await page.locator('.facts').textContent()).toContain('Next duenothing while paused');
    await page.getByText('Nothing planned.').waitFor();
    expect((await api('GET', `/v1/mandates/${id}`)).body.status).toBe('paused');
  });

  it("shows a mandate's charges with each dunning decision's sentence", async () => {
    await page.goto(`${url}/ui/mandates/1`);
    await page.getByRole('heading', { name: 'Mandate #1' }).waitFor();
    const attempts = await page.getByRole('region', { name: /^Attempts of charge/ }).textContent();
    expect(attempts).toContain('51');
    expect(attempts).toMatch(/soft decline, retry 1 of \d+/);
    expect(await page.getByRole('list', { name: 'Link chain' }).locator('li').count()).toBeGreaterThanOrEqual(
      2,
    );
    await screenshot(page, 'mandate');
  });

  it('shows a refusal in plain words and major units, above the page, the button row intact', async () => {
    const [charge] = (await api('GET', '/v1/charges?state=settling')).body.items as {
      id: number;
      amount: number;
    }[];
    await page.goto(`${url}/ui/charges/${charge!.id}`);
    await page.getByRole('heading', { name: `Charge #${charge!.id}` }).waitFor();
    const row = page.locator('.actions > .action > button');
    // each button's top, from the row's own top: one line of buttons
    const tops = async () => {
      const y = (await page.locator('.actions').boundingBox())!.y;
      return Promise.all((await row.all()).map(async (b) => (await b.boundingBox())!.y - y));
    };
    const height = async () => (await page.locator('.actions').boundingBox())!.height;
    const before = await tops();
    const tall = await height();
    await page.getByRole('button', { name: 'Partial refund' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Amount (GBP)').fill('999.00');
    await dialog.getByRole('button', { name: 'Partial refund' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    const said = (await alert.locator('span').textContent()) ?? '';
    expect(said).toMatch(/^charge \d+: refunding 999\.00 GBP would exceed the settled \d+\.\d\d GBP/);
    expect(said).not.toMatch(/\b99900\b/);
    // the sentence is not inside the row of buttons, and the row did not move or wrap
    expect(await page.locator('.actions [role=alert]').count()).toBe(0);
    const after = await tops();
    expect(after).toEqual(before);
    expect(new Set(after).size).toBe(1);
    expect(await height()).toBe(tall);
    // the refusal is the answer this step asks for, not a problem of the page
    expected.push(
      /^HTTP 4\d\d: POST .*\/partial-refund$/,
      /^console error: Failed to load resource: .* 4\d\d/,
    );
  });

  it('offers on each charge exactly the actions its state allows, and the server refuses the others', async () => {
    const ACTIONS: Record<ChargeAction, { label: string; path: string; body: unknown }> = {
      retryNow: { label: 'Retry now', path: 'retry-now', body: {} },
      settle: { label: 'Settle', path: 'settle', body: {} },
      partialSettle: { label: 'Partial settle', path: 'partial-settle', body: { amount: 1 } },
      cancel: { label: 'Cancel', path: 'cancel', body: {} },
      refund: { label: 'Refund', path: 'refund', body: {} },
      partialRefund: { label: 'Partial refund', path: 'partial-refund', body: { amount: 1 } },
      reversal: { label: 'Reverse', path: 'reversal', body: {} },
    };
    /** The console's buttons on a charge's page, checked against the table and the server. */
    const check = async (id: number, state: string) => {
      const c = (await api('GET', `/v1/charges/${id}`)).body as unknown as ChargeStanding & {
        mandateId: number;
      };
      expect(c.state).toBe(state);
      const m = (await api('GET', `/v1/mandates/${c.mandateId}`)).body as {
        status: string;
        credential: { status: string };
      };
      const offered = chargeActions(c, { status: m.status, credentialStatus: m.credential.status });
      await page.goto(`${url}/ui/charges/${id}`);
      await page.getByRole('heading', { name: `Charge #${id}` }).waitFor();
      const buttons = await page.locator('.actions > .action > button').allTextContents();
      expect(buttons).toEqual(offered.map((a) => ACTIONS[a].label));
      for (const a of Object.keys(ACTIONS) as ChargeAction[]) {
        if (offered.includes(a)) continue;
        const res = await api('POST', `/v1/charges/${id}/${ACTIONS[a].path}`, ACTIONS[a].body);
        expect([a, res.status]).toEqual([a, 409]);
      }
      return buttons;
    };
    // the story's first charges are settling: the settle accepted, its settled event not yet asked for
    const [charge] = (await api('GET', '/v1/charges?state=settling')).body.items as { id: number }[];
    const id = charge!.id;
    expect(await check(id, 'settling')).toEqual(['Refund', 'Partial refund', 'Reverse']);
    expect((await api('POST', `/v1/charges/${id}/query`, {})).status).toBe(200);
    expect(await check(id, 'settled')).toEqual(['Refund', 'Partial refund', 'Reverse']);
    // a partial refund through the console, and its notice
    await page.getByRole('button', { name: 'Partial refund' }).click();
    await page.getByRole('dialog').getByLabel('Amount (GBP)').fill('0.01');
    await page.getByRole('dialog').getByRole('button', { name: 'Partial refund' }).click();
    await page.getByRole('status').getByText('Partial refund of 0.01 GBP sent').waitFor();
    await page.locator('h1 .badge', { hasText: 'partially refunded' }).waitFor();
    expect(await check(id, 'partially_refunded')).toEqual(['Refund', 'Partial refund']);
    expect((await api('POST', `/v1/charges/${id}/refund`, {})).status).toBe(200);
    expect(await check(id, 'refunded')).toEqual([]);
    expect(await page.locator('.actions-none').textContent()).toBe('No action applies to a refunded charge.');
    const [parked] = (await api('GET', '/v1/charges?state=needs_new_credential')).body.items as {
      id: number;
    }[];
    // its state would allow a retry, but its mandate waits for a new card: no Retry now
    expect(await check(parked!.id, 'needs_new_credential')).toEqual([]);
    expect(await page.locator('.actions-none').textContent()).toMatch(
      /^Retry waits for mandate #3: it is needs new credential/,
    );
  });

  it('offers on a mandate the status moves the mandate machine allows', async () => {
    const buttons = async (id: number) => {
      await page.goto(`${url}/ui/mandates/${id}`);
      await page.getByRole('heading', { name: `Mandate #${id}` }).waitFor();
      return page.locator('.actions > .action > button').allTextContents();
    };
    const always = ['Cancel now', 'Cancel at period end', 'Update', 'Attach credential link'];
    // story-33 waits for a new card: it may be paused, or resumed as it is
    expect((await api('GET', '/v1/mandates/3')).body.status).toBe('needs_new_credential');
    expect(await buttons(3)).toEqual(['Pause', 'Resume', ...always]);
    expect(await buttons(4)).toEqual(['Pause', ...always]);
  });

  it('updates a mandate through its dialog, and the change shows', async () => {
    await page.goto(`${url}/ui/mandates/4`);
    await page.getByRole('heading', { name: 'Mandate #4' }).waitFor();
    await page.getByRole('button', { name: 'Update' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel(/^Amount \(GBP/).fill('34.99');
    await dialog.getByRole('button', { name: 'Save change' }).click();
    await page
      .getByRole('status')
      .getByText(/^Mandate 4 updated/)
      .waitFor();
    // effective from the next cycle: the mandate's amount, and every cycle the page lists
    await page.locator('.facts').getByText('34.99 GBP every 1 month').waitFor();
    expect((await api('GET', '/v1/mandates/4')).body.amount).toBe(3499);
    const next = await page.locator('section[aria-label="Next cycles"] tbody tr').allTextContents();
    expect(next.length).toBeGreaterThan(0);
    for (const row of next) expect(row).toContain('34.99 GBP');
  });

  it('filters charges by refusal code, and adds a webhook endpoint whose secret shows once', async () => {
    await page.goto(`${url}/ui/charges`);
    const rows = page.locator('section[aria-label="Charges"] tbody tr');
    await rows.first().waitFor();
    await page.getByLabel('Refusal code').fill('51');
    await page.getByRole('button', { name: 'Filter' }).click();
    // the story's 51 was recovered: its last attempt is the authorization, so no charge's last code is 51
    await page.getByText('No charges match.').waitFor();
    expect(page.url()).toMatch(/\/ui\/charges\?code=51$/);
    await page.getByLabel('Refusal code').fill('33');
    await page.getByRole('button', { name: 'Filter' }).click();
    await rows.first().waitFor();
    expect(page.url()).toMatch(/\/ui\/charges\?code=33$/);
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('needs new credential');

    await page.getByRole('link', { name: 'Events & webhooks' }).click();
    await page.getByRole('heading', { name: 'Events and webhooks' }).waitFor();
    await page.getByLabel('URL').fill('https://hooks.example.com/rebill');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await page
      .getByRole('status')
      .getByText(/^Endpoint \d+ added$/)
      .waitFor();
    expect(await page.locator('.secret').textContent()).toMatch(/whsec_/);
    await page.getByRole('heading', { name: /https:\/\/hooks\.example\.com\/rebill/ }).waitFor();
    const [endpoint] = (await api('GET', '/v1/webhook-endpoints')).body.items as { id: number }[];
    const first = await page.locator('.secret code').textContent();

    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate' }).click();
    await page
      .getByRole('status')
      .getByText(/has a new signing secret/)
      .waitFor();
    await page.locator('.secret code').filter({ hasNotText: first! }).waitFor();
    expect((await api('GET', `/v1/webhook-endpoints/${endpoint!.id}`)).body.previousSecretExpiresAt).not.toBe(
      null,
    );

    await page.getByRole('button', { name: 'Event types' }).click();
    const types = page.getByRole('dialog');
    await types.getByLabel('every event (*)').uncheck();
    await types.getByLabel('charge.refused').check();
    await types.getByLabel('charge.failed').check();
    await types.getByRole('button', { name: 'Save event types' }).click();
    await page.getByRole('status').getByText(`Endpoint ${endpoint!.id}'s event types saved`).waitFor();
    await page.getByText('charge.refused, charge.failed').waitFor();
    expect((await api('GET', `/v1/webhook-endpoints/${endpoint!.id}`)).body.events).toEqual([
      'charge.refused',
      'charge.failed',
    ]);
    await page.getByRole('heading', { name: 'Event log' }).waitFor();
    await page.locator('section[aria-label="Events"] tbody tr').first().waitFor();
  });

  it('finds mandates by a customer ref prefix, and a charge by its transaction reference', async () => {
    await page.goto(`${url}/ui/mandates`);
    await page.getByLabel('Customer starts with').fill('story-');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/customerRef=story-$/);
    // The unfiltered rows stay until the filtered list replaces them (and the table may be empty
    // in between): wait for the rows to be the filtered ones, not for any row.
    const customers = async () =>
      (
        await page.locator('section[aria-label="Mandates"] tbody tr td:nth-child(2)').allTextContents()
      ).sort();
    await expect
      .poll(customers, { timeout: 10_000 })
      .toEqual(['story-05', 'story-33', 'story-51', 'story-ok']);

    const [charge] = (await api('GET', '/v1/charges?state=refunded')).body.items as {
      id: number;
      transactionReference: string;
    }[];
    expect(charge!.transactionReference).toBeTruthy();
    await page.goto(`${url}/ui/charges`);
    await page.getByLabel('Search').fill(charge!.transactionReference);
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/\?q=/);
    const firstCells = () =>
      page.locator('section[aria-label="Charges"] tbody tr td:first-child').allTextContents();
    await expect.poll(firstCells, { timeout: 10_000 }).toEqual([`#${charge!.id}`]);
    // the search box also takes a customer ref prefix
    await page.getByLabel('Search').fill('story-3');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/\?q=story-3$/);
    const whose = () =>
      page.locator('section[aria-label="Charges"] tbody tr td:nth-child(3)').allTextContents();
    await expect.poll(async () => new Set(await whose()), { timeout: 10_000 }).toEqual(new Set(['story-33']));
  });

  it('reads the event log newest first, by type, with each payload', async () => {
    await page.goto(`${url}/ui/events`);
    const ids = async () =>
      (await page.locator('section[aria-label="Events"] tbody tr td:first-child').allTextContents()).map(
        Number,
      );
    await page.locator('section[aria-label="Events"] tbody tr').first().waitFor();
    const all = await ids();
    expect(all.length).toBeGreaterThan(5);
    expect(all).toEqual([...all].sort((a, b) => b - a));
    const newest = (await api('GET', '/v1/events?limit=1')).body.items as { id: string }[];
    expect(all[0]).toBe(Number(newest[0]!.id));

    await page.getByLabel('Type', { exact: true }).selectOption('charge.refused');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/type=charge\.refused/);
    // The unfiltered rows stay until the filtered list replaces them (and the table may be empty
    // in between): wait for the rows to be the filtered ones, not for any row.
    const types = () =>
      page.locator('section[aria-label="Events"] tbody tr td:nth-child(2)').allTextContents();
    await expect
      .poll(async () => new Set(await types()), { timeout: 10_000 })
      .toEqual(new Set(['charge.refused']));
    const first = (await ids())[0]!;
    await page.getByLabel(`Payload of event ${first}`).click();
    const payload = JSON.parse((await page.locator('details.payload[open] pre').textContent())!);
    const stored = (await api('GET', `/v1/events/${first}`)).body as { data: unknown };
    expect(payload).toEqual(stored.data);
    expect(payload).toMatchObject({
      state: expect.any(String),
      lastAttempt: { refusalCode: expect.any(String) },
    });
  });

  it('starts a dry run and watches it finish, its counts and what it would send in words', async () => {
    // something due now, so the dry run has a customer to name
    const v = await w.verify();
    const due = await api('POST', '/v1/mandates', {
      customerRef: 'dry-1',
      intent: 'unscheduled',
      amount: 700,
      currency: 'GBP',
      narrative: 'Dry run',
      credential: { link: v.href },
    });
    expect((await api('POST', `/v1/mandates/${due.body.id}/charges`, {})).status).toBe(201);
    await page.goto(`${url}/ui`);
    await page.getByRole('link', { name: 'Runs' }).click();
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    expect(await page.getByLabel('Dry run (send nothing)').isChecked()).toBe(true);
    await page.getByRole('button', { name: 'Start run' }).click();
    await page.getByRole('heading', { name: /Dry run #\d+/ }).waitFor();
    await page.locator('h1 .badge', { hasText: 'completed' }).waitFor({ timeout: 20_000 });
    const runId = Number((await page.locator('h1').textContent())?.match(/#(\d+)/)?.[1]);
    const run = await api('GET', `/v1/runs/${runId}`);
    expect(run.body).toMatchObject({ dryRun: true, status: 'completed' });
    const labels = await page.locator('.facts dt').allTextContents();
    // the same labels the CLI's run table uses
    expect(labels).toContain(RUN_COUNT_LABELS.retryScheduled);
    expect(labels).toContain(RUN_COUNT_LABELS.needsNewCredential);
    // words, not the API's camelCase names
    for (const l of labels) expect(l).toMatch(/^[A-Za-z][a-z ]*$/);
    const wouldSend = page.locator('section[aria-label="Would send"] tbody tr');
    const row = await wouldSend
      .filter({ hasText: `#${due.body.id}` })
      .locator('td')
      .allTextContents();
    expect(row.slice(1, 5)).toEqual(['dry-1', 'pending charge', '0', '7.00 GBP']);
    for (const customer of await wouldSend.locator('td:nth-child(2)').allTextContents())
      expect(customer).not.toBe('');
  });

  it('shows an instalment plan with its progress, total and what is left, in UTC and its own zone', async () => {
    const v = await w.verify();
    const plan = await api('POST', '/v1/mandates', {
      customerRef: 'plan-1',
      intent: 'instalment',
      totalAmount: 60001,
      instalments: 6,
      currency: 'EUR',
      narrative: 'Sofa in 6',
      interval: '1 month',
      start: '2027-06-10T10:00:00',
      timezone: 'Europe/Paris',
      credential: { link: v.href },
    });
    expect(plan.status).toBe(201);
    const id = plan.body.id as number;
    const at = new Date(t0.getTime() + 12 * DAY);
    await runBilling(await w.app(at), { asOf: at, trigger: 'test', mandateId: id });
    await page.goto(`${url}/ui/mandates/${id}`);
    await page.getByRole('heading', { name: `Mandate #${id}` }).waitFor();
    const fact = async (name: string) =>
      page
        .locator('.facts dt', { hasText: new RegExp(`^${name}$`) })
        .locator('xpath=following-sibling::dd[1]')
        .textContent();
    expect(await fact('Instalments')).toBe('1 of 6 paid');
    expect(await fact('Plan total')).toBe('600.01 EUR (the last instalment 100.01 EUR)');
    expect(await fact('Left to pay')).toBe('500.01 EUR');
    expect(await fact('Ends')).toBe('with instalment 6 of 6');
    // 10:00 in Paris is 08:00 UTC in June (summer time)
    expect(await fact('Started')).toBe('2027-06-10 08:00 UTC (2027-06-10 10:00 Europe/Paris)');
    expect(await fact('Next due')).toBe('2027-07-10 08:00 UTC (2027-07-10 10:00 Europe/Paris)');
    expect(await page.locator('section[aria-label="Next cycles"] tbody tr').first().textContent()).toContain(
      '2027-07-10 10:00 Europe/Paris',
    );
  });

  it('fits a phone-width screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/ui?from=2027-06-01&to=2027-07-01', '/ui/mandates/1', '/ui/charges', '/ui/runs']) {
      await page.goto(`${url}${path}`);
      await page.locator('main h1').first().waitFor();
      await page.waitForLoadState('networkidle');
      const overflow = await page.evaluate<number>(
        'document.documentElement.scrollWidth - window.innerWidth',
      );
      expect(overflow, path).toBeLessThanOrEqual(0);
    }
    // the charges table scrolls inside its frame, to its last column
    await page.goto(`${url}/ui/charges`);
    const wrap = page.locator('section.table-wrap[aria-label="Charges"]');
    await wrap.locator('tbody tr').first().waitFor();
    await page.waitForLoadState('networkidle');
    const frame = await wrap.evaluate((e) => ({ scroll: e.scrollWidth, client: e.clientWidth }));
    expect(frame.scroll).toBeGreaterThan(frame.client);
    await wrap.evaluate((e) => e.scrollTo({ left: e.scrollWidth }));
    const last = (await wrap.locator('thead th').last().boundingBox())!;
    expect(last.x + last.width).toBeLessThanOrEqual(390);
    expect(last.x).toBeGreaterThanOrEqual(0);
    await wrap.evaluate((e) => e.scrollTo({ left: 0 }));
    await screenshot(page, 'charges-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('creates an unscheduled mandate from its form, charges it, and shows both in its activity', async () => {
    const v = await w.verify();
    await page.goto(`${url}/ui/mandates`);
    await page.getByText('New mandate').click();
    const form = page.getByRole('form', { name: 'New mandate' });
    await form.getByLabel('Customer reference').fill('walk-in-1');
    await form.getByLabel('Intent').selectOption('unscheduled');
    await form.getByLabel('Amount per charge').fill('12.34');
    await form.getByLabel('Narrative (on the statement)').fill('Console walk-in');
    await form.getByLabel(/^Recurring link/).fill(v.href);
    await form.getByRole('button', { name: 'Create mandate' }).click();
    const heading = page.getByRole('heading', { name: /^Mandate #\d+/ });
    await heading.waitFor();
    const id = Number((await heading.textContent())?.match(/#(\d+)/)?.[1]);
    expect(await page.getByRole('status').textContent()).toContain(`Mandate ${id} created`);
    expect((await api('GET', `/v1/mandates/${id}`)).body).toMatchObject({
      customerRef: 'walk-in-1',
      intent: 'unscheduled',
      amount: 1234,
      currency: 'GBP',
      status: 'active',
    });

    await page.getByRole('button', { name: 'Charge now' }).click();
    await page.getByRole('dialog').getByLabel('Amount (GBP)').fill('5.00');
    await page.getByRole('dialog').getByRole('button', { name: 'Queue charge' }).click();
    const queued = page.getByRole('status').getByText(/^Charge \d+ queued on mandate/);
    await queued.waitFor();
    const chargeId = Number((await queued.textContent())?.match(/^Charge (\d+)/)?.[1]);
    const charge = (await api('GET', `/v1/charges/${chargeId}`)).body;
    expect(charge).toMatchObject({ mandateId: id, amount: 500, currency: 'GBP', state: 'pending' });
    // the audit trail: the mandate's creation and its card's
    const activity = page.getByRole('list', { name: 'Activity' }).locator('li');
    await activity.filter({ hasText: `mandate #${id}: created active` }).waitFor();
    expect(await activity.count()).toBe(2);
    expect(await activity.nth(1).textContent()).toMatch(/card #\d+: created active/);
  });

  it('undoes a cancel scheduled at period end', async () => {
    expect((await api('POST', '/v1/mandates/4/cancel', { atPeriodEnd: true })).status).toBe(200);
    await page.goto(`${url}/ui/mandates/4`);
    await page.getByRole('heading', { name: 'Mandate #4' }).waitFor();
    expect(await page.locator('.actions > .action > button').allTextContents()).not.toContain(
      'Cancel at period end',
    );
    expect(await page.locator('.facts').textContent()).toContain(
      'Next duenothing: cancels at the end of this period',
    );
    await page.getByRole('button', { name: 'Keep renewing' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Keep renewing' }).click();
    await page
      .getByRole('status')
      .getByText('Mandate 4 renews as before: the scheduled cancel is undone')
      .waitFor();
    await page.getByRole('button', { name: 'Cancel at period end' }).waitFor();
    expect((await api('GET', '/v1/mandates/4')).body).toMatchObject({
      status: 'active',
      cancelAtPeriodEnd: false,
    });
    // nothing left to undo: the API refuses a second time
    expect((await api('POST', '/v1/mandates/4/undo-cancel', {})).status).toBe(409);
  });

  it("asks Worldpay about a charge's payment", async () => {
    const [charge] = (await api('GET', '/v1/charges?state=settling')).body.items as { id: number }[];
    await page.goto(`${url}/ui/charges/${charge!.id}`);
    await page.getByRole('button', { name: 'Ask Worldpay' }).click();
    await page
      .getByRole('status')
      .getByText(new RegExp(`^Worldpay says charge ${charge!.id}'s payment is \\w+`))
      .waitFor();
    // the page reloads the charge with what Worldpay said
    await page.waitForLoadState('networkidle');
  });

  it("shows a charge's dispute and the chargeback policy it applied", async () => {
    const [charge] = (await api('GET', '/v1/charges?state=settling')).body.items as { id: number }[];
    const app = await w.app(t0);
    for (const [kind, eventId] of [
      ['informationRequested', 'console-dispute-1'],
      ['chargedBack', 'console-dispute-2'],
    ] as const)
      await app.database.db.transaction((tx) =>
        recordDispute(app, tx, {
          chargeId: charge!.id,
          kind,
          eventId,
          occurredAt: t0,
          details: { amount: null, reasonCode: '10.4', reason: 'Fraud, card absent' },
        }),
      );
    await page.goto(`${url}/ui/charges/${charge!.id}`);
    const rows = page.getByRole('region', { name: 'Disputes' }).locator('tbody tr');
    await rows.first().waitFor();
    const cells = await rows.first().locator('td').allTextContents();
    expect(cells[1]).toBe('charged back');
    expect(cells[3]).toBe('10.4 · Fraud, card absent');
    expect(cells[6]).toBe("the card's mandates paused");
    // the policy paused the card's mandates; an operator's resume clears it (later tests need them active)
    const paused = (await api('GET', '/v1/mandates?status=paused')).body.items as {
      id: number;
      statusReason: string | null;
    }[];
    const byChargeback = paused.filter((m) => m.statusReason === 'chargeback');
    expect(byChargeback.length).toBeGreaterThan(0);
    for (const m of byChargeback)
      expect((await api('POST', `/v1/mandates/${m.id}/resume`, {})).body.status).toBe('active');
  });

  it("downloads the window's charges as CSV", async () => {
    await page.goto(`${url}/ui?from=2027-06-01&to=2027-07-01`);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('navigation', { name: 'Exports' }).getByRole('link', { name: 'charges' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('charges.csv');
    const csv = readFileSync((await download.path())!, 'utf8');
    const res = await request(
      `${url}/v1/exports/charges?from=2027-06-01T00:00:00.000Z&to=2027-07-01T00:00:00.000Z&format=csv`,
      { headers: { authorization: `Bearer ${TOKEN}` } },
    );
    expect(csv).toBe(await res.body.text());
    expect(csv.split('\n')[0]).toMatch(/^id,/);
    expect(csv.trim().split('\n').length).toBeGreaterThan(4);
  });

  it('says the action was not done when the session expired under it', async () => {
    await page.goto(`${url}/ui/mandates/4`);
    await page.getByRole('heading', { name: 'Mandate #4' }).waitFor();
    await page.getByRole('button', { name: 'Pause' }).click();
    // the session ends (another tab signed out, the server restarted) while the dialog is open
    const cookie = `rebill_session=${(await context.cookies(url)).find((c) => c.name === 'rebill_session')!.value}`;
    const state = await request(`${url}/ui/session`, { headers: { cookie } });
    const { csrfToken } = (await state.body.json()) as { csrfToken: string };
    const end = await request(`${url}/ui/session/end`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrfToken },
      body: '{}',
    });
    expect(end.statusCode).toBe(204);
    await end.body.text();
    await page.getByRole('dialog').getByRole('button', { name: 'Pause' }).click();
    await page.getByLabel('Admin token').waitFor();
    expect(await page.getByRole('status').textContent()).toBe(
      'Your session expired: the action was not done',
    );
    expect((await api('GET', '/v1/mandates/4')).body.status).toBe('active');
    expected.push(/^HTTP 401: POST .*\/pause$/, /^console error: Failed to load resource: .* 401/);
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Mandate #4' }).waitFor();
  });

  it('signs out, and the old session is refused', async () => {
    const cookies = await context.cookies(url);
    const old = cookies.find((c) => c.name === 'rebill_session');
    expect(old?.httpOnly).toBe(true);
    expect(old?.sameSite).toBe('Strict');
    expect(await page.evaluate('document.cookie')).toBe('');
    await page.goto(`${url}/ui`);
    await page.getByLabel('Book').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin token').waitFor();
    const res = await request(`${url}/v1/mandates`, { headers: { cookie: `rebill_session=${old!.value}` } });
    expect(res.statusCode).toBe(401);
    await res.body.text();
    await page.reload();
    await page.getByLabel('Admin token').waitFor();
  });

  it('had no console error, page error or failed request', () => {
    const left = [...problems];
    for (const re of expected) {
      const i = left.findIndex((p) => re.test(p));
      expect(i, `expected problem ${re}`).toBeGreaterThanOrEqual(0);
      left.splice(i, 1);
    }
    expect(left).toEqual([]);
  });
});
