import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listChanges, updateMandate } from '../../src/billing/mandates/changes.ts';
import { createMandate, getMandate } from '../../src/billing/mandates/index.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { num } from '../../src/db/values.ts';
import { at } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * What a mandate change may do to money: a one-off within REBILL_MAX_AMOUNT, the anchor moved
 * at most one interval, days priced at the plan that covers them, an instalment plan's total
 * kept, cycles already due billed on the old terms, and partial settling with its percentage.
 * Each refusal is a 400 naming the field, with nothing stored.
 */
describe('a mandate change keeps money within its bounds', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  async function mandate(ref: string, body: Record<string, unknown>, start = '2027-01-01T09:00:00Z') {
    const app = await w.app(at(start));
    return createMandate(app, {
      customerRef: ref,
      intent: 'subscription',
      currency: 'GBP',
      narrative: 'Plan',
      interval: '1 month',
      start: at(start),
      credential: { link: (await w.verify()).href },
      ...body,
    });
  }
  const run = async (iso: string, mandateId: number) =>
    runBilling(await w.app(at(iso)), { asOf: at(iso), trigger: 'test', mandateId });
  const update = async (iso: string, id: number, body: Record<string, unknown>) =>
    updateMandate(await w.app(at(iso)), id, body);
  const authorized = (mandateId: number) =>
    w.sandbox
      .ledger()
      .filter(
        (e) =>
          e.op === 'authorize' &&
          e.outcome === 'authorized' &&
          e.transactionReference?.startsWith(`rb-${mandateId}-`),
      )
      .map((e) => e.amount);
  const chargeRows = (mandateId: number) =>
    w.t.database.rows<{ kind: string; amount: unknown }>(
      sql`select kind, amount from charges where mandate_id = ${mandateId} order by due_at, cycle`,
    );
  /** A refused change: the field named, and the mandate, its changes and charges as they were. */
  async function refused(iso: string, id: number, body: Record<string, unknown>, field: string) {
    const before = [
      await getMandate(w.t.database, id),
      await chargeRows(id),
      await listChanges(await w.app(at(iso)), id),
    ];
    await expect(update(iso, id, body), JSON.stringify(body)).rejects.toMatchObject({
      field,
      httpStatus: 400,
    });
    expect([
      await getMandate(w.t.database, id),
      await chargeRows(id),
      await listChanges(await w.app(at(iso)), id),
    ]).toEqual(before);
  }

  it('a billing anchor moved far out is refused, with or without proration, and no one-off is stored', async () => {
    const daily = await mandate('bound-daily', { amount: 10_000_000, interval: '1 day' });
    await run('2027-01-01T10:00:00Z', daily.id);
    await refused(
      '2027-01-01T12:00:00Z',
      daily.id,
      { billingAnchor: '2099-12-01T00:00:00Z', effective: 'now', proration: 'charge' },
      'billingAnchor',
    );
    const monthly = await mandate('bound-monthly', { amount: 3000 });
    await run('2027-01-01T10:00:00Z', monthly.id);
    await refused(
      '2027-01-05T00:00:00Z',
      monthly.id,
      { billingAnchor: '2099-12-01T00:00:00Z' },
      'billingAnchor',
    );
    await refused(
      '2027-01-05T00:00:00Z',
      monthly.id,
      { billingAnchor: '2027-03-02T09:00:00Z', effective: 'now', proration: 'charge' },
      'billingAnchor',
    );
    // one interval is allowed: Feb 1 -> Mar 1, February gained, one month's amount
    const out = await update('2027-01-05T00:00:00Z', monthly.id, {
      billingAnchor: '2027-03-01T09:00:00Z',
      effective: 'now',
      proration: 'charge',
    });
    expect(out.change.oneOffAmount).toBe(3000);
    await run('2027-01-05T01:00:00Z', monthly.id);
    expect(authorized(monthly.id)).toEqual([3000, 3000]);
  });

  it('a prorated one-off above REBILL_MAX_AMOUNT is refused at the change, scheduled or not', async () => {
    // 50,000.00 a month to 100,000.00 (the ceiling) and a month later: 50,000.00 x 27/31 + 100,000.00
    const m = await mandate('bound-ceiling', { amount: 5_000_000 });
    await run('2027-01-01T10:00:00Z', m.id);
    const body = { amount: 10_000_000, billingAnchor: '2027-03-01T09:00:00Z', proration: 'charge' };
    await refused('2027-01-05T09:00:00Z', m.id, { ...body, effective: 'now' }, 'billingAnchor');
    await refused(
      '2027-01-05T09:00:00Z',
      m.id,
      { ...body, effective: '2027-01-20T09:00:00Z' },
      'billingAnchor',
    );
    await run('2027-01-05T10:00:00Z', m.id);
    expect(authorized(m.id)).toEqual([5_000_000]);
  });

  it('days gained are priced at the plan after the change: daily 50.00 to yearly, a year later', async () => {
    const m = await mandate('bound-daily-year', { amount: 5000, interval: '1 day' });
    await run('2027-01-01T10:00:00Z', m.id);
    const out = await update('2027-01-01T12:00:00Z', m.id, {
      interval: '1 year',
      billingAnchor: '2028-01-01T09:00:00Z',
      effective: 'now',
      proration: 'charge',
    });
    // 364 days (Jan 2 2027 to Jan 1 2028) of a 365-day year at 50.00 a year: round(5000 x 364/365)
    expect(out.change.oneOffAmount).toBe(4986);
    expect(out.nextDueAt).toBe('2028-01-01T09:00:00.000Z');
  });

  it('an instalment plan keeps its total: no proration, no end that drops instalments', async () => {
    const plan = await mandate('bound-inst', { intent: 'instalment', totalAmount: 60_001, instalments: 6 });
    await run('2027-01-01T10:00:00Z', plan.id);
    await refused(
      '2027-01-05T00:00:00Z',
      plan.id,
      { billingAnchor: '2027-02-20T09:00:00Z', effective: 'now', proration: 'charge' },
      'proration',
    );
    await refused(
      '2027-01-05T00:00:00Z',
      plan.id,
      { billingAnchor: '2027-01-20T09:00:00Z', effective: 'now', proration: 'credit' },
      'proration',
    );
    await refused('2027-01-05T00:00:00Z', plan.id, { end: '2027-02-15T00:00:00Z' }, 'end');
    // an end after the last instalment changes nothing, and a move without proration keeps the total
    await update('2027-01-05T00:00:00Z', plan.id, { end: '2028-01-01T00:00:00Z' });
    await update('2027-01-05T00:00:00Z', plan.id, {
      billingAnchor: '2027-02-20T09:00:00Z',
      effective: 'now',
    });
    for (const month of ['02-20', '03-20', '04-20', '05-20', '06-20'])
      await run(`2027-${month}T10:00:00Z`, plan.id);
    const sent = authorized(plan.id);
    expect(sent).toHaveLength(6);
    expect(sent.reduce((sum: number, a) => sum + (a ?? 0), 0)).toBe(60_001);
    expect((await getMandate(w.t.database, plan.id)).status).toBe('completed');
  });

  it('next_cycle never reaches back: cycles already due, backfilled or missed, keep the old amount', async () => {
    // started in October with backfill, changed in December before any run
    const back = await mandate('bound-backfill', { amount: 3000, backfill: true }, '2026-10-05T09:00:00Z');
    const out = await update('2026-12-10T00:00:00Z', back.id, { amount: 9000 });
    expect(out.change).toMatchObject({ state: 'scheduled', effectiveAt: '2027-01-05T09:00:00.000Z' });
    expect(out.amount).toBe(3000);
    await run('2026-12-10T01:00:00Z', back.id);
    expect(authorized(back.id)).toEqual([3000, 3000, 3000]);
    await run('2027-01-05T10:00:00Z', back.id);
    expect(authorized(back.id)).toEqual([3000, 3000, 3000, 9000]);

    // a cycle missed by a run that did not happen, and a run late enough to catch up two
    const late = await mandate('bound-missed', { amount: 1000 });
    await run('2027-01-01T10:00:00Z', late.id);
    const changed = await update('2027-02-03T00:00:00Z', late.id, { amount: 2000 });
    expect(changed.change).toMatchObject({ state: 'scheduled', effectiveAt: '2027-03-01T09:00:00.000Z' });
    await run('2027-03-02T00:00:00Z', late.id);
    expect(authorized(late.id)).toEqual([1000, 1000, 2000]);
  });

  it('settleMode partial needs its percentage, and then settles that share', async () => {
    const m = await mandate('bound-settle', { amount: 2000 });
    await refused('2027-01-01T08:00:00Z', m.id, { settleMode: 'partial' }, 'settlePercent');
    await refused('2027-01-01T08:00:00Z', m.id, { settlePercent: 40 }, 'settlePercent');
    const out = await update('2027-01-01T08:00:00Z', m.id, { settleMode: 'partial', settlePercent: 40 });
    expect(out).toMatchObject({ settleMode: 'partial', settlePercent: 40 });
    await run('2027-01-01T10:00:00Z', m.id);
    const ledger = w.sandbox.ledger();
    const paid = ledger.find(
      (e) => e.op === 'authorize' && e.transactionReference?.startsWith(`rb-${m.id}-`),
    );
    const settles = ledger
      .filter((e) => e.paymentId === paid?.paymentId && /ettle/.test(e.op))
      .map((e) => [e.op, e.amount]);
    expect(settles).toEqual([['partialSettle', 800]]);
    // back to full: the percentage goes with it
    expect(await update('2027-01-02T00:00:00Z', m.id, { settleMode: 'full' })).toMatchObject({
      settleMode: 'full',
      settlePercent: null,
    });
    expect(num((await chargeRows(m.id))[0]!.amount)).toBe(2000);
  });
});
