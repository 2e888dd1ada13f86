import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import {
  commitAuthorized,
  commitDeferred,
  commitRefused,
  commitUnknown,
  type PlannedAttempt,
  refusalTarget,
} from '../../src/billing/charge/outcome.ts';
import { planSettle } from '../../src/billing/charge/settle.ts';
import { materializeDueCharges } from '../../src/billing/mandates/materialize.ts';
import { commitAcceptances } from '../../src/billing/sql/payment-actions.ts';
import { renewLease } from '../../src/billing/sql/transitions.ts';
import { writeAhead } from '../../src/billing/sql/write-ahead.ts';
import { aheadItem, authorizeAtSandbox, chargeRow, claimDue, dueMandates } from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * The fence on every other commit of a charge's way, statement by statement: an answer whose
 * charge was taken over after its claim (the fencing token moved) writes nothing, whether it is
 * a refusal, a lost answer, a deferral or a settle's acceptance, and the claim leaves the charges
 * of a held mandate alone. The write-ahead's and the authorization's fences have files of their
 * own (sql.write-ahead.test.ts, sql.authorized-outcomes.test.ts).
 */
describe.skipIf(!hasServer)('sql: fences of the outcome and acceptance commits (PostgreSQL)', () => {
  const at = new Date('2026-05-01T09:00:00Z');
  let w: World;
  let app: App;
  beforeEach(async () => {
    w = await startWorld();
    app = await w.app(at);
  });
  afterEach(async () => w?.close());

  /** n charges claimed and written ahead. */
  async function writtenAhead(tag: string, n: number): Promise<PlannedAttempt[]> {
    await dueMandates(w, app, { tag, n, at });
    const claimed = await claimDue(app, at);
    const planned = await writeAhead(
      app.database,
      claimed.map((c) => aheadItem(app, c)),
      at,
    );
    expect(planned).toHaveLength(n);
    return planned;
  }

  /** Another holder takes the charge over: its fencing token moves on. */
  async function takeOver(p: PlannedAttempt): Promise<void> {
    await app.database.rows(sql`update charges set fence = fence + 1 where id = ${p.charge.id}`);
  }

  async function attemptState(p: PlannedAttempt): Promise<string> {
    const rows = await app.database.rows<{ state: string }>(
      sql`select state from attempts where id = ${p.attemptId}`,
    );
    return rows[0]!.state;
  }

  it('a refusal, a lost answer and a deferral each write nothing once the fence moved', async () => {
    const planned = await writtenAhead('outcomes', 6);
    const stale = planned.slice(0, 3);
    for (const p of stale) await takeOver(p);
    const before = await Promise.all(stale.map((p) => chargeRow(app, p.charge.id)));
    const refusal = { attemptState: 'refused' as const, code: '5', error: 'Do not honour' };
    const retry = {
      action: 'retry' as const,
      retryAt: new Date(at.getTime() + 86_400_000),
      reason: 'soft decline',
    };

    const answers = [
      await commitRefused(app.database, refusalTarget(stale[0]!), refusal, retry, null),
      await commitUnknown(app.database, stale[1]!, { latencyMs: 1, reason: 'timeout' }),
      await commitDeferred(app.database, stale[2]!, { attemptState: 'not_sent', reason: 'shutting down' }),
    ];

    expect(answers).toEqual([false, false, false]);
    expect(await Promise.all(stale.map((p) => chargeRow(app, p.charge.id)))).toEqual(before);
    expect(await Promise.all(stale.map(attemptState))).toEqual(['sending', 'sending', 'sending']);

    // The same commits, by the holder of the current fence, are written.
    const fresh = planned.slice(3);
    expect([
      await commitRefused(app.database, refusalTarget(fresh[0]!), refusal, retry, null),
      await commitUnknown(app.database, fresh[1]!, { latencyMs: 1, reason: 'timeout' }),
      await commitDeferred(app.database, fresh[2]!, { attemptState: 'not_sent', reason: 'shutting down' }),
    ]).toEqual([true, true, true]);
    expect((await Promise.all(fresh.map((p) => chargeRow(app, p.charge.id)))).map((r) => r.state)).toEqual([
      'retry_scheduled',
      'unknown',
      'pending',
    ]);
  });

  it("a settle's acceptance is not committed for a charge taken over meanwhile, and its lease stays with the new holder", async () => {
    const planned = await writtenAhead('acceptance', 2);
    const settled: { p: PlannedAttempt; actionId: number; paymentId: string }[] = [];
    for (const p of planned) {
      const r = await authorizeAtSandbox(app, p);
      const settle = planSettle(p.charge, p.reference, r.links, r.paymentId);
      const committed = await commitAuthorized(app.database, p, r, settle);
      if (committed === false || committed.settleActionId === null)
        throw new Error('no settle written ahead');
      settled.push({ p, actionId: committed.settleActionId, paymentId: r.paymentId });
    }
    const [stale, fresh] = settled as [(typeof settled)[0], (typeof settled)[0]];
    // A recovering worker takes the first charge over after the settle went out.
    await app.database.rows(
      sql`update charges set fence = fence + 1, lease_owner = 'recovering-worker' where id = ${stale.p.charge.id}`,
    );
    const before = await chargeRow(app, stale.p.charge.id);

    const acceptance = (s: (typeof settled)[0]) => ({
      actionId: s.actionId,
      chargeId: s.p.charge.id,
      fence: s.p.charge.fence,
      kind: 'settle',
      amount: s.p.charge.amount,
      httpStatus: 202,
      correlationId: null,
      links: {},
      releaseLease: true,
    });
    const applied = await commitAcceptances(app.database, [acceptance(stale), acceptance(fresh)]);

    expect([...applied.keys()]).toEqual([fresh.actionId]);
    expect(await chargeRow(app, stale.p.charge.id)).toEqual(before);
    const rows = await app.database.rows<{ id: number; state: string; lease_owner: string | null }>(
      sql`select c.id, pa.state, c.lease_owner from charges c join payment_actions pa on pa.charge_id = c.id
           where c.id in (${stale.p.charge.id}, ${fresh.p.charge.id}) order by c.id`,
    );
    const byCharge = new Map(rows.map((r) => [r.id, r]));
    expect(byCharge.get(stale.p.charge.id)).toMatchObject({
      state: 'requested',
      lease_owner: 'recovering-worker',
    });
    expect(byCharge.get(fresh.p.charge.id)).toMatchObject({ state: 'accepted', lease_owner: null });
    expect((await chargeRow(app, fresh.p.charge.id)).state).toBe('settling');
  });

  it('a lease is renewed only under the fence it was claimed with, even by the same owner', async () => {
    const [stale, fresh] = (await writtenAhead('renew', 2)) as [PlannedAttempt, PlannedAttempt];
    // The same worker claimed the charge again (its first lease ran out): the first claim's
    // sender must not extend the lease the second claim holds.
    await takeOver(stale);
    const lease = (p: PlannedAttempt) => ({
      chargeId: p.charge.id,
      credentialId: p.charge.credentialId,
      owner: app.workerId,
      holder: app.workerId,
      fence: p.charge.fence,
      leaseSeconds: 600,
    });
    const expiry = async (p: PlannedAttempt) =>
      (
        await app.database.rows<{ lease_expires_at: Date }>(
          sql`select lease_expires_at from charges where id = ${p.charge.id}`,
        )
      )[0]!.lease_expires_at.getTime();
    const before = await expiry(stale);

    expect(await renewLease(app.database, lease(stale))).toBeNull();
    expect(await expiry(stale)).toBe(before);
    expect(await renewLease(app.database, lease(fresh))).toEqual(expect.any(Number));
    // Nor once another run holds its credential (its own lease on the credential ran out and
    // was taken): the charge would go out beside that run's.
    await app.database.rows(sql`update credentials set lease_owner = 'another-worker'
      where id = ${fresh.charge.credentialId}`);
    expect(await renewLease(app.database, lease(fresh))).toBeNull();
  });

  it('the claim leaves the due charges of a paused or cancelled mandate alone', async () => {
    const ms = await dueMandates(w, app, { tag: 'held', n: 3, at });
    await materializeDueCharges(app.database, at, { batchSize: 100 });
    // Held by writes that leave the charges as they are: the claim's own check is what stops them.
    await app.database.rows(sql`update mandates set status = 'paused' where id = ${ms[0]!.id}`);
    await app.database.rows(sql`update mandates set status = 'cancelled' where id = ${ms[2]!.id}`);

    const claimed = await claimDue(app, at);

    expect(claimed.map((c) => c.mandateId)).toEqual([ms[1]!.id]);
    const waiting = await app.database.rows<{ mandate_id: number; state: string }>(
      sql`select mandate_id, state from charges where mandate_id in (${ms[0]!.id}, ${ms[2]!.id}) order by mandate_id`,
    );
    expect(waiting.map((r) => r.state)).toEqual(['pending', 'pending']);
  });
});

describe.skipIf(hasServer)('sql: fences of the outcome and acceptance commits', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
