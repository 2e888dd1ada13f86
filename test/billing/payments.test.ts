import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { createMandate, showMandate } from '../../src/billing/mandates/index.ts';
import { getCharge } from '../../src/billing/operator/charges.ts';
import { paymentAction, paymentEvents } from '../../src/billing/operator/payments.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { ConflictError, ValidationError } from '../../src/errors.ts';
import { startWorld, type World } from '../support/world.ts';

const T0 = new Date('2026-04-01T09:00:00Z');
const T1 = new Date('2026-04-01T10:00:00Z');

describe('payment actions on an authorized charge', () => {
  let w: World;
  let app: App;
  let n = 0;
  beforeAll(async () => {
    w = await startWorld();
    app = await w.app(T1);
  });
  afterAll(async () => w?.close());

  /** A GBP 10.00 charge authorized and left for the operator to settle. */
  async function authorizedCharge(): Promise<{ chargeId: number; reference: string }> {
    const v = await w.verify();
    const m = await createMandate(app, {
      customerRef: `pay-${++n}`,
      intent: 'subscription',
      amount: 1000,
      currency: 'GBP',
      narrative: 'Manual settle',
      interval: '1 month',
      start: T0,
      settleMode: 'none',
      credential: { link: v.href },
    });
    const r = await runBilling(app, { asOf: T1, trigger: 'test', mandateId: m.id });
    expect(r.counts.authorized).toBe(1);
    const d = await showMandate(w.t.database, m.id);
    expect(d.charges[0]?.state).toBe('authorized');
    return { chargeId: d.charges[0]!.id, reference: d.charges[0]!.attempts[0]!.reference };
  }

  const sent = (reference: string, op: string) =>
    w.sandbox.ledger().filter((e) => e.transactionReference === reference && e.op === op);

  it('refuses a partial settle beyond the authorized amount before calling Worldpay', async () => {
    const { chargeId, reference } = await authorizedCharge();
    await expect(paymentAction(app, chargeId, 'partialSettle', { amount: 1001 })).rejects.toThrow(
      /^charge \d+: settling 10\.01 GBP would exceed the authorized 10\.00 GBP \(0\.00 GBP already settled or requested\)$/,
    );
    expect(sent(reference, 'partialSettle')).toHaveLength(0);

    const first = await paymentAction(app, chargeId, 'partialSettle', { amount: 400 });
    expect(first).toMatchObject({ outcome: 'accepted', amount: 400, reference: `${reference}-PS1` });
    // 400 settled + 700 asked > 1000 authorized: refused here, nothing sent
    await expect(paymentAction(app, chargeId, 'partialSettle', { amount: 700 })).rejects.toBeInstanceOf(
      ConflictError,
    );
    // a full settle after a partial one is refused too (it would settle the whole amount again)
    await expect(paymentAction(app, chargeId, 'settle')).rejects.toThrow(/use partial-settle/);
    const second = await paymentAction(app, chargeId, 'partialSettle', { amount: 600 });
    expect(second.reference).toBe(`${reference}-PS2`);
    expect(sent(reference, 'partialSettle').map((e) => e.amount)).toEqual([400, 600]);
    expect(sent(reference, 'settle')).toHaveLength(0);
    const c = await getCharge(w.t.database, chargeId);
    expect(c.settledAmount).toBe(1000);
    expect(c.actions.map((a) => [a.kind, a.state])).toEqual([
      ['partialSettle', 'accepted'],
      ['partialSettle', 'accepted'],
    ]);
  });

  it('refuses a refund beyond what is settled, locally; refunds up to it', async () => {
    const { chargeId, reference } = await authorizedCharge();
    await expect(paymentAction(app, chargeId, 'refund')).rejects.toThrow(/nothing is settled/);
    await paymentAction(app, chargeId, 'partialSettle', { amount: 500 });
    await expect(paymentAction(app, chargeId, 'partialRefund', { amount: 501 })).rejects.toThrow(
      /^charge \d+: refunding 5\.01 GBP would exceed the settled 5\.00 GBP \(0\.00 GBP already refunded or requested\)$/,
    );
    expect(sent(reference, 'partialRefund')).toHaveLength(0);
    const r = await paymentAction(app, chargeId, 'partialRefund', { amount: 200 });
    expect(r.outcome).toBe('accepted');
    await expect(paymentAction(app, chargeId, 'partialRefund', { amount: 301 })).rejects.toBeInstanceOf(
      ConflictError,
    );
    expect(sent(reference, 'partialRefund').map((e) => e.amount)).toEqual([200]);
    const c = await getCharge(w.t.database, chargeId);
    expect(c.refundedAmount).toBe(200);
  });

  it('refuses an action in another currency and an amount that is not an integer', async () => {
    const { chargeId, reference } = await authorizedCharge();
    await expect(
      paymentAction(app, chargeId, 'partialSettle', { amount: 100, currency: 'EUR' }),
    ).rejects.toThrow(/is in GBP, not EUR/);
    await expect(paymentAction(app, chargeId, 'partialSettle', { amount: 1.5 })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(paymentAction(app, chargeId, 'partialSettle', {})).rejects.toThrow(/^amount:/);
    expect(
      w.sandbox.ledger().filter((e) => e.transactionReference === reference && e.op !== 'authorize'),
    ).toEqual([]);
  });

  it('cancels an authorization with nothing settled, and then refuses to settle it', async () => {
    const { chargeId, reference } = await authorizedCharge();
    const out = await paymentAction(app, chargeId, 'cancel');
    expect(out.outcome).toBe('accepted');
    expect(out.charge.state).toBe('cancelled');
    expect(sent(reference, 'cancel')).toHaveLength(1);
    await expect(paymentAction(app, chargeId, 'settle')).rejects.toBeInstanceOf(ConflictError);
    await expect(paymentAction(app, chargeId, 'cancel')).rejects.toBeInstanceOf(ConflictError);
    expect(sent(reference, 'settle')).toHaveLength(0);
    expect(sent(reference, 'cancel')).toHaveLength(1);
  });

  it('refuses to cancel once something is settled', async () => {
    const { chargeId, reference } = await authorizedCharge();
    await paymentAction(app, chargeId, 'settle');
    await expect(paymentAction(app, chargeId, 'cancel')).rejects.toThrow(/with a settlement/);
    expect(sent(reference, 'cancel')).toHaveLength(0);
  });

  it('events: asks Worldpay and moves a settling charge to settled', async () => {
    const { chargeId } = await authorizedCharge();
    const s = await paymentAction(app, chargeId, 'settle');
    expect(s.charge.state).toBe('settling');
    const e = await paymentEvents(app, chargeId);
    expect(e).toMatchObject({ found: true, status: 'settled', applied: 'settled' });
    expect(e.charge.state).toBe('settled');
    expect(e.charge.events.at(-1)).toMatchObject({ source: 'query', lastEvent: 'Settled' });
  });

  it('a reversal the payment offers no link for is a conflict, recorded as failed, nothing sent', async () => {
    const { chargeId, reference } = await authorizedCharge();
    await expect(paymentAction(app, chargeId, 'reversal')).rejects.toThrow(/reversal is not available/);
    expect(sent(reference, 'reversal')).toHaveLength(0);
    const c = await getCharge(w.t.database, chargeId);
    expect(c.actions.map((a) => [a.kind, a.state])).toEqual([['reversal', 'failed']]);
    expect(c.state).toBe('authorized');
    // the failed attempt does not block the operator: a cancel still works
    expect((await paymentAction(app, chargeId, 'cancel')).outcome).toBe('accepted');
  });

  it('names a missing charge and a charge without a payment', async () => {
    await expect(paymentAction(app, 999_999, 'settle')).rejects.toThrow(/charge 999999 not found/);
  });
});
