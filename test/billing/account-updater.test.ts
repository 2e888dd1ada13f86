import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { showMandate } from '../../src/billing/mandates/index.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { decryptSecret } from '../../src/domain/card-crypto.ts';
import type { AccountUpdaterScript } from '../../src/sandbox/worldpay/types.ts';
import { at } from '../support/time.ts';
import { authorizations, cardNumber, mandateFor, type Payer, payer } from '../support/v7.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * Worldpay's Account Updater on v7 charges (WORLDPAY_ACCOUNT_UPDATER), against the sandbox:
 * what each mode sends, and what an answer's `updatedPaymentInstrument` does to the credential,
 * its mandate, the audit trail and the events.
 */

async function monthly(w: World, p: Payer, ref: string, start = '2026-03-10T09:00:00Z') {
  const app = await w.app(at(start));
  const m = await mandateFor(app, w, p, {
    customerRef: ref,
    intent: 'subscription',
    amount: 1500,
    currency: 'GBP',
    narrative: 'Updater',
    interval: '1 month',
    start: at(start),
  });
  return { app, m };
}

function updaterAnswer(w: World, p: Payer, accountUpdater: AccountUpdaterScript, refuse?: string) {
  w.sandbox.script({
    match: p.match,
    outcomes: [
      refuse ? { type: 'refuse', code: refuse, accountUpdater } : { type: 'authorize', accountUpdater },
    ],
  });
}

async function credentialOf(w: World, mandateId: number) {
  const rows = await w.t.database.rows<{
    id: number;
    expiry_month: number;
    expiry_year: number;
    last_four: string;
    bin: string;
    encrypted_pan: string;
    status: string;
  }>(
    sql`select cr.id, cr.expiry_month, cr.expiry_year, cr.last_four, cr.bin, cr.encrypted_pan, cr.status
          from credentials cr join mandates m on m.credential_id = cr.id where m.id = ${mandateId}`,
  );
  return rows[0]!;
}

async function credentialEvents(w: World, mandateId: number) {
  return w.t.database.rows<{
    data: { reason: string; accountUpdater?: { message: string; changed: string[] } };
  }>(
    sql`select data from events where mandate_id = ${mandateId} and type = 'credential.updated' order by id`,
  );
}

async function credentialAudit(w: World, credentialId: number) {
  return w.t.database.rows<{ reason: string; from_state: string; to_state: string }>(
    sql`select reason, from_state, to_state from audit_log where entity_type = 'credential' and entity_id = ${credentialId} order by id`,
  );
}

