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
import { runBilling } from '../../src/billing/run/run.ts';
import { num } from '../../src/db/values.ts';
import { at } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

describe('billing core against the Worldpay sandbox', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  it('charges a subscription, stores the new link, settles, and POSTs the next cycle to that link', async () => {
    const v = await w.verify();
    const app = await w.app(at('2026-01-31T09:00:00Z'));
    const m = await createMandate(app, {
      customerRef: 'sub-1',
      intent: 'subscription',
      amount: 1250,
      currency: 'GBP',
      narrative: 'Acme Gym',
      interval: '1 month',
      start: at('2026-01-31T09:00:00Z'),
      timezone: 'Europe/London',
      credential: { link: v.href },
    });
    const r1 = await runBilling(app, { asOf: at('2026-01-31T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r1.counts).toMatchObject({ attempted: 1, authorized: 1, settleRequested: 1 });
    const after1 = await showMandate(w.t.database, m.id);
    expect(after1.charges).toHaveLength(1);
    expect(after1.charges[0]).toMatchObject({ cycle: 0, state: 'settling', amount: 1250 });
    // the chain: verification link, then the link the authorization returned, which is now current
    const recurring = after1.links.filter((l) => l.rel === 'payments:recurringAuthorize');
    expect(recurring).toHaveLength(2);
    expect(recurring[0]?.href).toBe(v.href);
    expect(recurring[1]?.current).toBe(true);
    expect(after1.credential.currentLink).toBe(recurring[1]?.href);
    // month-end clamp in the mandate's zone: Jan 31 09:00 London -> Feb 28 09:00 London
    expect(after1.nextDueAt).toBe('2026-02-28T09:00:00.000Z');

    const r2 = await runBilling(app, { asOf: at('2026-02-28T10:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r2.counts.authorized).toBe(1);
    const ledger = w.sandbox.ledger().filter((e) => e.chainId === v.chainId);
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
    const v = await w.verify();
    const app = await w.app(at('2026-03-01T00:00:00Z'));
    const m = await createMandate(app, {
      customerRef: 'inst-1',
      intent: 'instalment',
      totalAmount: 1000,
      instalments: 3,
      currency: 'EUR',
      narrative: 'Sofa in 3',
      interval: '2 weeks',
      start: at('2026-03-01T12:00:00Z'),
      credential: { link: v.href },
    });
    for (const day of ['2026-03-01', '2026-03-15', '2026-03-29', '2026-04-12', '2026-05-30']) {
      await runBilling(app, { asOf: at(`${day}T13:00:00Z`), trigger: 'test', mandateId: m.id });
    }
    const d = await showMandate(w.t.database, m.id);
    expect(d.charges.map((c) => c.amount)).toEqual([333, 333, 334]);
    expect(d.charges.every((c) => c.state === 'settling')).toBe(true);
    expect(d.status).toBe('completed');
    const auths = w.sandbox.ledger().filter((e) => e.chainId === v.chainId && e.op === 'authorize');
    expect(auths).toHaveLength(3);
  });

  it('charges an unscheduled mandate only when a charge is queued', async () => {
    const v = await w.verify();
    const app = await w.app(at('2026-04-01T00:00:00Z'));
    const m = await createMandate(app, {
      customerRef: 'uns-1',
      intent: 'unscheduled',
      amount: 999,
      currency: 'USD',
      narrative: 'Top up',
      credential: { link: v.href },
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
    const auths = w.sandbox.ledger().filter((e) => e.chainId === v.chainId && e.op === 'authorize');
    expect(auths).toHaveLength(1);
    expect(auths[0]?.amount).toBe(450);
  });

  it('reconciles a response lost after the gateway committed: no second authorization', async () => {
    const v = await w.verify();
    const app = await w.app(at('2026-05-01T00:00:00Z'));
    const m = await createMandate(app, {
      customerRef: 'lost-1',
      intent: 'subscription',
      amount: 700,
      currency: 'GBP',
      narrative: 'Lost reply',
      interval: '1 month',
      start: at('2026-05-01T00:00:00Z'),
      credential: { link: v.href },
    });
    w.sandbox.script({ match: { chainId: v.chainId }, outcomes: [{ type: 'lost' }] });
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
    const auths = w.sandbox.ledger().filter((e) => e.chainId === v.chainId && e.op === 'authorize');
    expect(auths).toHaveLength(1);
    // the recovered payment brought no new recurring link: the credential keeps the one it had
    expect(d.credential.currentLink).toBe(v.href);
    const audit = await w.t.database.rows(
      sql`select reason from audit_log where entity_type = 'charge' and entity_id = ${d.charges[0]!.id} and to_state = 'authorized'`,
    );
    expect(String(audit[0]?.reason)).toMatch(/recovered by query.*credential keeps its link/);
    // the recovered payment can still be asked about: settlement follow-up reaches `settled`
    const followed = await followSettlements(app, { limit: 100 });
    expect(followed.settled).toBeGreaterThanOrEqual(1);
    d = await showMandate(w.t.database, m.id);
    expect(d.charges[0]?.state).toBe('settled');
  });

  it('skips the cycles a paused subscription missed and resumes on its calendar', async () => {
    const v = await w.verify();
    const app = await w.app(at('2026-01-31T09:00:00Z'));
    const m = await createMandate(app, {
      customerRef: 'pause-1',
      intent: 'subscription',
      amount: 800,
      currency: 'GBP',
      narrative: 'Pause test',
      interval: '1 month',
      start: at('2026-01-31T09:00:00Z'),
      credential: { link: v.href },
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
    const v = await w.verify();
    const app = await w.app(at('2026-07-01T00:00:00Z'));
    const m = await createMandate(app, {
      customerRef: 'dry-1',
      intent: 'subscription',
      amount: 100,
      currency: 'GBP',
      narrative: 'Dry',
      interval: '1 week',
      start: at('2026-07-01T00:00:00Z'),
      credential: { link: v.href },
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

describe('planner statistics after a large materialisation', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ANALYZE_AFTER_ROWS: '3' } });
  });
  afterAll(async () => w?.close());

  const analyzeCount = async () => {
    const rows = await w.t.database.rows(
      sql`select analyze_count::int as n from pg_stat_user_tables where relname = 'charges'`,
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
});
