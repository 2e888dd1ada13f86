import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import {
  authorizedOutcome,
  commitAuthorized,
  type PlannedAttempt,
} from '../../src/billing/charge/outcome.ts';
import { planSettle } from '../../src/billing/charge/settle.ts';
import {
  type AuthorizedOutcome,
  commitAuthorizedOutcomes,
} from '../../src/billing/sql/authorized-outcomes.ts';
import { writeAhead } from '../../src/billing/sql/write-ahead.ts';
import { num } from '../../src/db/values.ts';
import type { AuthorizeResult } from '../../src/gateways/types.ts';
import { aheadItem, authorizeAtSandbox, chargeRow, claimDue, dueMandates } from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

type Authorized = Extract<AuthorizeResult, { outcome: 'authorized' }>;

/**
 * The authorization commit on its own, on PostgreSQL against the sandbox: an authorization is
 * committed only while its charge still carries the fencing token of the claim that sent it.
 * When the token moved (the lease was taken over, an operator moved the charge), the commit
 * says so and leaves every row as it was: the charge and its attempt open, no link kept, the
 * credential on its old link, no settle written ahead, no audit. Checked through the batch
 * statement and through the one-charge commit, by what they return and what the database holds.
 */
describe.skipIf(!hasServer)('sql: authorized outcomes (PostgreSQL)', () => {
  const at = new Date('2026-05-01T09:00:00Z');
  let w: World;
  let app: App;
  beforeEach(async () => {
    w = await startWorld();
    app = await w.app(at);
  });
  afterEach(async () => w?.close());

  /** n charges on cards of their own, claimed, written ahead and authorized at the sandbox. */
  async function authorized(tag: string, n: number): Promise<{ p: PlannedAttempt; r: Authorized }[]> {
    await dueMandates(w, app, { tag, n, at });
    const claimed = await claimDue(app, at);
    const planned = await writeAhead(
      app.database,
      claimed.map((c) => aheadItem(app, c)),
      at,
    );
    expect(planned).toHaveLength(n);
    const out = [];
    for (const p of planned) {
      const r = await authorizeAtSandbox(app, p);
      out.push({ p, r });
    }
    return out;
  }

  /** The batch statement's input for one authorization, as the send loop builds it. */
  function outcomeOf(p: PlannedAttempt, r: Authorized): AuthorizedOutcome {
    return authorizedOutcome(p, r, planSettle(p.charge, p.reference, r.links, r.paymentId));
  }

  /** Everything an authorization's commit writes, for one charge. */
  async function state(p: PlannedAttempt) {
    const rows = await app.database.rows(sql`select a.state as attempt_state, a.gateway_payment_id,
        (select l.href from credentials cr left join links l on l.id = cr.current_link_id
          where cr.id = ${p.charge.credentialId}) as current_link
      from attempts a where a.id = ${p.attemptId}`);
    const r = rows[0]!;
    return {
      ...(await chargeRow(app, p.charge.id)),
      attempt_state: String(r.attempt_state),
      gateway_payment_id: r.gateway_payment_id,
      current_link: r.current_link,
    };
  }

  /** Another worker or an operator moved the charge on: its fencing token is no longer the claim's. */
  const moveFence = (p: PlannedAttempt) =>
    app.database.rows(sql`update charges set fence = fence + 1 where id = ${p.charge.id}`);

  it('batch: commits the charges whose fence holds and reports the one whose fence moved, untouched', async () => {
    const items = await authorized('batch', 3);
    const fenced = items[1]!;
    await moveFence(fenced.p);
    const before = await state(fenced.p);
    expect(before).toMatchObject({ state: 'attempting', attempt_state: 'sending', links: 0, actions: 0 });

    const applied = await commitAuthorizedOutcomes(
      app.database,
      items.map(({ p, r }) => outcomeOf(p, r)),
    );

    // The answer names the committed charges only.
    expect([...applied.keys()].sort()).toEqual([items[0]!.p.charge.id, items[2]!.p.charge.id].sort());
    expect(applied.has(fenced.p.charge.id)).toBe(false);
    expect(await state(fenced.p)).toEqual(before);
    expect(before.current_link).toBe(fenced.p.linkHref);
    for (const { p, r } of [items[0]!, items[2]!]) {
      const s = await state(p);
      expect(s).toMatchObject({
        state: 'authorized',
        attempt_state: 'authorized',
        gateway_payment_id: r.paymentId,
        actions: 1,
        current_link: r.nextRecurringLink,
      });
      expect(s.authorizedAttemptId).toBe(p.attemptId);
      expect(applied.get(p.charge.id)).toEqual(expect.any(Number));
    }
  });

  it('batch: a batch of one fenced charge commits nothing', async () => {
    const [only] = await authorized('alone', 1);
    await moveFence(only!.p);
    const before = await state(only!.p);
    const applied = await commitAuthorizedOutcomes(app.database, [outcomeOf(only!.p, only!.r)]);
    expect(applied.size).toBe(0);
    expect(await state(only!.p)).toEqual(before);
  });

  it('one charge: answers false for a charge whose fence moved and writes nothing of it', async () => {
    const items = await authorized('single', 2);
    const fenced = items[0]!;
    await moveFence(fenced.p);
    const before = await state(fenced.p);

    const settleOf = ({ p, r }: (typeof items)[number]) =>
      planSettle(p.charge, p.reference, r.links, r.paymentId);
    expect(await commitAuthorized(app.database, fenced.p, fenced.r, settleOf(fenced))).toBe(false);
    expect(await state(fenced.p)).toEqual(before);
    expect(before).toMatchObject({ state: 'attempting', attempt_state: 'sending', links: 0, actions: 0 });
    expect(before.current_link).toBe(fenced.p.linkHref);

    // The other, its fence intact, commits as usual.
    const ok = items[1]!;
    const res = await commitAuthorized(app.database, ok.p, ok.r, settleOf(ok));
    expect(res).toEqual({ settleActionId: expect.any(Number) });
    expect(await state(ok.p)).toMatchObject({
      state: 'authorized',
      attempt_state: 'authorized',
      actions: 1,
      current_link: ok.r.nextRecurringLink,
    });
  });

  it('one charge: a commit on the current fence after a fenced one goes through once', async () => {
    const [only] = await authorized('refenced', 1);
    await moveFence(only!.p);
    expect(await commitAuthorized(app.database, only!.p, only!.r, null)).toBe(false);
    // The worker that now holds the charge commits with its own fence.
    const rows = await app.database.rows(sql`select fence from charges where id = ${only!.p.charge.id}`);
    const holder: PlannedAttempt = { ...only!.p, charge: { ...only!.p.charge, fence: num(rows[0]!.fence) } };
    expect(await commitAuthorized(app.database, holder, only!.r, null)).toEqual({ settleActionId: null });
    expect(await state(only!.p)).toMatchObject({
      state: 'authorized',
      attempt_state: 'authorized',
      audits: 2,
    });
  });
});

describe.skipIf(hasServer)('sql: authorized outcomes', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
