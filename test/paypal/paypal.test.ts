import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import {
  RefundNotAllowedError,
  refundPaypalPayment,
  showPaypalPayment,
  trackPaypalPayment,
} from '../../src/billing/paypal/payments.ts';
import { listPaypalPayments } from '../../src/billing/paypal/views.ts';
import { exportColumns, exportLines } from '../../src/billing/reporting/exports.ts';
import { recoveryReport } from '../../src/billing/reporting/reports.ts';
import { ValidationError } from '../../src/errors.ts';
import { loseNextAnswer, movePaypalAt, paypalAtSandbox, refundsSent } from '../support/paypal.ts';
import { DAY } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

const NOW = new Date('2026-06-01T10:00:00Z');

describe('PayPal payments against the sandbox over HTTP', () => {
  let w: World;
  let app: App;
  beforeAll(async () => {
    w = await startWorld();
    app = await w.app(NOW);
  });
  afterAll(async () => w?.close());

  async function tracked(amount: number, opts: { lastEvent?: 'authorized'; customerRef?: string } = {}) {
    const s = await paypalAtSandbox(w, { amount, currency: 'GBP', ...opts });
    const p = await trackPaypalPayment(app, {
      eventsLink: s.eventsLink,
      amount,
      currency: 'GBP',
      customerRef: opts.customerRef ?? 'cust-pp',
    });
    return { ...s, id: p.id, tracked: p };
  }

  it('tracks a payment by its events link: asked at once, stored with its last event and links', async () => {
    const a = await tracked(5000);
    expect(a.tracked).toMatchObject({
      amount: 5000,
      currency: 'GBP',
      lastEvent: 'sentForSettlement',
      refunded: 0,
      left: 5000,
      refundable: true,
    });
    expect(Object.keys(a.tracked.links).sort()).toEqual([
      'action:events',
      'action:partialRefund',
      'action:refund',
    ]);
    // The same link twice is one payment.
    await expect(
      trackPaypalPayment(app, { eventsLink: a.eventsLink, amount: 5000, currency: 'GBP' }),
    ).rejects.toThrow(/already tracked as PayPal payment/);
    const types = await w.t.database.rows<{ type: string }>(
      sql`select type from events where data->'paypalPayment'->>'id' = ${String(a.id)}`,
    );
    expect(types.map((t) => t.type)).toEqual(['paypal_payment.tracked']);
  });

  it('refuses a link off the configured Worldpay origin, and an amount above the ceiling, storing nothing', async () => {
    const before = await listPaypalPayments(w.t.database);
    await expect(
      trackPaypalPayment(app, {
        eventsLink: 'https://evil.example/payments/alternative/action/paypal/events/x',
        amount: 100,
        currency: 'GBP',
      }),
    ).rejects.toThrow(/eventsLink: must be a link on the configured Worldpay origin/);
    const s = await paypalAtSandbox(w, { amount: 100 });
    await expect(
      trackPaypalPayment(app, { eventsLink: s.eventsLink, amount: 10_000_000_000, currency: 'GBP' }),
    ).rejects.toBeInstanceOf(ValidationError);
    expect(await listPaypalPayments(w.t.database)).toHaveLength(before.length);
  });

  it('two partial refunds each reach Worldpay once with distinct references; a third over what is left is refused before sending', async () => {
    const a = await tracked(5000);
    const first = await refundPaypalPayment(app, a.id, 'partialRefund', { amount: 1000 });
    const second = await refundPaypalPayment(app, a.id, 'partialRefund', { amount: 1500, currency: 'GBP' });
    expect([first.outcome, second.outcome]).toEqual(['accepted', 'accepted']);
    expect(first.reference).not.toBe(second.reference);
    for (const r of [first.reference, second.reference]) expect(r).toMatch(/^[A-Za-z0-9-]{1,128}$/);
    expect(second.payment).toMatchObject({ refunded: 2500, left: 2500 });

    await expect(refundPaypalPayment(app, a.id, 'partialRefund', { amount: 2600 })).rejects.toThrow(
      /would exceed what is left, 25\.00 GBP of 50\.00 GBP/,
    );
    await expect(
      refundPaypalPayment(app, a.id, 'partialRefund', { amount: 100, currency: 'EUR' }),
    ).rejects.toThrow(/currency: .* is in GBP, not EUR/);
    const sent = refundsSent(w, a.paymentId);
    expect(sent.map((e) => [e.op, e.amount, e.reference, e.outcome])).toEqual([
      ['partialRefund', 1000, first.reference, 'accepted'],
      ['partialRefund', 1500, second.reference, 'accepted'],
    ]);
    const shown = await showPaypalPayment(app, a.id);
    expect(shown.refunds.map((r) => [r.kind, r.amount, r.state])).toEqual([
      ['partialRefund', 1000, 'accepted'],
      ['partialRefund', 1500, 'accepted'],
    ]);
  });

  it('refuses a refund of a payment still authorized before sending; refunds it once the sandbox moves it to sentForSettlement', async () => {
    const b = await tracked(2000, { lastEvent: 'authorized' });
    expect(b.tracked).toMatchObject({ lastEvent: 'authorized', refundable: false });
    const refused = refundPaypalPayment(app, b.id, 'refund');
    await expect(refused).rejects.toBeInstanceOf(RefundNotAllowedError);
    await expect(refused).rejects.toThrow(/latest event is authorized; a refund needs sentForSettlement/);
    expect(refundsSent(w, b.paymentId)).toEqual([]);

    await movePaypalAt(w, b.eventsLink, 'sentForSettlement');
    const done = await refundPaypalPayment(app, b.id, 'refund');
    expect(done).toMatchObject({ outcome: 'accepted', amount: 2000 });
    expect(refundsSent(w, b.paymentId).map((e) => [e.op, e.outcome])).toEqual([['refund', 'accepted']]);
    // Worldpay now says sentForRefund: a second refund is refused here, not sent.
    await expect(refundPaypalPayment(app, b.id, 'refund')).rejects.toThrow(/latest event is sentForRefund/);
    expect(refundsSent(w, b.paymentId)).toHaveLength(1);
  });

  it('a refund whose answer is lost is sent once in all, whatever the operator retries', async () => {
    const c = await tracked(3000);
    await loseNextAnswer(w, c.paymentId, 'refund');
    const lost = await refundPaypalPayment(app, c.id, 'refund');
    expect(lost.outcome).toBe('unknown');
    expect(lost.payment.refunds.map((r) => r.state)).toEqual(['requested']);
    expect(lost.payment).toMatchObject({ pending: 3000, left: 0 });

    // The retry asks the events link first: Worldpay did refund, so it is recorded and nothing resent.
    await expect(refundPaypalPayment(app, c.id, 'refund')).rejects.toBeInstanceOf(RefundNotAllowedError);
    await expect(refundPaypalPayment(app, c.id, 'partialRefund', { amount: 100 })).rejects.toBeInstanceOf(
      RefundNotAllowedError,
    );
    const shown = await showPaypalPayment(app, c.id);
    expect(shown).toMatchObject({ lastEvent: 'sentForRefund', refunded: 3000, pending: 0, left: 0 });
    expect(shown.refunds.map((r) => [r.reference, r.state])).toEqual([[lost.reference, 'accepted']]);
    expect(refundsSent(w, c.paymentId).map((e) => [e.op, e.responseLost])).toEqual([['refund', true]]);
    const types = await w.t.database.rows<{ type: string }>(
      sql`select type from events where data->'paypalPayment'->>'id' = ${String(c.id)} order by seq`,
    );
    expect(types.map((t) => t.type)).toEqual([
      'paypal_payment.tracked',
      'paypal_payment.refund_requested',
      'paypal_payment.refunded',
    ]);
  });

  it('a lost answer with Worldpay still at sentForSettlement keeps the refund in doubt: no second full refund is sent', async () => {
    const d = await tracked(4000);
    await loseNextAnswer(w, d.paymentId, 'partialRefund');
    const lost = await refundPaypalPayment(app, d.id, 'partialRefund', { amount: 1000 });
    expect(lost.outcome).toBe('unknown');
    // The sandbox keeps a partly refunded payment at sentForSettlement: the answer says nothing of it.
    await expect(refundPaypalPayment(app, d.id, 'refund')).rejects.toThrow(/has no answer yet/);
    // A partial refund within what is left, counting the one in doubt, may still go.
    await expect(refundPaypalPayment(app, d.id, 'partialRefund', { amount: 3001 })).rejects.toThrow(
      /would exceed what is left, 30\.00 GBP/,
    );
    const next = await refundPaypalPayment(app, d.id, 'partialRefund', { amount: 3000 });
    expect(next.outcome).toBe('accepted');
    expect(refundsSent(w, d.paymentId).map((e) => [e.op, e.amount])).toEqual([
      ['partialRefund', 1000],
      ['partialRefund', 3000],
    ]);
  });

  it('lists payments by customer, newest first', async () => {
    const e = await tracked(700, { customerRef: 'cust-list' });
    const list = await listPaypalPayments(w.t.database, { customerRef: 'cust-list' });
    expect(list.map((p) => p.id)).toEqual([e.id]);
  });

  it('exports PayPal payments and reports their refunds, apart from card charges', async () => {
    // created_at is the database's clock: a window around it.
    const from = new Date(Date.now() - DAY);
    const to = new Date(Date.now() + DAY);
    const all = await listPaypalPayments(w.t.database);
    let text = '';
    for await (const chunk of exportLines(w.t.database, 'paypal', { from, to, format: 'ndjson' }))
      text += chunk;
    const rows = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((r) => [r.id, r.amount, r.last_event, r.refunded_amount, r.pending_amount])).toEqual(
      [...all].reverse().map((p) => [p.id, p.amount, p.lastEvent, p.refunded, p.pending]),
    );
    expect(Object.keys(rows[0]!)).toEqual(exportColumns('paypal'));

    const refunds = await w.t.database.rows<{ state: string; amount: number }>(
      sql`select state, amount from paypal_refunds`,
    );
    const r = await recoveryReport(app, from, to);
    expect(r.byCode).toEqual([]);
    expect(r.paypal).toEqual([
      {
        currency: 'GBP',
        tracked: all.length,
        trackedAmount: all.reduce((n, p) => n + p.amount, 0),
        refunds: refunds.filter((x) => x.state === 'accepted').length,
        refundedAmount: all.reduce((n, p) => n + p.refunded, 0),
        refundsFailed: refunds.filter((x) => x.state === 'failed').length,
        refundsInDoubt: refunds.filter((x) => x.state === 'requested').length,
      },
    ]);
    expect(r.paypal[0]!.refundsInDoubt).toBe(1);
  });
});