describe('Account Updater: request mode', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ env: { WORLDPAY_ACCOUNT_UPDATER: 'request' } });
  });
  afterAll(async () => w?.close());

  it("a new expiry (in Worldpay's own misspelling) is stored, audited, announced and sent on the next charge", async () => {
    const p = await payer(w, 'v7', { expiryMonth: 12, expiryYear: 2035 });
    const { app, m } = await monthly(w, p, 'au-expiry');
    updaterAnswer(w, p, { message: 'TThe expiration date was changed', expiryMonth: 4, expiryYear: 2031 });
    const r1 = await runBilling(app, { asOf: at('2026-03-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r1.counts).toMatchObject({ authorized: 1, settleRequested: 1 });
    const cred = await credentialOf(w, m.id);
    expect([cred.expiry_month, cred.expiry_year]).toEqual([4, 2031]);
    const audit = await credentialAudit(w, cred.id);
    expect(audit.slice(1)).toEqual([
      {
        from_state: 'active',
        to_state: 'active',
        reason: `Account Updater (rb-${m.id}-0-1): TThe expiration date was changed; expiry now 04/2031`,
      },
    ]);
    const events = await credentialEvents(w, m.id);
    expect(events).toHaveLength(1);
    expect(events[0]?.data.accountUpdater).toMatchObject({
      message: 'TThe expiration date was changed',
      changed: expect.arrayContaining(['expiry']),
    });
    expect(JSON.stringify(events)).not.toContain(p.cardNumber!);

    await runBilling(app, { asOf: at('2026-04-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    const auths = authorizations(w, m.id);
    expect(auths.map((e) => [e.requestAccountUpdater, e.expiryMonth, e.expiryYear, e.outcome])).toEqual([
      [true, 12, 2035, 'authorized'],
      [true, 4, 2031, 'authorized'],
    ]);
    // the first payment's scheme reference stays what is sent
    expect(auths.every((e) => e.schemeReference === p.schemeReference)).toBe(true);
  });

  it('a new card number is stored encrypted with its last four, BIN and brand, and charged next time', async () => {
    const p = await payer(w, 'v7');
    const { app, m } = await monthly(w, p, 'au-number');
    const next = cardNumber();
    updaterAnswer(w, p, {
      message: 'The account number was changed',
      cardNumber: next,
      expiryMonth: 9,
      expiryYear: 2032,
    });
    await runBilling(app, { asOf: at('2026-03-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    const cred = await credentialOf(w, m.id);
    expect(cred).toMatchObject({
      last_four: next.slice(-4),
      bin: next.slice(0, 6),
      expiry_month: 9,
      expiry_year: 2032,
    });
    expect(cred.encrypted_pan).not.toContain(next);
    expect(decryptSecret(cred.encrypted_pan, [w.config.encryptionKey!])).toBe(next);
    const audit = await credentialAudit(w, cred.id);
    expect(audit.at(-1)?.reason).toMatch(
      /The account number was changed; expiry now 09\/2032; card number changed \(ends \d{4}\)/,
    );
    expect(audit.at(-1)?.reason).not.toContain(next);
    await runBilling(app, { asOf: at('2026-04-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(authorizations(w, m.id).map((e) => e.lastFour)).toEqual([p.cardNumber!.slice(-4), next.slice(-4)]);
  });

  it('"The account was closed" parks the mandate with that reason instead of retrying', async () => {
    const p = await payer(w, 'v7', { instrument: 'card/token' });
    const { app, m } = await monthly(w, p, 'au-closed');
    // 51 is a soft decline that would be retried; the updater's word wins
    updaterAnswer(w, p, { message: 'The account was closed' }, '51');
    const r = await runBilling(app, { asOf: at('2026-03-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r.counts).toMatchObject({ refused: 1, retryScheduled: 0 });
    const d = await showMandate(w.t.database, m.id);
    expect(d.status).toBe('needs_new_credential');
    expect(d.statusReason).toBe('Account Updater: The account was closed');
    expect(d.charges[0]).toMatchObject({ state: 'needs_new_credential' });
    expect(d.charges[0]?.nextAttemptAt ?? null).toBeNull();
    const moves = await w.t.database.rows<{ from_state: string; to_state: string; reason: string }>(
      sql`select from_state, to_state, reason from audit_log where entity_type = 'mandate' and entity_id = ${m.id} order by id`,
    );
    expect(moves.at(-1)).toEqual({
      from_state: 'active',
      to_state: 'needs_new_credential',
      reason: 'Account Updater: The account was closed',
    });
    const types = await w.t.database.rows<{ type: string }>(
      sql`select type from events where mandate_id = ${m.id} order by id`,
    );
    expect(types.map((e) => e.type)).toContain('mandate.needs_new_credential');
    // nothing more is sent on the closed card
    await runBilling(app, { asOf: at('2026-05-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(authorizations(w, m.id)).toHaveLength(1);
  });

  it('"Contact the cardholder" parks the mandate with that reason too', async () => {
    const p = await payer(w, 'v7');
    const { app, m } = await monthly(w, p, 'au-contact');
    updaterAnswer(w, p, { message: 'Contact the cardholder for updated information' }, '05');
    await runBilling(app, { asOf: at('2026-03-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    const d = await showMandate(w.t.database, m.id);
    expect([d.status, d.statusReason]).toEqual([
      'needs_new_credential',
      'Account Updater: Contact the cardholder for updated information',
    ]);
  });

  it("a charge on a card whose stored expiry has passed is sent once anyway, and the updater's expiry kept", async () => {
    const p = await payer(w, 'v7');
    const { app, m } = await monthly(w, p, 'au-expired');
    const before = await credentialOf(w, m.id);
    await w.t.database.rows(
      sql`update credentials set expiry_month = 1, expiry_year = 2026 where id = ${before.id}`,
    );
    updaterAnswer(w, p, { message: 'TThe expiration date was changed', expiryMonth: 1, expiryYear: 2030 });
    const r = await runBilling(app, { asOf: at('2026-03-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r.counts.authorized).toBe(1);
    expect(
      authorizations(w, m.id).map((e) => [e.expiryMonth, e.expiryYear, e.requestAccountUpdater]),
    ).toEqual([[1, 2026, true]]);
    const after = await credentialOf(w, m.id);
    expect([after.expiry_month, after.expiry_year]).toEqual([1, 2030]);
  });

  it('an expired card the updater does not renew is sent once, then its retry waits for a new card', async () => {
    const p = await payer(w, 'v7');
    const { app, m } = await monthly(w, p, 'au-expired-once');
    const cred = await credentialOf(w, m.id);
    await w.t.database.rows(
      sql`update credentials set expiry_month = 1, expiry_year = 2026 where id = ${cred.id}`,
    );
    w.sandbox.script({ match: p.match, outcomes: [{ type: 'refuse', code: '51' }] });
    const r1 = await runBilling(app, { asOf: at('2026-03-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r1.counts).toMatchObject({ refused: 1, retryScheduled: 1 });
    const d1 = await showMandate(w.t.database, m.id);
    await runBilling(app, {
      asOf: new Date(d1.charges[0]!.nextAttemptAt!),
      trigger: 'test',
      mandateId: m.id,
    });
    expect(authorizations(w, m.id)).toHaveLength(1);
    const d2 = await showMandate(w.t.database, m.id);
    expect(d2.charges[0]?.state).toBe('needs_new_credential');
    expect(d2.charges[0]?.stateReason).toMatch(/expir/i);
  });
});

describe('Account Updater: managed mode', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ env: { WORLDPAY_ACCOUNT_UPDATER: 'managed' } });
    const res = await request(`${w.sandbox.url}/_sandbox/v7/account-updater`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mode: 'managed' }),
    });
    expect(res.statusCode).toBeLessThan(300);
    await res.body.dump();
  });
  afterAll(async () => w?.close());

  it('sends no requestAccountUpdater and still applies the update Worldpay made on its own', async () => {
    const p = await payer(w, 'v7', { instrument: 'card/networkToken' });
    const { app, m } = await monthly(w, p, 'au-managed');
    updaterAnswer(w, p, {
      message: 'TThe expiration date was changed',
      expiryMonth: 6,
      expiryYear: 2033,
    });
    await runBilling(app, { asOf: at('2026-03-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(authorizations(w, m.id).map((e) => e.requestAccountUpdater)).toEqual([false]);
    const cred = await credentialOf(w, m.id);
    expect([cred.expiry_month, cred.expiry_year]).toEqual([6, 2033]);
    expect(await credentialEvents(w, m.id)).toHaveLength(1);
  });
});

describe('Account Updater: off (the default)', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  it('refuses a mode it does not know, naming the variable', () => {
    const bad = (() => {
      try {
        loadConfig({ ...w.env, WORLDPAY_ACCOUNT_UPDATER: 'sometimes' });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(bad).toBeInstanceOf(ConfigError);
    expect(bad).toMatchObject({ variable: 'WORLDPAY_ACCOUNT_UPDATER' });
    expect(String((bad as Error).message)).toMatch(/off, request or managed/);
    expect(loadConfig({ ...w.env, WORLDPAY_ACCOUNT_UPDATER: 'managed' }).worldpay.accountUpdater).toBe(
      'managed',
    );
  });

  it('sends no requestAccountUpdater, applies nothing, and parks an expired card without sending it', async () => {
    expect(w.config.worldpay.accountUpdater).toBe('off');
    const p = await payer(w, 'v7');
    const { app, m } = await monthly(w, p, 'off-1');
    updaterAnswer(w, p, { message: 'TThe expiration date was changed', expiryMonth: 2, expiryYear: 2034 });
    await runBilling(app, { asOf: at('2026-03-10T10:00:00Z'), trigger: 'test', mandateId: m.id });
    const auths = authorizations(w, m.id);
    expect(auths.map((e) => [e.requestAccountUpdater, e.accountUpdaterMessage ?? null])).toEqual([
      [false, null],
    ]);
    const cred = await credentialOf(w, m.id);
    expect([cred.expiry_month, cred.expiry_year]).toEqual([12, 2035]);
    expect(await credentialEvents(w, m.id)).toHaveLength(0);

    const q = await payer(w, 'v7');
    const other = await monthly(w, q, 'off-expired');
    const c = await credentialOf(w, other.m.id);
    await w.t.database.rows(
      sql`update credentials set expiry_month = 1, expiry_year = 2026 where id = ${c.id}`,
    );
    await runBilling(other.app, { asOf: at('2026-03-10T10:00:00Z'), trigger: 'test', mandateId: other.m.id });
    expect(authorizations(w, other.m.id)).toHaveLength(0);
    const d = await showMandate(w.t.database, other.m.id);
    expect(d.charges[0]?.state).toBe('needs_new_credential');
  });
});
