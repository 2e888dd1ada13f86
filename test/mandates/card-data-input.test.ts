import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { createMandate, queueCharge } from '../../src/billing/mandates/index.ts';
import { containsCardNumber } from '../../src/domain/card.ts';
import { errorMessage, ValidationError } from '../../src/errors.ts';
import { createRowValidator, FIELDS } from '../../src/legacy/rows.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * Regressions for the cases an attack pass found: a card number shifted into an amount was
 * imported and charged twice, one typed into the holder name was stored in plain text, and
 * errors repeated the bad value. The ceiling and the card-number check refuse them, and the
 * error names the field without the value.
 */
const PAN = '5188247082276544';
const PAN2 = '4929301661318602';
const T = new Date('2027-04-01T10:00:00Z');

describe('card data where it does not belong, and absurd amounts', () => {
  let w: World;
  let app: App;
  beforeAll(async () => {
    w = await startWorld();
    app = await w.app(T);
  });
  afterAll(async () => w?.close());

  const base = async () => ({
    customerRef: 'cd-1',
    intent: 'subscription' as const,
    amount: 1500,
    currency: 'GBP',
    narrative: 'Plan',
    interval: '1 month',
    credential: { link: (await w.verify()).href },
  });
  const refused = async (input: Record<string, unknown>, field: string) => {
    const err = await createMandate(app, input).catch((e) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe(field);
    expect((err as Error).message).not.toMatch(/\d{12}/);
  };

  it('errors name the field but never repeat a card number: bad values, failed statements', async () => {
    const tz = await createMandate(app, { ...(await base()), timezone: PAN2 }).catch((e) => e);
    expect((tz as ValidationError).field).toBe('timezone');
    const iv = await createMandate(app, { ...(await base()), interval: PAN2 }).catch((e) => e);
    expect((iv as Error).message).toMatch(/interval: .*\[digits ending 8602\]/);
    expect((iv as Error).message).not.toContain(PAN2);
    // a statement that fails with a card number among its parameters (drizzle puts them in
    // its message): what is logged, stored on a run or printed keeps the reason, not the values
    const failed = await w.t.database.rows(sql`select ${PAN}::int as n`).catch((e) => e);
    expect((failed as Error).message).toContain(PAN);
    const shown = errorMessage(failed);
    expect(shown).toMatch(/^database error/);
    expect(shown).not.toContain(PAN);
  });

  it('finds card numbers in free text, grouped or not, and only Luhn-valid ones', () => {
    expect(containsCardNumber(`Mr ${PAN}`)).toBe(true);
    expect(containsCardNumber('4929 3016 6131 8602')).toBe(true);
    expect(containsCardNumber('4929-3016-6131-8602')).toBe(true);
    expect(containsCardNumber('4929301661318603')).toBe(false);
    expect(containsCardNumber('order 20270401 ref 12345')).toBe(false);
  });

  it('a card number as an amount, and 2^53-1 GBP, are above the ceiling', async () => {
    await refused({ ...(await base()), amount: Number(PAN) }, 'amount');
    await refused({ ...(await base()), amount: Number.MAX_SAFE_INTEGER }, 'amount');
    // the largest allowed charge goes through: 100,000.00 GBP
    const m = await createMandate(app, { ...(await base()), customerRef: 'cd-max', amount: 10_000_000 });
    expect(m.amount).toBe(10_000_000);
    // a yen ceiling is in yen: 100,000 JPY has no minor unit
    await refused({ ...(await base()), currency: 'JPY', amount: 100_001 }, 'amount');
    const u = await createMandate(app, {
      ...(await base()),
      customerRef: 'cd-u',
      intent: 'unscheduled',
      interval: undefined,
    });
    const err = await queueCharge(app, u.id, { amount: Number(PAN) }).catch((e) => e);
    expect((err as ValidationError).field).toBe('amount');
  });

  it('a card number in the holder name, the narrative or the customer reference is refused and not stored', async () => {
    await refused(
      {
        ...(await base()),
        credential: {
          cardNumber: '4444333322221111',
          expiryMonth: 12,
          expiryYear: 2030,
          cardHolderName: PAN2,
        },
      },
      'credential.cardHolderName',
    );
    await refused({ ...(await base()), narrative: `x ${PAN2}` }, 'narrative');
    await refused({ ...(await base()), customerRef: PAN2 }, 'customerRef');
    await refused({ ...(await base()), narrative: 'a\u0000b' }, 'narrative');
    const stored = await w.t.database.rows(
      sql`select count(*)::int as n from credentials where card_holder_name like ${`%${PAN2}%`}`,
    );
    expect(Number(stored[0]?.n)).toBe(0);
    const customers = await w.t.database.rows(
      sql`select count(*)::int as n from customers where ref = ${PAN2}`,
    );
    expect(Number(customers[0]?.n)).toBe(0);
  });

  it('a legacy row with a card number as its amount, in its holder name, or as an unknown field is rejected without the value', () => {
    const validate = createRowValidator({ now: T, canStoreCardData: true });
    let n = 0;
    const row = (over: Record<string, string>) => ({
      ...Object.fromEntries(FIELDS.map((f) => [f, ''])),
      legacy_id: `L-${++n}`,
      customer_ref: 'c',
      intent: 'subscription',
      amount: '1000',
      currency: 'GBP',
      interval: '1 month',
      next_charge_at: '2027-05-01',
      narrative: 'Plan',
      entity: 'default',
      instrument_type: 'card/plain',
      card_number: '4444333322221111',
      expiry_month: '12',
      expiry_year: '2030',
      ...over,
    });
    expect(validate(1, row({})).ok).toBe(true);
    for (const [over, field] of [
      [{ amount: PAN }, 'amount'],
      [{ card_holder_name: PAN2 }, 'card_holder_name'],
      [{ legacy_id: PAN2 }, 'legacy_id'],
    ] as const) {
      const r = validate(2, row(over));
      expect(r.ok).toBe(false);
      const errors = (r as { errors: { field: string; reason: string }[] }).errors;
      expect(errors.map((e) => e.field)).toContain(field);
      expect(JSON.stringify(errors)).not.toMatch(/\d{12}/);
    }
    const unknown = validate(3, { ...row({}), [PAN2]: 'x' });
    expect(JSON.stringify(unknown)).not.toContain(PAN2);
  });
});
