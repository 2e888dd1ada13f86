import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { transactionReference } from '../../src/billing/charge/references.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { paymentAction } from '../../src/billing/operator/payments.ts';
import type { ReconciliationReport } from '../../src/billing/run/reconcile.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { num } from '../../src/db/values.ts';
import { createAdminServer } from '../../src/http/server.ts';
import { chargesOf, type DueMandate, dueMandates } from '../support/centre.ts';
import { runCli } from '../support/cli.ts';
import { startWorld, type World } from '../support/world.ts';

const T = new Date('2027-05-01T10:00:00Z');

/**
 * What a database forgot (a restore, a standby promoted while it lagged), the gateway
 * remembers: an earlier worker sent these references and its rows are gone. The gateway's
 * "reference already used" is never an outcome of its own; rebill asks it by the reference and
 * adopts what it knows.
 */
describe('a reference the gateway already has is adopted, not stopped', () => {
  let w: World;
  let app: App;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: 'tok' } });
    app = await w.app(T);
  });
  afterAll(async () => w?.close());

  const gw = () => app.gateway('worldpay');
  const refOf = (m: DueMandate, attempt = 1) =>
    transactionReference(app.config.billing.referencePrefix, m.id, 0, attempt);

  /** The send of a worker whose rows the database lost: same reference, same link, same amount. */
  async function forgottenSend(m: DueMandate, amount: number, attempt = 1) {
    const r = await gw().authorize({
      reference: refOf(m, attempt),
      instrument: { type: 'link', href: m.href },
      value: { amount, currency: 'GBP' },
      entity: 'default',
      narrative: 'Centre test',
      intent: 'subscription',
    });
    return r;
  }

  const ledgerFor = (ref: string) => w.sandbox.ledger().filter((e) => e.transactionReference === ref);

  it('adopts an authorization (and settles it), a settled payment and a refusal', async () => {
    const [authorized, settled, refused, fresh] = await dueMandates(w, app, { tag: 'mem', n: 4, at: T });
    if (!authorized || !settled || !refused || !fresh) throw new Error('four mandates');
    expect((await forgottenSend(authorized, 1000)).outcome).toBe('authorized');
    const s = await forgottenSend(settled, 1001);
    if (s.outcome !== 'authorized') throw new Error('authorized');
    await gw().action({ kind: 'settle', links: s.links, paymentId: s.paymentId, reference: 'x' });
    w.sandbox.script({
      match: { transactionReference: refOf(refused) },
      outcomes: [{ type: 'refuse', code: '51' }],
    });
    expect((await forgottenSend(refused, 1002)).outcome).toBe('refused');

    const report = await runBilling(app, { asOf: T, trigger: 'test', followSettlements: true });

    expect(report.counts.adopted).toBe(3);
    expect(report.counts.stopped).toBe(0);
    const state = async (m: DueMandate) => (await chargesOf(app, m.id))[0]?.state;
    expect(await state(authorized)).toBe('settled');
    expect(await state(settled)).toBe('settled');
    expect(await state(refused)).toBe('retry_scheduled');
    expect(await state(fresh)).toBe('settled');
    // One authorization each at the gateway; the adopted one settled once, the settled one not again.
    for (const m of [authorized, settled, fresh]) {
      const at = ledgerFor(refOf(m));
      expect(at.filter((e) => e.op === 'authorize' && e.outcome === 'authorized')).toHaveLength(1);
      expect(at.filter((e) => e.op === 'settle' && e.outcome === 'accepted')).toHaveLength(1);
    }
    const rows = await app.database.rows(
      sql`select a.state, c.settled_amount from attempts a join charges c on c.id = a.charge_id
           where a.transaction_reference in (${refOf(authorized)}, ${refOf(settled)}, ${refOf(refused)})
           order by a.transaction_reference`,
    );
    expect(rows.map((r) => String(r.state)).sort()).toEqual(['authorized', 'authorized', 'refused']);
    expect(rows.map((r) => num(r.settled_amount)).sort()).toEqual([0, 1000, 1001]);
    // The mandates go on: their next cycle is due, none stopped.
    const stopped = await app.database.rows(
      sql`select count(*)::int as n from mandates where status <> 'active' and id in (${authorized.id}, ${settled.id}, ${refused.id})`,
    );
    expect(num(stopped[0]?.n)).toBe(0);
  });

  it('an operator action the gateway already has is recorded as accepted, not failed', async () => {
    const v = await w.verify();
    const m = await createMandate(app, {
      customerRef: 'mem-op',
      intent: 'subscription',
      amount: 700,
      currency: 'GBP',
      narrative: 'Centre test',
      interval: '1 month',
      start: T,
      settleMode: 'none',
      credential: { link: v.href },
    });
    await runBilling(app, { asOf: T, trigger: 'test', mandateId: m.id });
    const [charge] = await chargesOf(app, m.id);
    if (!charge) throw new Error('charged');
    const links = await app.database.rows<{ rel: string; href: string }>(
      sql`select l.rel, l.href from payment_links l where l.charge_id = ${charge.id} order by l.action_id nulls first, l.n`,
    );
    const byRel = Object.fromEntries(links.map((l) => [l.rel, l.href]));
    // A worker whose database forgot it settled this payment, then refunded it.
    const settledOutside = await gw().action({
      kind: 'settle',
      links: byRel,
      paymentId: byRel['payments:events'] ?? '',
      reference: 'x',
    });
    if (settledOutside.outcome !== 'accepted') throw new Error('accepted');

    const settle = await paymentAction(app, charge.id, 'settle');
    expect(settle.outcome).toBe('accepted');
    expect(settle.charge).toMatchObject({ state: 'settling', settledAmount: 700 });

    await gw().action({ kind: 'refund', links: settledOutside.links, paymentId: '', reference: 'y' });
    const refund = await paymentAction(app, charge.id, 'refund');
    expect(refund.outcome).toBe('accepted');
    expect(refund.charge).toMatchObject({ refundedAmount: 700 });
    const actions = await app.database.rows(
      sql`select kind, state from payment_actions where charge_id = ${charge.id} order by id`,
    );
    expect(actions.map((a) => `${a.kind}:${a.state}`)).toEqual(['settle:accepted', 'refund:accepted']);
  });

  it('POST /v1/reconciliations adopts what the gateway has before anything new is sent', async () => {
    const at = new Date('2027-07-01T10:00:00Z');
    const clocked = await w.app(at);
    const server = await createAdminServer({ ctx: clocked, runner: createRunner(clocked) });
    const url = await server.listen('127.0.0.1:0');
    try {
      const [paid, retried, untouched] = await dueMandates(w, clocked, { tag: 'rec', n: 3, at });
      if (!paid || !retried || !untouched) throw new Error('three mandates');
      const ref = (m: DueMandate, n = 1) => transactionReference('rb', m.id, 0, n);
      // A lost worker authorized one, and for another: a refusal, then its retry authorized.
      expect((await forgottenSend(paid, 1000)).outcome).toBe('authorized');
      w.sandbox.script({
        match: { transactionReference: ref(retried) },
        outcomes: [{ type: 'refuse', code: '51' }],
      });
      expect((await forgottenSend(retried, 1001)).outcome).toBe('refused');
      expect((await forgottenSend(retried, 1001, 2)).outcome).toBe('authorized');
      const before = w.sandbox.ledger().length;

      const res = await request(`${url}/v1/reconciliations`, {
        method: 'POST',
        headers: { authorization: 'Bearer tok', 'content-type': 'application/json' },
        body: JSON.stringify({ since: '2027-07-01T09:00:00Z' }),
      });
      expect(res.statusCode).toBe(200);
      const report = (await res.body.json()) as ReconciliationReport;
      expect(report.adopted.map((a) => [a.reference, a.outcome]).sort()).toEqual(
        [
          [ref(paid), 'authorized'],
          [ref(retried), 'refused'],
          [ref(retried, 2), 'authorized'],
        ].sort(),
      );
      expect(report.errors).toBe(0);
      // Nothing was authorized again: the only new requests are the two settles.
      const sent = w.sandbox.ledger().slice(before);
      expect(sent.filter((e) => e.op === 'authorize')).toHaveLength(0);
      expect(
        sent
          .filter((e) => e.op === 'settle')
          .map((e) => e.transactionReference)
          .sort(),
      ).toEqual([ref(paid), ref(retried, 2)].sort());
      expect((await chargesOf(clocked, paid.id))[0]?.state).toBe('settled');
      expect((await chargesOf(clocked, retried.id))[0]?.state).toBe('settled');
      // The one the gateway never saw is left to the run, which sends it once; the credentials
      // the reconciliation's claims leased are released, so a run of another process may take them.
      expect((await chargesOf(clocked, untouched.id))[0]?.state).toBe('pending');
      expect(
        await clocked.database.rows(sql`select id from credentials where lease_owner is not null`),
      ).toEqual([]);
      const run = await runBilling(clocked, { asOf: at, trigger: 'test', mandateId: untouched.id });
      expect(run.counts).toMatchObject({ authorized: 1, adopted: 0 });

      const bad = await request(`${url}/v1/reconciliations`, {
        method: 'POST',
        headers: { authorization: 'Bearer tok', 'content-type': 'application/json' },
        body: JSON.stringify({ since: '2099-01-01T00:00:00Z' }),
      });
      expect(bad.statusCode).toBe(400);
      expect(JSON.stringify(await bad.body.json())).toMatch(/since/);
    } finally {
      await server.close();
    }
  });

  it('rebill reconcile: a bad --since exits 2 naming it; a good one reports in JSON', async () => {
    const bad = await runCli(['reconcile', '--since', 'yesterday'], w.env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--since/);
    const ok = await runCli(['reconcile', '--since', '2026-01-01T00:00:00Z', '--json'], w.env);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ since: '2026-01-01T00:00:00.000Z', errors: 0 });
    const human = await runCli(['reconcile', '--since', '2026-01-01'], w.env);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/reconciled with the gateway since 2026-01-01T00:00:00.000Z/);
  });
});
