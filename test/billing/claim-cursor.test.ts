import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { materializeDueCharges } from '../../src/billing/mandates/materialize.ts';
import { claimCursor, claimDueCharges } from '../../src/billing/sql/claim-due.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * A run claims after the last charge it claimed, in claim order (next_attempt_at, id), and
 * sweeps from the start only when that runs dry: what the cursor steps over is found by the
 * sweep, never lost, and a charge is never claimed twice.
 */
describe('claim cursor', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  it('claims after the cursor, in order, and leaves what it stepped over to the sweep from the start', async () => {
    const t0 = new Date('2026-06-01T08:00:00Z');
    const app = await w.app(t0);
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const v = await w.verify();
      const m = await createMandate(app, {
        customerRef: `cursor-${i}`,
        intent: 'subscription',
        amount: 1000,
        currency: 'GBP',
        narrative: 'Cursor',
        interval: '1 month',
        // due one hour apart, so the claim order is known
        start: new Date(t0.getTime() + i * 3_600_000),
        credential: { link: v.href },
      });
      ids.push(m.id);
    }
    const asOf = new Date(t0.getTime() + 3 * 3_600_000);
    await materializeDueCharges(app.database, asOf, { batchSize: 100 });
    const claim = (after: ReturnType<typeof claimCursor>, limit: number) =>
      claimDueCharges(app.database, { asOf, owner: 'cursor-test', leaseSeconds: 300, limit, after });

    const first = await claim(null, 1);
    expect(first.map((c) => c.mandateId)).toEqual([ids[0]]);
    const c1 = claimCursor(first);
    expect(c1?.id).toBe(first[0]!.id);
    // The first charge becomes claimable again (its lease ran out): it is behind the cursor.
    await w.t.database.rows(
      sql`update charges set lease_expires_at = now() - interval '1 second' where id = ${first[0]!.id}`,
    );
    const rest = await claim(c1, 10);
    expect(rest.map((c) => c.mandateId).sort()).toEqual([ids[1], ids[2]].sort());
    const c2 = claimCursor(rest);
    expect(await claim(c2, 10)).toEqual([]);
    // The sweep from the start finds what the cursor stepped over, and only that.
    const swept = await claim(null, 10);
    expect(swept.map((c) => c.id)).toEqual([first[0]!.id]);
    expect(swept[0]!.fence).toBe(first[0]!.fence + 1);
  });
});
