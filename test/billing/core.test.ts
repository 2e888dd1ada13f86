import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followSettlements } from '../../src/billing/charge/follow.ts';
import {
  createMandate,
  pauseMandate,
  queueCharge,
  resumeMandate,
  showMandate,
} from '../../src/billing/mandates/index.ts';
import { paymentAction } from '../../src/billing/operator/payments.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { num } from '../../src/db/values.ts';
import { at } from '../support/time.ts';
import { APIS, authorizations, ledgerOf, mandateFor, payer } from '../support/v7.ts';
import { startWorld, type World } from '../support/world.ts';

/** The links an attempt's answer returned, by name. */
async function attemptLinks(w: World, chargeId: number): Promise<Record<string, string>> {
  const rows = await w.t.database.rows<{ rel: string; href: string }>(
    sql`select l.rel, l.href from payment_links l join charges c on c.authorized_attempt_id = l.attempt_id
         where c.id = ${chargeId} and l.action_id is null order by l.n`,
  );
  return Object.fromEntries(rows.map((r) => [r.rel, r.href]));
}

describe.each(APIS)('billing core against the Worldpay sandbox (%s)', (api) => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  it('charges a subscription, settles, and charges the next cycle as its API chains it (v6: the new link; v7: the first scheme reference)', async () => {
    const v = await payer(w, api);
    const app = await w.app(at('2026-01-31T09:00:00Z'));
    const m = await mandateFor(app, w, v, {
      customerRef: 'sub-1',
      intent: 'subscription',
      amount: 1250,
      currency: 'GBP',
      narrative: 'Acme Gym',
      interval: '1 month',
      start: at('2026-01-31T09:00:00Z'),
      timezone: 'Europe/London',
    });
    const r1 = await runBilling(app, { asOf: at('2026-01-31T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r1.counts).toMatchObject({ attempted: 1, authorized: 1, settleRequested: 1 });
    const after1 = await showMandate(w.t.database, m.id);
    expect(after1.charges).toHaveLength(1);
    expect(after1.charges[0]).toMatchObject({ cycle: 0, state: 'settling', amount: 1250 });
    // month-end clamp in the mandate's zone: Jan 31 09:00 London -> Feb 28 09:00 London
    expect(after1.nextDueAt).toBe('2026-02-28T09:00:00.000Z');
    if (api === 'v7') {
      const r2 = await runBilling(app, {
        asOf: at('2026-02-28T10:00:00Z'),
        trigger: 'test',
        mandateId: m.id,
      });
      expect(r2.counts.authorized).toBe(1);
      const auths = authorizations(w, m.id);
      expect(auths.map((e) => e.transactionReference)).toEqual([`rb-${m.id}-0-1`, `rb-${m.id}-1-1`]);
      // every charge carries the FIRST payment's scheme reference, byte for byte, never an
      // authorization's own
      expect(auths.map((e) => e.schemeReference)).toEqual([v.schemeReference, v.schemeReference]);
      expect(auths.every((e) => e.api === 'v7' && e.customerAgreementType === 'subscription')).toBe(true);
      expect(
        auths.every((e) => e.instrumentType === 'card/plain' && e.lastFour === v.cardNumber!.slice(-4)),
      ).toBe(true);
      const d = await showMandate(w.t.database, m.id);
      // no chain: nothing recurring stored, no current link; the card data is kept for next time
      expect(d.links).toEqual([]);
      expect(d.credential.currentLink ?? null).toBeNull();
      const cred = await w.t.database.rows<{ encrypted_pan: string | null; api: string }>(
        sql`select encrypted_pan, api from credentials where id = ${d.credential.id}`,
      );
      expect(cred[0]).toMatchObject({ api: 'v7' });
      expect(cred[0]?.encrypted_pan).toEqual(expect.any(String));
      // each authorization's own scheme reference is kept on its attempt
      const kept = await w.t.database.rows<{ kind: string; scheme_reference: string | null }>(
        sql`select a.kind, a.scheme_reference from attempts a join charges c on c.id = a.charge_id
             where c.mandate_id = ${m.id} order by a.id`,
      );
      expect(kept.map((a) => a.kind)).toEqual(['mit', 'mit']);
      expect(kept.every((a) => typeof a.scheme_reference === 'string' && a.scheme_reference.length > 0)).toBe(
        true,
      );
      // the settles followed the answers' cardPayments:settle links, byte for byte
      for (const c of d.charges) {
        const links = await attemptLinks(w, c.id);
        expect(Object.keys(links)).toEqual(
          expect.arrayContaining(['cardPayments:settle', 'cardPayments:cancel', 'cardPayments:events']),
        );
        const acts = await w.t.database.rows<{ kind: string; link_href: string }>(
          sql`select kind, link_href from payment_actions where charge_id = ${c.id}`,
        );
        expect(acts).toEqual([{ kind: 'settle', link_href: links['cardPayments:settle'] }]);
      }
      expect(ledgerOf(w, m.id, 'settle').filter((e) => e.outcome === 'accepted')).toHaveLength(2);
      return;
    }
    // the chain: verification link, then the link the authorization returned, which is now current
    const recurring = after1.links.filter((l) => l.rel === 'payments:recurringAuthorize');
    expect(recurring).toHaveLength(2);
    expect(recurring[0]?.href).toBe((v.credential as { link: string }).link);
    expect(recurring[1]?.current).toBe(true);
    expect(after1.credential.currentLink).toBe(recurring[1]?.href);

    const r2 = await runBilling(app, { asOf: at('2026-02-28T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r2.counts.authorized).toBe(1);
    const ledger = w.sandbox.ledger().filter((e) => e.chainId === v.match.chainId);
    const auths = ledger.filter((e) => e.op === 'authorize');
    expect(auths.map((e) => e.transactionReference)).toEqual([`rb-${m.id}-0-1`, `rb-${m.id}-1-1`]);
    expect(auths.every((e) => e.stale === false)).toBe(true);
    // the second authorization used the link the first one returned
    expect(recurring[1]?.href.endsWith(auths[1]!.linkUsed!)).toBe(true);
    expect(ledger.filter((e) => e.op === 'settle' && e.outcome === 'accepted')).toHaveLength(2);
    const after2 = await showMandate(w.t.database, m.id);
    expect(after2.nextDueAt).toBe('2026-03-31T08:00:00.000Z'); // BST: 09:00 London is 08:00 UTC
  });

  it('bills an instalment plan N times with the remainder on the last instalment, then completes', async () => {
    const v = await payer(w, api);
    const app = await w.app(at('2026-03-01T00:00:00Z'));
    const m = await mandateFor(app, w, v, {
      customerRef: 'inst-1',
      intent: 'instalment',
      totalAmount: 1000,
      instalments: 3,
      currency: 'EUR',
      narrative: 'Sofa in 3',
      interval: '2 weeks',
      start: at('2026-03-01T12:00:00Z'),
    });
    for (const day of ['2026-03-01', '2026-03-15', '2026-03-29', '2026-04-12', '2026-05-30']) {
      await runBilling(app, { asOf: at(`${day}T13:00:00Z`), trigger: 'test', mandateId: m.id });
    }
    const d = await showMandate(w.t.database, m.id);
    expect(d.charges.map((c) => c.amount)).toEqual([333, 333, 334]);
    expect(d.charges.every((c) => c.state === 'settling')).toBe(true);
    expect(d.status).toBe('completed');
    const auths = authorizations(w, m.id);
    expect(auths).toHaveLength(3);
    if (api === 'v7')
      expect(auths.map((e) => e.customerAgreementType)).toEqual([
        'installment',
        'installment',
        'installment',
      ]);
  });

  it('charges an unscheduled mandate only when a charge is queued', async () => {
    const v = await payer(w, api);
    const app = await w.app(at('2026-04-01T00:00:00Z'));
    const m = await mandateFor(app, w, v, {
      customerRef: 'uns-1',
      intent: 'unscheduled',
      amount: 999,
      currency: 'USD',
      narrative: 'Top up',
    });
    const none = await runBilling(app, {
      asOf: at('2026-06-01T00:00:00Z'),
      trigger: 'test',
      mandateId: m.id,
    });
    expect(none.counts.attempted).toBe(0);
    const q = await queueCharge(app, m.id, { amount: 450 });
    expect(q.cycle).toBe(0);
    const r = await runBilling(app, { asOf: at('2026-04-01T00:00:01Z'), trigger: 'test', mandateId: m.id });
    expect(r.counts.authorized).toBe(1);
    const auths = authorizations(w, m.id);
    expect(auths).toHaveLength(1);
    expect(auths[0]?.amount).toBe(450);
    if (api === 'v7')
      expect(auths[0]).toMatchObject({
        customerAgreementType: 'unscheduled',
        schemeReference: v.schemeReference,
      });
  });

  it('reconciles a response lost after the gateway committed: no second authorization', async () => {
    const v = await payer(w, api);
    const app = await w.app(at('2026-05-01T00:00:00Z'));
    const m = await mandateFor(app, w, v, {
      customerRef: 'lost-1',
      intent: 'subscription',
      amount: 700,
      currency: 'GBP',
      narrative: 'Lost reply',
      interval: '1 month',
      start: at('2026-05-01T00:00:00Z'),
    });
    w.sandbox.script({ match: v.match, outcomes: [{ type: 'lost' }] });
    const r1 = await runBilling(app, { asOf: at('2026-05-01T01:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r1.counts.unknown).toBe(1);
    let d = await showMandate(w.t.database, m.id);
    expect(d.charges[0]?.state).toBe('unknown');
    const r2 = await runBilling(app, { asOf: at('2026-05-01T02:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r2.counts.reconciled).toBe(1);
    expect(r2.counts.attempted).toBe(0);
    d = await showMandate(w.t.database, m.id);
    expect(d.charges[0]?.state).toBe('settling');
    expect(d.charges[0]?.attempts).toHaveLength(1);
    const auths = authorizations(w, m.id);
    expect(auths).toHaveLength(1);
    const audit = await w.t.database.rows(
      sql`select reason from audit_log where entity_type = 'charge' and entity_id = ${d.charges[0]!.id} and to_state = 'authorized'`,
    );
    if (api === 'v6') {
      // the recovered payment brought no new recurring link: the credential keeps the one it had
      expect(d.credential.currentLink).toBe((v.credential as { link: string }).link);
      expect(String(audit[0]?.reason)).toMatch(/recovered by query.*credential keeps its link/);
    } else {
      expect(String(audit[0]?.reason)).toMatch(/\(recovered by query\)$/);
      expect(auths[0]).toMatchObject({ schemeReference: v.schemeReference, responseLost: true });
      // the recovery found the payment's v7 links: the settle followed its relation
      const acts = await w.t.database.rows<{ kind: string; link_href: string }>(
        sql`select kind, link_href from payment_actions where charge_id = ${d.charges[0]!.id}`,
      );
      expect(acts).toHaveLength(1);
      expect(ledgerOf(w, m.id, 'settle').filter((e) => e.outcome === 'accepted')).toHaveLength(1);
    }
    // the recovered payment can still be asked about: settlement follow-up reaches `settled`
    const followed = await followSettlements(app, { limit: 100 });
    expect(followed.settled).toBeGreaterThanOrEqual(1);
    d = await showMandate(w.t.database, m.id);
    expect(d.charges[0]?.state).toBe('settled');
  });

  it("settles, refunds in part and in full, cancels and reverses through the links the payment's answers returned", async () => {
    const app = await w.app(at('2026-08-01T00:00:00Z'));
    const make = async (ref: string, settleMode: 'full' | 'none') => {
      const v = await payer(w, api);
      const m = await mandateFor(app, w, v, {
        customerRef: ref,
        intent: 'unscheduled',
        amount: 1000,
        currency: 'GBP',
        narrative: 'Actions',
        settleMode,
      });
      await queueCharge(app, m.id, { amount: 1000 });
      await runBilling(app, { asOf: at('2026-08-01T00:00:01Z'), trigger: 'test', mandateId: m.id });
      const d = await showMandate(w.t.database, m.id);
      return { m, chargeId: d.charges[0]!.id };
    };
    const actionsOf = (chargeId: number) =>
      w.t.database.rows<{ kind: string; state: string; link_href: string }>(
        sql`select kind, state, link_href from payment_actions where charge_id = ${chargeId} order by id`,
      );
    const settleLinksOf = async (chargeId: number) => {
      const rows = await w.t.database.rows<{ rel: string; href: string }>(
        sql`select l.rel, l.href from payment_links l join payment_actions pa on pa.id = l.action_id
             where pa.charge_id = ${chargeId} and pa.kind = 'settle' order by pa.id, l.n`,
      );
      return Object.fromEntries(rows.map((l) => [l.rel, l.href]));
    };
    const rel = (name: string) => (api === 'v7' ? `cardPayments:${name}` : `payments:${name}`);

    // settled, then refunded in part and the rest
    const a = await make('act-refund', 'full');
    await followSettlements(app, { limit: 100 });
    await paymentAction(app, a.chargeId, 'partialRefund', { amount: 300 });
    await paymentAction(app, a.chargeId, 'refund');
    const fromSettle = await settleLinksOf(a.chargeId);
    const acts = await actionsOf(a.chargeId);
    expect(acts.map((x) => [x.kind, x.state])).toEqual([
      ['settle', 'accepted'],
      ['partialRefund', 'accepted'],
      ['refund', 'accepted'],
    ]);
    expect(acts[0]?.link_href).toBe((await attemptLinks(w, a.chargeId))[rel('settle')]);
    expect(acts[1]?.link_href).toBe(fromSettle[rel('partialRefund')]);
    expect(acts[2]?.link_href).toBe(fromSettle[rel('refund')]);
    expect(
      ledgerOf(w, a.m.id)
        .filter((e) => e.op !== 'authorize' && e.outcome === 'accepted')
        .map((e) => [e.op, e.amount ?? null]),
    ).toEqual([
      ['settle', null],
      ['partialRefund', 300],
      ['refund', null],
    ]);

    // authorized only, then cancelled
    const c = await make('act-cancel', 'none');
    await paymentAction(app, c.chargeId, 'cancel');
    expect((await actionsOf(c.chargeId)).map((x) => [x.kind, x.state, x.link_href])).toEqual([
      ['cancel', 'accepted', (await attemptLinks(w, c.chargeId))[rel('cancel')]],
    ]);

    // sent for settlement, then reversed: v7 answers a cardPayments:reverse link (v6's
    // sandbox offers none, and rebill refuses before sending)
    const r = await make('act-reverse', 'full');
    if (api === 'v6') {
      await expect(paymentAction(app, r.chargeId, 'reversal')).rejects.toThrow(/reversal is not available/);
      return;
    }
    await paymentAction(app, r.chargeId, 'reversal');
    const reverse = (await settleLinksOf(r.chargeId))['cardPayments:reverse'];
    expect(reverse).toEqual(expect.any(String));
    expect((await actionsOf(r.chargeId)).map((x) => [x.kind, x.state, x.link_href])).toEqual([
      ['settle', 'accepted', (await attemptLinks(w, r.chargeId))[rel('settle')]],
      ['reversal', 'accepted', reverse],
    ]);
  });

  it('skips the cycles a paused subscription missed and resumes on its calendar', async () => {
    const v = await payer(w, api);
    const app = await w.app(at('2026-01-31T09:00:00Z'));
    const m = await mandateFor(app, w, v, {
      customerRef: 'pause-1',
      intent: 'subscription',
      amount: 800,
      currency: 'GBP',
      narrative: 'Pause test',
      interval: '1 month',
      start: at('2026-01-31T09:00:00Z'),
    });
    await runBilling(app, { asOf: at('2026-01-31T10:00:00Z'), trigger: 'test', mandateId: m.id });
    await pauseMandate(app, m.id);
    const paused = await runBilling(app, {
      asOf: at('2026-04-15T00:00:00Z'),
      trigger: 'test',
      mandateId: m.id,
    });
    expect(paused.counts.attempted).toBe(0);
    const later = await w.app(at('2026-04-15T00:00:00Z'));
    const resumed = await resumeMandate(later, m.id);
    // Feb 28 and Mar 31 were missed while paused; Apr 30 (the 31st clamped) is next
    expect(resumed.nextDueAt).toBe('2026-04-30T09:00:00.000Z');
    await runBilling(later, { asOf: at('2026-05-01T00:00:00Z'), trigger: 'test', mandateId: m.id });
    const d = await showMandate(w.t.database, m.id);
    expect(d.charges.filter((c) => c.state !== 'skipped').map((c) => [c.cycle, c.dueAt])).toEqual([
      [0, '2026-01-31T09:00:00.000Z'],
      [3, '2026-04-30T09:00:00.000Z'],
    ]);
    // the missed cycles are recorded as skipped, with the reason, and were never sent
    const skipped = d.charges.filter((c) => c.state === 'skipped');
    expect(skipped.map((c) => [c.cycle, c.dueAt, c.attempts.length])).toEqual([
      [1, '2026-02-28T09:00:00.000Z', 0],
      [2, '2026-03-31T09:00:00.000Z', 0],
    ]);
    expect(skipped[0]?.stateReason).toMatch(/paused when it fell due/);
  });

  it('a dry run lists what is due and sends nothing', async () => {
    const v = await payer(w, api);
    const app = await w.app(at('2026-07-01T00:00:00Z'));
    const m = await mandateFor(app, w, v, {
      customerRef: 'dry-1',
      intent: 'subscription',
      amount: 100,
      currency: 'GBP',
      narrative: 'Dry',
      interval: '1 week',
      start: at('2026-07-01T00:00:00Z'),
    });
    const before = w.sandbox.ledger().length;
    const r = await runBilling(app, {
      asOf: at('2026-07-01T00:00:00Z'),
      trigger: 'test',
      mandateId: m.id,
      dryRun: true,
    });
    expect(r.forecast).toEqual([
      {
        mandateId: m.id,
        customerRef: 'dry-1',
        cycle: 0,
        amount: 100,
        currency: 'GBP',
        dueAt: '2026-07-01T00:00:00.000Z',
        kind: 'new cycle',
      },
    ]);
    expect(w.sandbox.ledger().length).toBe(before);
    const charges = await w.t.database.rows(
      sql`select count(*)::int as n from charges where mandate_id = ${m.id}`,
    );
    expect(num(charges[0]?.n)).toBe(0);
  });
});

describe('a v6 chain billed beside v7 credentials in one run', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  it('charges each through its own API: the v6 chain on its newest link, each v7 instrument with its first scheme reference', async () => {
    const app = await w.app(at('2026-03-01T08:00:00Z'));
    const payers = [
      await payer(w, 'v6'),
      await payer(w, 'v7', { instrument: 'card/token' }),
      await payer(w, 'v7', { instrument: 'card/plain', holder: 'A Customer' }),
      await payer(w, 'v7', { instrument: 'card/networkToken' }),
    ];
    const mandates = [];
    for (const [i, p] of payers.entries()) {
      mandates.push(
        await mandateFor(app, w, p, {
          customerRef: `mixed-${i}`,
          intent: 'subscription',
          amount: 500 + i,
          currency: 'GBP',
          narrative: 'Mixed run',
          interval: '1 month',
          start: at('2026-03-01T09:00:00Z'),
        }),
      );
    }
    for (const day of ['2026-03-01', '2026-04-01']) {
      const r = await runBilling(app, { asOf: at(`${day}T10:00:00Z`), trigger: 'test' });
      expect(r.counts).toMatchObject({ attempted: 4, authorized: 4, settleRequested: 4 });
    }
    const [v6, ...v7] = mandates;
    // v6: the second cycle went to the link the first returned
    const chain = w.sandbox
      .ledger()
      .filter((e) => e.chainId === payers[0]!.match.chainId && e.op === 'authorize');
    expect(chain.map((e) => [e.transactionReference, e.stale])).toEqual([
      [`rb-${v6!.id}-0-1`, false],
      [`rb-${v6!.id}-1-1`, false],
    ]);
    expect(chain.every((e) => e.api === undefined)).toBe(true);
    // v7: each instrument as stored, the first payment's scheme reference on both charges
    for (const [i, m] of v7.entries()) {
      const p = payers[i + 1]!;
      const auths = authorizations(w, m.id);
      expect(auths.map((e) => [e.api, e.instrumentType, e.schemeReference, e.outcome])).toEqual([
        ['v7', p.instrument, p.schemeReference, 'authorized'],
        ['v7', p.instrument, p.schemeReference, 'authorized'],
      ]);
      expect(auths.every((e) => e.requestAccountUpdater === false)).toBe(true);
    }
  });
});

describe('planner statistics after a large materialisation', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ANALYZE_AFTER_ROWS: '3' } });
  });
  afterAll(async () => w?.close());

  const analyzeCount = async (table = 'charges') => {
    const rows = await w.t.database.rows(
      sql`select analyze_count::int as n from pg_stat_user_tables where relname = ${table}`,
    );
    return num(rows[0]?.n ?? 0);
  };

  const mandates = async (n: number, start: Date) => {
    const v = await w.verify();
    const app = await w.app(start);
    for (let i = 0; i < n; i++) {
      await createMandate(app, {
        customerRef: `stats-${start.getTime()}-${i}`,
        intent: 'subscription',
        amount: 500,
        currency: 'GBP',
        narrative: 'Stats',
        interval: '1 year',
        start,
        credential: { link: v.href },
      });
    }
    return app;
  };

  it('analyzes the charges table when a run creates at least REBILL_ANALYZE_AFTER_ROWS charges', async () => {
    const small = await mandates(2, at('2026-02-01T00:00:00Z'));
    const r1 = await runBilling(small, { asOf: at('2026-02-01T00:00:00Z'), trigger: 'test' });
    expect(r1.counts.created).toBe(2);
    expect(await analyzeCount()).toBe(0);

    const large = await mandates(3, at('2026-03-01T00:00:00Z'));
    const r2 = await runBilling(large, { asOf: at('2026-03-01T00:00:00Z'), trigger: 'test' });
    expect(r2.counts.created).toBe(3);
    expect(r2.counts.authorized).toBe(3);
    expect(await analyzeCount()).toBe(1);
  });

  it.skipIf(!process.env.DATABASE_URL)(
    'analyzes the tables the send loop grows once a run has claimed REBILL_ANALYZE_AFTER_ROWS charges',
    async () => {
      /** How often those tables were analyzed: one figure when all agree. */
      const analyzed = async () => [
        ...new Set(await Promise.all(['attempts', 'payment_actions', 'links'].map((t) => analyzeCount(t)))),
      ];
      const before = await analyzed();
      expect(before).toHaveLength(1);
      const small = await mandates(2, at('2026-04-01T00:00:00Z'));
      expect(
        (await runBilling(small, { asOf: at('2026-04-01T00:00:00Z'), trigger: 'test' })).counts.authorized,
      ).toBe(2);
      expect(await analyzed()).toEqual(before);
      const large = await mandates(3, at('2026-05-01T00:00:00Z'));
      expect(
        (await runBilling(large, { asOf: at('2026-05-01T00:00:00Z'), trigger: 'test' })).counts.authorized,
      ).toBe(3);
      expect(await analyzed()).toEqual([before[0]! + 1]);
    },
  );
});
