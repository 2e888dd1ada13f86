import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { pauseMandate, resumeMandate } from '../../src/billing/mandates/index.ts';
import { claimDueCharges } from '../../src/billing/sql/claim-due.ts';
import { writeAhead } from '../../src/billing/sql/write-ahead.ts';
import { aheadItem, chargeRow, claimDue, dueMandates } from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * The write-ahead statement on its own, on PostgreSQL: a claimed charge is written ahead only
 * while it still carries the fencing token its claim took. A charge whose token moved after
 * the claim (re-claimed by another worker once the lease ran out, or taken over by an operator
 * and handed back) gets no attempt row and no state change, and the rest of its batch is
 * written ahead as usual.
 */
describe.skipIf(!hasServer)('sql: write-ahead (PostgreSQL)', () => {
  const at = new Date('2026-05-01T09:00:00Z');
  let w: World;
  let app: App;
  beforeEach(async () => {
    w = await startWorld();
    app = await w.app(at);
  });
  afterEach(async () => w?.close());

  it('writes the whole batch ahead when every fence holds', async () => {
    await dueMandates(w, app, { tag: 'all', n: 3, at });
    const claimed = await claimDue(app, at);
    expect(claimed).toHaveLength(3);
    const planned = await writeAhead(
      app.database,
      claimed.map((c) => aheadItem(app, c)),
      at,
    );
    expect(planned.map((p) => p.charge.id)).toEqual(claimed.map((c) => c.id));
    for (const c of claimed) {
      expect(await chargeRow(app, c.id)).toMatchObject({
        state: 'attempting',
        attemptCount: 1,
        attempts: 1,
        audits: 1,
      });
    }
  });

  it('skips a charge another worker re-claimed after its lease ran out, and writes the others ahead', async () => {
    const ms = await dueMandates(w, app, { tag: 'reclaimed', n: 3, at });
    const claimed = await claimDue(app, at);
    expect(claimed).toHaveLength(3);
    const taken = claimed.find((c) => c.mandateId === ms[1]!.id)!;
    // The first worker's lease runs out before it writes ahead; a second worker claims the charge.
    await app.database.rows(
      sql`update charges set lease_expires_at = now() - interval '1 second' where id = ${taken.id}`,
    );
    await app.database.rows(
      sql`update credentials set lease_expires_at = now() - interval '1 second' where id = ${taken.credentialId}`,
    );
    const second = await claimDueCharges(app.database, {
      asOf: at,
      owner: 'second-worker',
      leaseSeconds: 300,
      limit: 10,
    });
    expect(second.map((c) => c.id)).toEqual([taken.id]);
    expect(second[0]!.fence).toBeGreaterThan(taken.fence);
    const before = await chargeRow(app, taken.id);

    const planned = await writeAhead(
      app.database,
      claimed.map((c) => aheadItem(app, c)),
      at,
    );

    expect(planned.map((p) => p.charge.id)).toEqual(claimed.filter((c) => c !== taken).map((c) => c.id));
    // Not the first worker's any more: no attempt, no move, no audit, the second worker's fence.
    expect(await chargeRow(app, taken.id)).toEqual(before);
    expect(before).toMatchObject({ state: 'pending', attempts: 0, audits: 0, fence: second[0]!.fence });
    for (const c of claimed.filter((x) => x !== taken)) {
      expect(await chargeRow(app, c.id)).toMatchObject({ state: 'attempting', attempts: 1, audits: 1 });
    }
    // The second worker, holding the current fence, may still write it ahead.
    const its = await writeAhead(app.database, [aheadItem(app, second[0]!)], at);
    expect(its).toHaveLength(1);
    expect(await chargeRow(app, taken.id)).toMatchObject({ state: 'attempting', attempts: 1 });
  });

  it('skips a charge an operator took over (paused and resumed) after the claim', async () => {
    const ms = await dueMandates(w, app, { tag: 'operator', n: 3, at });
    const claimed = await claimDue(app, at);
    expect(claimed).toHaveLength(3);
    const taken = claimed.find((c) => c.mandateId === ms[0]!.id)!;
    // The pause takes the waiting charge away from the run (fence bumped, lease cleared); the
    // resume makes the mandate active again with the charge still pending: only the fence says
    // the claim is stale.
    await pauseMandate(app, ms[0]!.id);
    await resumeMandate(app, ms[0]!.id);
    const before = await chargeRow(app, taken.id);
    expect(before.state).toBe('pending');
    expect(before.fence).toBeGreaterThan(taken.fence);

    const planned = await writeAhead(
      app.database,
      claimed.map((c) => aheadItem(app, c)),
      at,
    );

    expect(planned.map((p) => p.charge.id).sort()).toEqual(
      claimed
        .filter((c) => c !== taken)
        .map((c) => c.id)
        .sort(),
    );
    expect(await chargeRow(app, taken.id)).toEqual(before);
    expect(before.attempts).toBe(0);
  });

  it('writes nothing ahead for a mandate held by a write that left the fence alone', async () => {
    // Every operator path moves the fence too; the write-ahead's own check of the mandate is
    // the second wall, for any write that holds a mandate without taking its charges over.
    const ms = await dueMandates(w, app, { tag: 'held', n: 3, at });
    const claimed = await claimDue(app, at);
    expect(claimed).toHaveLength(3);
    const paused = claimed.find((c) => c.mandateId === ms[0]!.id)!;
    const cancelled = claimed.find((c) => c.mandateId === ms[2]!.id)!;
    await app.database.rows(sql`update mandates set status = 'paused' where id = ${ms[0]!.id}`);
    await app.database.rows(sql`update mandates set status = 'cancelled' where id = ${ms[2]!.id}`);
    const before = [await chargeRow(app, paused.id), await chargeRow(app, cancelled.id)];
    expect(before.map((r) => r.fence)).toEqual([paused.fence, cancelled.fence]);

    const planned = await writeAhead(
      app.database,
      claimed.map((c) => aheadItem(app, c)),
      at,
    );

    expect(planned.map((p) => p.charge.mandateId)).toEqual([ms[1]!.id]);
    expect([await chargeRow(app, paused.id), await chargeRow(app, cancelled.id)]).toEqual(before);
  });
});

describe.skipIf(hasServer)('sql: write-ahead', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
