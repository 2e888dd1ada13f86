import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, openApp } from '../../src/app.ts';
import {
  cancelMandate,
  createMandate,
  pauseMandate,
  resumeMandate,
  showMandate,
} from '../../src/billing/mandates/index.ts';
import { paymentAction, paymentEvents } from '../../src/billing/operator/payments.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { claimDueCharges } from '../../src/billing/sql/claim-due.ts';
import { writeAhead } from '../../src/billing/sql/write-ahead.ts';
import { fixedClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { num } from '../../src/db/values.ts';
import { chargeMachine, machines, transitionRows } from '../../src/domain/lifecycle.ts';
import { ValidationError } from '../../src/errors.ts';
import { createAdminServer } from '../../src/http/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { at, DAY } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

describe('lifecycle: one door, enforced tables and guard rails', () => {
  let w: World;
  let n = 0;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  async function subscription(app: App, href: string, extra: Record<string, unknown> = {}) {
    return createMandate(app, {
      customerRef: `lc-${++n}`,
      intent: 'subscription',
      amount: 1500,
      currency: 'GBP',
      narrative: 'Lifecycle test',
      interval: '1 month',
      credential: { link: href },
      ...extra,
    });
  }

  it('every machine of the code has its transition guard trigger in the database', async () => {
    const rows = await w.t.database.rows(
      sql`select tgrelid::regclass::text as tbl, pg_get_triggerdef(oid) as def from pg_trigger where tgname like '%transition_guard'`,
    );
    const guarded = rows.map((r) => String(r.def).match(/rebill_guard_\w+\('(\w+)'\)/)?.[1]).sort();
    expect(guarded).toEqual(machines.map((m) => m.name).sort());
    // A move the mandate-change table does not list (cancelled back to scheduled) is refused by
    // the database itself; one it lists is not.
    const app = await w.app(at('2026-01-10T10:00:00Z'));
    const m = await subscription(app, (await w.verify()).href);
    const [c] = await w.t.database.rows(
      sql`insert into mandate_changes (mandate_id, effective_at, changes) values (${m.id}, now(), '{}'::jsonb) returning id`,
    );
    await w.t.database.rows(sql`update mandate_changes set state = 'cancelled' where id = ${c!.id}`);
    await expect(
      w.t.database.rows(sql`update mandate_changes set state = 'scheduled' where id = ${c!.id}`),
    ).rejects.toThrow();
    // Out of the later tests' runs.
    await w.t.database.rows(sql`update mandates set status = 'cancelled' where id = ${m.id}`);
  });

  it('the database holds the same transition table as the code, and its trigger refuses any other move', async () => {
    const rows = await w.t.database.rows(sql`select machine, from_state, to_state from state_transitions`);
    const db = rows.map((r) => `${r.machine}:${r.from_state ?? '-'}>${r.to_state}`).sort();
    const code = transitionRows()
      .map((r) => `${r.machine}:${r.from ?? '-'}>${r.to}`)
      .sort();
    expect(db).toEqual(code);
    const app = await w.app(at('2026-01-10T10:00:00Z'));
    const v = await w.verify();
    const m = await subscription(app, v.href, { start: at('2026-01-10T10:00:00Z') });
    await runBilling(app, {
      asOf: at('2026-01-10T10:00:00Z'),
      trigger: 'test',
      mandateId: m.id,
      dryRun: false,
    });
    const c = (await showMandate(w.t.database, m.id)).charges[0]!;
    expect(c.state).toBe('settling');
    // settling -> pending is not in the table: refused by the database itself.
    expect(chargeMachine.transitions.settling).not.toContain('pending');
    await expect(
      w.t.database.rows(sql`update charges set state = 'pending' where id = ${c.id}`),
    ).rejects.toThrow();
    await expect(
      w.t.database.rows(sql`update charges set state = 'bogus' where id = ${c.id}`),
    ).rejects.toThrow();
    // every audited charge move is one the table allows
    const audit = await w.t.database.rows(
      sql`select from_state, to_state from audit_log where entity_type = 'charge' and from_state is not null and from_state <> to_state`,
    );
    expect(audit.length).toBeGreaterThan(0);
    for (const a of audit)
      expect(chargeMachine.transitions[a.from_state as keyof typeof chargeMachine.transitions]).toContain(
        a.to_state,
      );
  });

  it('a paused mandate\u2019s retry is not sent; after resume it is', async () => {
    const t0 = at('2026-02-01T10:00:00Z');
    const app = await w.app(t0);
    const v = await w.verify();
    const m = await subscription(app, v.href, { start: t0 });
    w.sandbox.script({ match: { chainId: v.chainId }, outcomes: [{ type: 'refuse', code: '51' }] });
    const r1 = await runBilling(app, { asOf: t0, trigger: 'test', mandateId: m.id });
    expect(r1.counts).toMatchObject({ refused: 1, retryScheduled: 1 });
    await pauseMandate(app, m.id);
    const later = new Date(t0.getTime() + 4 * DAY);
    const r2 = await runBilling(await w.app(later), { asOf: later, trigger: 'test' });
    expect(r2.counts.attempted).toBe(0);
    const auths = () => w.sandbox.ledger().filter((e) => e.chainId === v.chainId && e.op === 'authorize');
    expect(auths()).toHaveLength(1);
    const app2 = await w.app(later);
    await resumeMandate(app2, m.id);
    const r3 = await runBilling(app2, { asOf: later, trigger: 'test', mandateId: m.id });
    expect(r3.counts.authorized).toBe(1);
    expect(auths()).toHaveLength(2);
  });

  it('a start 400 days back charges only the latest cycle; with backfill, every one', async () => {
    const now = at('2026-06-15T12:00:00Z');
    const app = await w.app(now);
    const start = new Date(now.getTime() - 400 * DAY);
    const v1 = await w.verify();
    const m1 = await subscription(app, v1.href, { start });
    const r1 = await runBilling(app, { asOf: now, trigger: 'test', mandateId: m1.id });
    expect(r1.counts.authorized).toBe(1);
    const v2 = await w.verify();
    const m2 = await subscription(app, v2.href, { start, backfill: true });
    const r2 = await runBilling(app, { asOf: now, trigger: 'test', mandateId: m2.id });
    expect(r2.counts.authorized).toBe(14);
    // an instalment plan is not silently shortened
    await expect(
      createMandate(app, {
        customerRef: `lc-${++n}`,
        intent: 'instalment',
        amount: 1000,
        instalments: 6,
        currency: 'GBP',
        narrative: 'Plan',
        interval: '1 month',
        start,
        credential: { link: (await w.verify()).href },
      }),
    ).rejects.toThrow(/start: is \d+ instalment/);
  });

  it('catching up after downtime charges at most REBILL_MAX_CATCH_UP_CYCLES and records the rest as skipped', async () => {
    const t0 = at('2026-01-03T09:00:00Z');
    const app = await w.app(t0);
    const v = await w.verify();
    const m = await subscription(app, v.href, { start: t0, interval: '1 week' });
    const later = new Date(t0.getTime() + 10 * 7 * DAY + 3_600_000); // cycles 0..10 due
    const r = await runBilling(await w.app(later), { asOf: later, trigger: 'test', mandateId: m.id });
    expect(r.counts.authorized).toBe(3);
    expect(r.counts.missedCycles).toBe(8);
    const d = await showMandate(w.t.database, m.id);
    expect(d.charges.filter((c) => c.state === 'skipped').map((c) => c.cycle)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7,
    ]);
    expect(d.charges.find((c) => c.state === 'skipped')?.stateReason).toMatch(/REBILL_MAX_CATCH_UP_CYCLES/);
  });

  it('a refusal that blocks the card stops the charges written ahead behind it on that card', async () => {
    const t0 = at('2026-04-06T09:00:00Z');
    const app = await w.app(t0);
    const v = await w.verify();
    const m = await subscription(app, v.href, { start: t0, interval: '1 week' });
    // two weeks later two cycles are due: both go out in one batch, one after the other on the card
    w.sandbox.script({
      match: { chainId: v.chainId },
      outcomes: [{ type: 'refuse', code: '05', adviceCode: '03' }],
    });
    const later = new Date(t0.getTime() + 7 * DAY + 3_600_000);
    const r = await runBilling(await w.app(later), { asOf: later, trigger: 'test', mandateId: m.id });
    expect(r.counts.refused).toBe(1);
    const auths = w.sandbox.ledger().filter((e) => e.chainId === v.chainId && e.op === 'authorize');
    expect(auths).toHaveLength(1);
    const d = await showMandate(w.t.database, m.id);
    const second = d.charges.find((c) => c.attempts.some((x) => x.state === 'not_sent'));
    expect(second?.state).toBe('needs_new_credential');
    expect(second?.attempts[0]?.decisionReason).toMatch(/card was blocked/);
  });

  it('a run more than five minutes ahead of the wall clock is refused unless asked for', async () => {
    const config = loadConfig({ ...w.env, REBILL_ALLOW_FUTURE_RUNS: '0' });
    const app = await openApp(config, { database: w.t.database, logger: silentLogger });
    const ahead = new Date(Date.now() + 19 * DAY);
    await expect(runBilling(app, { asOf: ahead, trigger: 'test' })).rejects.toThrow(/asOf: .* ahead of now/);
    await expect(runBilling(app, { asOf: ahead, trigger: 'test', asOfField: '--at' })).rejects.toThrow(
      /--at: .*--allow-future/,
    );
    // a dry run sends nothing and may look ahead; a run that means it may too
    await expect(runBilling(app, { asOf: ahead, trigger: 'test', dryRun: true })).resolves.toBeTruthy();
    const soon = new Date(Date.now() + 60_000);
    await expect(runBilling(app, { asOf: soon, trigger: 'test', limit: 1 })).resolves.toBeTruthy();
    await app.close();
  });

  it('impossible dates, foreign links, expired cards and contradictions are errors naming the field', async () => {
    const app = await w.app(at('2026-07-01T00:00:00Z'));
    const href = (await w.verify()).href;
    const bad = async (extra: Record<string, unknown>, field: RegExp) => {
      const err = await subscription(app, href, extra).catch((e) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field).toMatch(field);
    };
    await bad({ start: '2027-02-30' }, /^start$/);
    await bad({ start: '2027-02-28T25:00:00Z' }, /^start$/);
    await bad({ start: null }, /^start$/);
    await bad({ start: 0 }, /^start$/);
    await bad({ start: '1999-12-31' }, /^start$/);
    await bad(
      { credential: { link: 'https://evil.example.com/payments/authorizations/recurring/x' } },
      /link/,
    );
    await bad({ credential: { link: `${w.sandbox.url}/somewhere/else` } }, /link/);
    await bad({ credential: { link: 'javascript:alert(1)' } }, /link/);
    await bad(
      { credential: { cardNumber: '4444333322221111', expiryMonth: 1, expiryYear: 2026 } },
      /credential\.expiry/,
    );
    await bad({ intent: 'instalment', instalments: 3, totalAmount: 10_000, amount: 100 }, /^amount$/);
    // a date without an offset is local time in the mandate's zone
    const m = await subscription(app, href, { start: '2026-07-01T09:00', timezone: 'Europe/London' });
    expect(m.startAt).toBe('2026-07-01T08:00:00.000Z');
  });

  it('a missing card key stops nothing: the mandate stays active, the run says so, and the charge goes once the key is back', async () => {
    const t0 = at('2026-08-01T10:00:00Z');
    const withKey = await w.app(t0);
    const m = await createMandate(withKey, {
      customerRef: `lc-${++n}`,
      intent: 'subscription',
      amount: 990,
      currency: 'GBP',
      narrative: 'Card on file',
      interval: '1 month',
      start: t0,
      credential: { cardNumber: '4444333322221111', expiryMonth: 12, expiryYear: 2030 },
    });
    const keyless = await openApp(loadConfig({ ...w.env, REBILL_ENCRYPTION_KEY: '' }), {
      database: w.t.database,
      clock: fixedClock(t0),
      logger: silentLogger,
    });
    const r1 = await runBilling(keyless, { asOf: t0, trigger: 'test', mandateId: m.id });
    await keyless.close();
    expect(r1.status).toBe('completed_with_errors');
    expect(r1.errors.join(' ')).toMatch(/REBILL_ENCRYPTION_KEY/);
    const d1 = await showMandate(w.t.database, m.id);
    expect(d1.status).toBe('active');
    expect(d1.charges[0]?.state).toBe('pending');
    const leased = await w.t.database.rows(sql`select lease_owner from charges where mandate_id = ${m.id}`);
    expect(leased[0]?.lease_owner).toBeNull();
    const r2 = await runBilling(withKey, { asOf: t0, trigger: 'test', mandateId: m.id });
    expect(r2.status).toBe('completed');
    expect(r2.counts.authorized).toBe(1);
  });

  it('a lease lost while a refusal is in flight is counted, and the run carries on', async () => {
    const t0 = at('2026-09-01T10:00:00Z');
    const app = await w.app(t0);
    const v = await w.verify();
    const other = await w.verify();
    const m = await subscription(app, v.href, { start: t0 });
    const m2 = await subscription(app, other.href, { start: t0 });
    w.sandbox.script({
      match: { chainId: v.chainId },
      outcomes: [{ type: 'slow', ms: 400, next: { type: 'refuse', code: '51' } }],
    });
    const running = runBilling(app, { asOf: t0, trigger: 'test' });
    // While the refusal is on its way back, another worker takes the charge over.
    for (let i = 0; i < 100; i++) {
      const r = await w.t.database.rows(sql`select state from charges where mandate_id = ${m.id}`);
      if (r[0]?.state === 'attempting') break;
      await new Promise((res) => setTimeout(res, 10));
    }
    await w.t.database.rows(sql`update charges set fence = fence + 1 where mandate_id = ${m.id}`);
    const report = await running;
    expect(report.status).toBe('completed');
    expect(report.counts.lostLeases).toBe(1);
    expect((await showMandate(w.t.database, m2.id)).charges[0]?.state).toBe('settling');
    // the fenced-out refusal wrote nothing
    expect((await showMandate(w.t.database, m.id)).charges[0]?.state).toBe('attempting');
  });

  it('a mandate cancelled between claim and write-ahead sends nothing', async () => {
    const t0 = at('2026-10-01T10:00:00Z');
    const app = await w.app(t0);
    const v = await w.verify();
    const m = await subscription(app, v.href, { start: t0 });
    await runBilling(app, { asOf: new Date(t0.getTime() - 1), trigger: 'test', mandateId: m.id });
    // materialise the charge without sending it: a dry run does not, so claim directly
    await w.t.database.rows(
      sql`insert into charges (mandate_id, cycle, amount, currency, due_at, next_attempt_at) values (${m.id}, 0, 1500, 'GBP', ${t0.toISOString()}::timestamptz, ${t0.toISOString()}::timestamptz)`,
    );
    const claimed = await claimDueCharges(w.t.database, {
      asOf: t0,
      owner: 'test-worker',
      leaseSeconds: 60,
      limit: 10,
      mandateId: m.id,
    });
    expect(claimed).toHaveLength(1);
    await cancelMandate(app, m.id);
    const planned = await writeAhead(
      w.t.database,
      claimed.map((c) => ({
        charge: c,
        reference: `lc-cancel-${c.id}`,
        kind: 'recurring',
        linkHref: v.href,
      })),
      t0,
    );
    expect(planned).toHaveLength(0);
    const d = await showMandate(w.t.database, m.id);
    expect(d.charges[0]?.state).toBe('cancelled');
    expect(d.charges[0]?.attempts).toHaveLength(0);
  });

  it('a full refund right after settle resolves to refunded, and follow-up stops asking', async () => {
    const t0 = at('2026-11-02T10:00:00Z');
    const app = await w.app(t0);
    const v = await w.verify();
    const m = await subscription(app, v.href, { start: t0 });
    await runBilling(app, { asOf: t0, trigger: 'test', mandateId: m.id });
    const chargeId = (await showMandate(w.t.database, m.id)).charges[0]!.id;
    const out = await paymentAction(app, chargeId, 'refund').catch((e) => e);
    // nothing settled yet by the sandbox clock: refunding is refused, or accepted as refunded
    if (out instanceof Error) {
      expect(out.message).toMatch(/nothing is settled|refund/);
      return;
    }
    expect(out.charge.state).toBe('refunded');
    const ev = await paymentEvents(app, chargeId);
    expect(ev.charge.state).toBe('refunded');
    const asked = async () =>
      num(
        (
          await w.t.database.rows(
            sql`select count(*)::int as n from payment_events pe join attempts a on a.id = pe.attempt_id where a.charge_id = ${chargeId}`,
          )
        )[0]?.n,
      );
    const before = await asked();
    await runBilling(app, { asOf: t0, trigger: 'test', followSettlements: true, mandateId: m.id });
    // a refunded payment is final: the follow-up does not ask about it again
    expect(await asked()).toBe(before);
  });

  it('without webhook secrets the receiver fails closed (503), unless unsigned events are allowed by name', async () => {
    for (const [allow, status] of [
      ['0', 503],
      ['1', 200],
    ] as const) {
      const config = loadConfig({
        ...w.env,
        REBILL_ADMIN_TOKENS: 'tok',
        WORLDPAY_WEBHOOK_ALLOW_UNSIGNED: allow,
      });
      const app = await openApp(config, { database: w.t.database, logger: silentLogger });
      const server = await createAdminServer({ ctx: app, runner: createRunner(app) });
      const url = await server.listen('127.0.0.1:0');
      const res = await request(`${url}/webhooks/worldpay`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          eventId: `forged-${allow}`,
          eventDetails: { transactionReference: 'nobody', type: 'refunded' },
        }),
      });
      await res.body.text();
      expect(res.statusCode).toBe(status);
      await server.close();
      await app.close();
    }
  });

  it('every charge move in this file went through the table', async () => {
    const audit = await w.t.database.rows(
      sql`select from_state, to_state, count(*)::int as n from audit_log where entity_type = 'charge' and from_state is not null and from_state <> to_state group by 1, 2`,
    );
    const bad = audit.filter(
      (a) =>
        !chargeMachine.transitions[a.from_state as keyof typeof chargeMachine.transitions]?.includes(
          a.to_state as never,
        ),
    );
    expect(bad).toEqual([]);
    expect(audit.reduce((s, a) => s + num(a.n), 0)).toBeGreaterThan(10);
  });
});
