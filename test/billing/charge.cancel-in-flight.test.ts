import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { cancelMandate } from '../../src/billing/mandates/lifecycle.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { canMove, chargeMachine, UNSENT_CHARGE_STATES } from '../../src/domain/lifecycle.ts';
import type { Outcome } from '../../src/sandbox/server.ts';
import { attemptsOf, authorizationsOn, chargesOf, type DueMandate, dueMandates } from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * A mandate cancelled by an operator (`cancelMandate`) while one of its charges is in flight:
 * written ahead, its request on its way to the gateway. The cancel leaves that charge alone
 * (only waiting charges are taken over); the outcome's commit decides its end state by the
 * lifecycle table (`outcomeState` in sql/transitions.ts):
 *  - authorized: the money is taken, the charge carries on (authorized, then its settle);
 *  - refused with a decision that would leave it waiting (retry, new card, stop): no run would
 *    ever send it again on a cancelled mandate, so it is cancelled with its mandate, and the
 *    refusal does not move the cancelled mandate;
 *  - turned away for a reason not the card's (deferred, it would wait as pending): cancelled too;
 *  - refused with a decision that ends the charge (failed): it stays failed.
 */
describe.skipIf(!hasServer)('charge: mandate cancelled while its charge is in flight (PostgreSQL)', () => {
  const at = new Date('2026-05-01T09:00:00Z');
  const runAt = new Date('2026-05-01T10:00:00Z');
  let w: World;
  let app: App;
  beforeEach(async () => {
    w = await startWorld();
    app = await w.app(runAt);
  });
  afterEach(async () => w?.close());

  /** One mandate due, its answer scripted at the sandbox, cancelled right after its write-ahead. */
  async function cancelledAfterWriteAhead(outcome: Outcome) {
    const [m] = await dueMandates(w, app, { tag: 'inflight', n: 1, at });
    const mandate = m!;
    w.sandbox.script({ match: { chainId: mandate.chainId }, outcomes: [outcome] });
    let cancelledInFlight = false;
    app.faults = {
      async hit(point) {
        if (point !== 'after-write-ahead' || cancelledInFlight) return;
        cancelledInFlight = true;
        const view = await cancelMandate(app, mandate.id);
        expect(view.status).toBe('cancelled');
      },
    };
    const report = await runBilling(app, { asOf: runAt, trigger: 'test', mandateId: mandate.id });
    expect(cancelledInFlight).toBe(true);
    return { mandate, report, ...(await outcome_(mandate)) };
  }

  async function outcome_(mandate: DueMandate) {
    const [charge] = await chargesOf(app, mandate.id);
    const attempts = await attemptsOf(app, charge!.id);
    const rows = await app.database.rows(
      sql`select m.status, cr.status as credential_status from mandates m join credentials cr on cr.id = m.credential_id
           where m.id = ${mandate.id}`,
    );
    return {
      charge: charge!,
      attempts,
      mandateStatus: String(rows[0]!.status),
      credentialStatus: String(rows[0]!.credential_status),
      requests: authorizationsOn(w, mandate.chainId).length,
    };
  }

  it('an authorized answer: the charge is authorized and settles, the mandate stays cancelled', async () => {
    const out = await cancelledAfterWriteAhead({ type: 'authorize' });
    expect(out.requests).toBe(1);
    expect(out.report.counts).toMatchObject({ attempted: 1, authorized: 1, lostLeases: 0 });
    expect(out.attempts.map((a) => a.state)).toEqual(['authorized']);
    // authorized is not a waiting state: the table keeps it, and its settle goes out.
    expect((UNSENT_CHARGE_STATES as readonly string[]).includes('authorized')).toBe(false);
    expect(out.charge.state).toBe('settling');
    expect(out.mandateStatus).toBe('cancelled');
  });

  it('a refusal that would retry: the charge is cancelled with its mandate, not scheduled again', async () => {
    const out = await cancelledAfterWriteAhead({ type: 'refuse', code: '5' });
    expect(out.requests).toBe(1);
    expect(out.attempts.map((a) => [a.state, a.refusalCode])).toEqual([['refused', '5']]);
    expect(canMove(chargeMachine, 'attempting', 'cancelled')).toBe(true);
    expect(out.charge.state).toBe('cancelled');
    expect(out.mandateStatus).toBe('cancelled');
    const audit = await app.database.rows(
      sql`select reason from audit_log where entity_type = 'charge' and entity_id = ${out.charge.id} and to_state = 'cancelled'`,
    );
    expect(audit.map((r) => String(r.reason))).toEqual([expect.stringContaining('cancelled meanwhile')]);
  });

  it('a refusal that asks for a new card: the charge is cancelled and the mandate not reopened', async () => {
    const out = await cancelledAfterWriteAhead({ type: 'refuse', code: '6' });
    expect(out.attempts.map((a) => a.state)).toEqual(['refused']);
    expect(out.charge.state).toBe('cancelled');
    // The refusal would move an active mandate to needs_new_credential; a cancelled one stays so.
    expect(out.mandateStatus).toBe('cancelled');
  });

  it('a refusal that blocks the card: the charge is cancelled, the card is blocked all the same', async () => {
    const out = await cancelledAfterWriteAhead({ type: 'refuse', code: '14' });
    expect(out.charge.state).toBe('cancelled');
    expect(out.mandateStatus).toBe('cancelled');
    expect(out.credentialStatus).toBe('blocked');
  });

  it('a refusal that fails the charge: failed it stays (a final state), not cancelled', async () => {
    // Retries used up: the policy fails the charge and would pause the mandate.
    const base = app.policy;
    app.policy = {
      beforeSend: (input) => base.beforeSend(input),
      decide: () => ({ action: 'fail', finalAction: 'pause', reason: 'soft decline, all retries used' }),
    };
    const out = await cancelledAfterWriteAhead({ type: 'refuse', code: '5' });
    expect(out.attempts.map((a) => a.state)).toEqual(['refused']);
    // failed is not a waiting state: nothing would send it again, so the cancel does not apply.
    expect((UNSENT_CHARGE_STATES as readonly string[]).includes('failed')).toBe(false);
    expect(out.charge.state).toBe('failed');
    expect(out.mandateStatus).toBe('cancelled');
  });

  it('a request the gateway turned away for our credentials: the deferred charge is cancelled, not pending', async () => {
    const out = await cancelledAfterWriteAhead({ type: 'error', status: 401 });
    expect(out.requests).toBe(1);
    // Not the card's answer: the attempt is deferred (`error`), the charge would wait again as
    // pending; on a cancelled mandate nothing would ever send it, so it is cancelled.
    expect(out.attempts.map((a) => a.state)).toEqual(['error']);
    expect(out.charge.state).toBe('cancelled');
    expect(out.mandateStatus).toBe('cancelled');
  });

  it('cancelled during a slow answer at the gateway: a refusal ends the charge cancelled', async () => {
    const [m] = await dueMandates(w, app, { tag: 'slow', n: 1, at });
    const mandate = m!;
    // Slow, but within the client's timeout (WORLDPAY_TIMEOUT_MS, 2 s here): still an answer.
    w.sandbox.script({
      match: { chainId: mandate.chainId },
      outcomes: [{ type: 'slow', ms: 1_000, next: { type: 'refuse', code: '5' } }],
    });
    const run = runBilling(app, { asOf: runAt, trigger: 'test', mandateId: mandate.id });
    // Wait until the request is on its way (written ahead), then cancel while the gateway thinks.
    for (const until = Date.now() + 30_000; Date.now() < until; ) {
      const [c] = await chargesOf(app, mandate.id);
      if (c?.state === 'attempting') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const [inFlight] = await chargesOf(app, mandate.id);
    expect(inFlight?.state).toBe('attempting');
    await cancelMandate(app, mandate.id);
    expect((await chargesOf(app, mandate.id))[0]?.state).toBe('attempting');
    await run;
    const out = await outcome_(mandate);
    expect(out.requests).toBe(1);
    expect(out.attempts.map((a) => a.state)).toEqual(['refused']);
    expect(out.charge.state).toBe('cancelled');
    expect(out.mandateStatus).toBe('cancelled');
  });
});

describe.skipIf(hasServer)('charge: mandate cancelled while its charge is in flight', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
