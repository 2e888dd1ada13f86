import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMandate, showMandate } from '../../src/billing/mandates/index.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { at } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

/** A Liquido mandate goes through the same charge protocol as a Worldpay one. */
describe('Liquido mandates through the billing core', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ env: { WORLDPAY_TIMEOUT_MS: '1000' } });
  });
  afterAll(async () => w?.close());

  async function liquidoMandate(ref: string, start: string, holder?: string) {
    const { cardId } = w.liquido.state.addCard({ cardHolderName: holder ?? 'ANA PEREZ', last4: '4242' });
    const app = await w.app(at(start));
    const m = await createMandate(app, {
      customerRef: ref,
      intent: 'subscription',
      amount: 4990,
      currency: 'PEN',
      narrative: 'Gimnasio',
      interval: '1 month',
      start: at(start),
      gateway: 'liquido',
      credential: { liquidoCardId: cardId },
    });
    return { m, cardId, app };
  }

  it('bills a subscription over several cycles: pre-authorize, then capture', async () => {
    const { m, app } = await liquidoMandate('liq-1', '2026-01-15T15:00:00Z');
    for (const day of ['2026-01-15', '2026-02-15', '2026-03-15']) {
      const r = await runBilling(app, { asOf: at(`${day}T16:00:00Z`), trigger: 'test', mandateId: m.id });
      expect(r.counts).toMatchObject({ authorized: 1, settleRequested: 1 });
    }
    const d = await showMandate(w.t.database, m.id);
    expect(d.charges.map((c) => c.state)).toEqual(['settling', 'settling', 'settling']);
    const keys = d.charges.map((c) => c.attempts[0]?.reference);
    const payments = w.liquido.state.ledger().payments.filter((p) => keys.includes(p.idempotencyKey));
    expect(payments).toHaveLength(3);
    expect(payments.every((p) => p.transferStatus === 'SETTLED' && p.amount === 4990)).toBe(true);
  });

  it('a timed-out pre-authorization is resolved by its idempotencyKey, never sent under a new one', async () => {
    const { m, app } = await liquidoMandate('liq-2', '2026-04-01T15:00:00Z');
    const reference = `rb-${m.id}-0-1`;
    w.liquido.state.script({ match: { idempotencyKey: reference }, outcomes: [{ type: 'lost' }] });
    const r1 = await runBilling(app, { asOf: at('2026-04-01T16:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r1.counts.unknown).toBe(1);
    const r2 = await runBilling(app, { asOf: at('2026-04-01T17:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r2.counts.reconciled).toBe(1);
    expect(r2.counts.attempted).toBe(0);
    const holds = w.liquido.state.ledger().payments.filter((p) => p.idempotencyKey.startsWith(`rb-${m.id}-`));
    expect(holds.map((p) => p.idempotencyKey)).toEqual([reference]);
    const d = await showMandate(w.t.database, m.id);
    expect(d.charges[0]?.state).toBe('settling');
    expect(holds[0]?.transferStatus).toBe('SETTLED');
  });

  it('a failed pre-authorization goes through dunning like any refusal', async () => {
    const { m, app } = await liquidoMandate('liq-3', '2026-05-01T15:00:00Z', 'FAIL_INSUFFICIENT_FUNDS');
    const r = await runBilling(app, { asOf: at('2026-05-01T16:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r.counts.refused).toBe(1);
    const rows = await w.t.database.rows(
      sql`select a.refusal_code, a.decision from attempts a join charges c on c.id = a.charge_id where c.mandate_id = ${m.id}`,
    );
    expect(rows[0]?.refusal_code).toBe('INSUFFICIENT_FUNDS');
    expect(rows[0]?.decision).toBe('retry');
  });
});
