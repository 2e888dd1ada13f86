import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { commitDeferred } from '../../src/billing/charge/outcome.ts';
import { reconcileUnknown } from '../../src/billing/charge/recover.ts';
import { cancelMandate, pauseMandate } from '../../src/billing/mandates/index.ts';
import { launchAttempts, writeAhead } from '../../src/billing/sql/write-ahead.ts';
import { aheadItem, attemptsOf, chargeRow, claimDue, dueMandates } from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * The launch, the last statement before an attempt's request: it records `launched_at` only for
 * an attempt whose charge still carries its claim's fence and whose mandate is not held, and
 * recovery trusts its absence as proof that the request never left.
 */
describe.skipIf(!hasServer)('sql: launch (PostgreSQL)', () => {
  const at = new Date('2026-05-01T09:00:00Z');
  let w: World;
  let app: App;
  beforeEach(async () => {
    w = await startWorld();
    app = await w.app(at);
  });
  afterEach(async () => w?.close());

  async function writtenAhead(tag: string, n: number) {
    const ms = await dueMandates(w, app, { tag, n, at });
    const claimed = await claimDue(app, at);
    const planned = await writeAhead(
      app.database,
      claimed.map((c) => aheadItem(app, c)),
      at,
    );
    expect(planned).toHaveLength(n);
    const launchOf = (i: number) => {
      const p = planned.find((x) => x.charge.mandateId === ms[i]!.id)!;
      return { attemptId: p.attemptId, chargeId: p.charge.id, fence: p.charge.fence };
    };
    return { ms, planned, launchOf };
  }

  const launchedAt = async (attemptId: number) =>
    (
      await app.database.rows<{ launched_at: Date | null }>(
        sql`select launched_at from attempts where id = ${attemptId}`,
      )
    )[0]!.launched_at;

  it('launches what is still ours; a mandate held since the write-ahead and a fence moved are not launched', async () => {
    const { ms, launchOf } = await writtenAhead('launch', 4);
    await cancelMandate(app, ms[1]!.id);
    await pauseMandate(app, ms[2]!.id);
    // A reconciler took the fourth over (its claim moves the fence).
    await app.database.rows(sql`update charges set fence = fence + 1 where id = ${launchOf(3).chargeId}`);
    const out = await launchAttempts(app.database, [0, 1, 2, 3].map(launchOf));
    expect(out).toEqual(['launched', { held: 'cancelled' }, { held: 'paused' }, 'fenced']);
    expect(await launchedAt(launchOf(0).attemptId)).toBeInstanceOf(Date);
    for (const i of [1, 2, 3]) expect(await launchedAt(launchOf(i).attemptId)).toBeNull();
  });

  it("recovery: a worker's attempt never launched is not_sent without asking; a launched one is asked by reference", async () => {
    const { launchOf } = await writtenAhead('recover', 2);
    expect(await launchAttempts(app.database, [launchOf(0)])).toEqual(['launched']);
    // The worker dies before either request leaves; its leases run out.
    await app.database.rows(sql`update charges set lease_expires_at = now() - interval '1 second'`);
    const report = await reconcileUnknown(app, { asOf: at, limit: 10 });
    expect(report).toMatchObject({ checked: 2, notSent: 1, notFound: 1 });
    // Launched: it may have gone out; the sandbox has no such payment (event lag 0 here).
    expect((await attemptsOf(app, launchOf(0).chargeId)).map((a) => a.state)).toEqual(['not_found']);
    expect((await attemptsOf(app, launchOf(1).chargeId)).map((a) => a.state)).toEqual(['not_sent']);
    expect(await chargeRow(app, launchOf(1).chargeId)).toMatchObject({ state: 'pending', attemptCount: 1 });
  });

  it('the never-sent commit writes nothing for an attempt launched after the reconciler read it', async () => {
    const { planned, launchOf } = await writtenAhead('race', 1);
    expect(await launchAttempts(app.database, [launchOf(0)])).toEqual(['launched']);
    const before = await chargeRow(app, launchOf(0).chargeId);
    const reason = 'not sent: written ahead by a worker that stopped before its request went out';
    expect(
      await commitDeferred(app.database, planned[0]!, { attemptState: 'not_sent', reason, unlaunched: true }),
    ).toBe(false);
    expect(await chargeRow(app, launchOf(0).chargeId)).toEqual(before);
    expect((await attemptsOf(app, launchOf(0).chargeId)).map((a) => a.state)).toEqual(['sending']);
  });
});

describe.skipIf(hasServer)('sql: launch', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
