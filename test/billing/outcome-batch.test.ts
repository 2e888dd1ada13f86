import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { outcomeBatcher } from '../../src/billing/charge/outcome.ts';
import { prepareBatch } from '../../src/billing/charge/prepare.ts';
import { planSettle } from '../../src/billing/charge/settle.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { materializeDueCharges } from '../../src/billing/mandates/materialize.ts';
import { claimDueCharges } from '../../src/billing/sql/claim-due.ts';
import { num } from '../../src/db/values.ts';
import type { AuthorizeResult } from '../../src/gateways/types.ts';
import { runTally } from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * The send loop's group commit of authorizations, on PostgreSQL against the sandbox: charges
 * written ahead for real, authorized for real, then committed through the batcher, which must
 * write exactly what the one-charge commit writes, fence each charge on its own, keep a shared
 * credential on its newest link, and fall back to one commit per charge when a batch fails.
 */
describe.skipIf(!hasServer)('outcome batch (PostgreSQL)', () => {
  let w: World;
  let app: App;
  const at = new Date('2026-05-01T09:00:00Z');
  beforeAll(async () => {
    w = await startWorld();
    app = await w.app(at);
  });
  afterAll(async () => w?.close());

  /** n mandates due now (`shared`: all on one credential), claimed, written ahead and authorized. */
  async function authorized(tag: string, n: number, opts: { shared?: boolean } = {}) {
    const first = await w.verify();
    for (let i = 0; i < n; i++) {
      const href = opts.shared ? first.href : (await w.verify()).href;
      await createMandate(app, {
        customerRef: opts.shared ? `${tag}` : `${tag}-${i}`,
        intent: 'subscription',
        amount: 1000 + i,
        currency: 'GBP',
        narrative: 'Batch test',
        interval: '1 month',
        start: at,
        credential: { link: href },
      });
    }
    await materializeDueCharges(app.database, at, { batchSize: 100 });
    const claimed = await claimDueCharges(app.database, {
      asOf: at,
      owner: app.workerId,
      leaseSeconds: 300,
      limit: 100,
    });
    const book = runTally(app);
    const ready = (await prepareBatch(app, claimed, at, book)).flat();
    expect(ready).toHaveLength(n);
    const out = [];
    let newest: string | undefined;
    for (const { attempt: p, instrument } of ready) {
      // One credential's charges go in turn, each on the link the previous one returned.
      const inst = newest ? { type: 'link' as const, href: newest } : instrument;
      const r = await app.gateway('worldpay').authorize({
        reference: p.reference,
        instrument: inst,
        value: { amount: p.charge.amount, currency: p.charge.currency },
        entity: p.charge.entity,
        narrative: p.charge.narrative,
        intent: p.charge.intent,
      });
      if (r.outcome !== 'authorized') throw new Error(`not authorized: ${r.outcome}`);
      if (opts.shared) newest = r.nextRecurringLink;
      if (inst.type === 'link') p.linkHref = inst.href;
      out.push({ p, r: r as Extract<AuthorizeResult, { outcome: 'authorized' }> });
    }
    return out;
  }

  const rowsOf = (ids: number[]) =>
    w.t.database.rows(sql`select c.id, c.state, c.authorized_attempt_id, a.state as attempt_state, a.gateway_payment_id,
        (select count(*) from payment_links l where l.attempt_id = a.id and l.action_id is null)::int as links,
        (select count(*) from payment_actions pa where pa.charge_id = c.id and pa.state = 'requested')::int as settles,
        (select count(*) from audit_log al where al.entity_type = 'charge' and al.entity_id = c.id and al.to_state = 'authorized')::int as audits,
        (select count(*) from events e where e.type = 'charge.authorized' and (e.data->>'id')::bigint = c.id)::int as events
      from charges c join attempts a on a.charge_id = c.id
      where c.id in (${sql.join(
        ids.map((i) => sql`${i}`),
        sql`, `,
      )}) order by c.id`);

  it('commits what came back during a commit in one statement, each charge as the one-charge commit would', async () => {
    const items = await authorized('batch', 5);
    const batcher = outcomeBatcher(app);
    const results = await Promise.all(
      items.map(({ p, r }) => batcher.commit(p, r, planSettle(p.charge, p.reference, r.links, r.paymentId))),
    );
    await batcher.close();
    for (const res of results) expect(res).toEqual({ settleActionId: expect.any(Number) });
    const rows = await rowsOf(items.map((i) => i.p.charge.id));
    for (const [i, row] of rows.entries()) {
      const { p, r } = items[i]!;
      expect(row).toMatchObject({
        state: 'authorized',
        attempt_state: 'authorized',
        gateway_payment_id: r.paymentId,
        links: Object.keys(r.links).length,
        settles: 1,
        audits: 1,
        events: 1,
      });
      expect(num(row.authorized_attempt_id)).toBe(p.attemptId);
      // The credential moved to the link this authorization returned.
      const cred = await w.t.database.rows(
        sql`select l.href from credentials cr join links l on l.id = cr.current_link_id where cr.id = ${p.charge.credentialId}`,
      );
      expect(cred[0]?.href).toBe(r.nextRecurringLink);
    }
  });

  it('writes nothing for a charge whose fence moved, and answers false for it alone', async () => {
    const items = await authorized('fenced', 3);
    const taken = items[1]!.p.charge.id;
    await w.t.database.rows(sql`update charges set fence = fence + 1 where id = ${taken}`);
    const batcher = outcomeBatcher(app);
    const results = await Promise.all(items.map(({ p, r }) => batcher.commit(p, r, null)));
    await batcher.close();
    expect(results[1]).toBe(false);
    expect(results[0]).toEqual({ settleActionId: null });
    expect(results[2]).toEqual({ settleActionId: null });
    const rows = await rowsOf(items.map((i) => i.p.charge.id));
    expect(rows.map((r) => r.state)).toEqual(['authorized', 'attempting', 'authorized']);
    expect(rows[1]).toMatchObject({ attempt_state: 'sending', links: 0, audits: 0 });
  });

  it('keeps a credential shared by charges of one batch on the newest link', async () => {
    const items = await authorized('shared', 3, { shared: true });
    const credentialId = items[0]!.p.charge.credentialId;
    expect(items.every((i) => i.p.charge.credentialId === credentialId)).toBe(true);
    const batcher = outcomeBatcher(app);
    // The first goes alone; the other two wait for it and go together.
    const results = await Promise.all(items.map(({ p, r }) => batcher.commit(p, r, null)));
    await batcher.close();
    expect(results.every((r) => r !== false)).toBe(true);
    const cred = await w.t.database.rows(
      sql`select l.href from credentials cr join links l on l.id = cr.current_link_id where cr.id = ${credentialId}`,
    );
    expect(cred[0]?.href).toBe(items[2]!.r.nextRecurringLink);
  });

  it('commits a failed batch one charge at a time: the bad charge fails alone', async () => {
    const items = await authorized('fallback', 4);
    const batcher = outcomeBatcher(app);
    const bad = items[2]!;
    // A settle pointing at an attempt that does not exist breaks a foreign key: the statement
    // that carries it fails, whichever charges ride with it.
    const settleOf = (i: (typeof items)[number]) =>
      planSettle(i.p.charge, i.p.reference, i.r.links, i.r.paymentId);
    const results = await Promise.allSettled(
      items.map((i) => batcher.commit(i === bad ? { ...i.p, attemptId: 2 ** 40 } : i.p, i.r, settleOf(i))),
    );
    await batcher.close();
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    const rows = await rowsOf(items.map((i) => i.p.charge.id));
    expect(rows.map((r) => r.state)).toEqual(['authorized', 'authorized', 'attempting', 'authorized']);
    expect(rows[2]).toMatchObject({ links: 0, settles: 0, audits: 0 });
  });
});

describe.skipIf(hasServer)('outcome batch', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
