import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type App, openApp } from '../../src/app.ts';
import { cancelMandate } from '../../src/billing/mandates/lifecycle.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { fixedClock } from '../../src/clock.ts';
import { createDatabase } from '../../src/db/client.ts';
import { canMove, chargeMachine, UNSENT_CHARGE_STATES } from '../../src/domain/lifecycle.ts';
import { silentLogger } from '../../src/logger.ts';
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
 * A charge written ahead whose request has not left yet is not in flight: a cancel answered
 * before its request goes out wins (src/billing/charge/holds.ts), and nothing is sent.
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

  /**
   * One mandate due, its answer scripted at the sandbox a second after the request arrives, and
   * cancelled as soon as the sandbox has the request: in flight, its request gone out.
   */
  async function cancelledInFlight(outcome: Outcome) {
    const [m] = await dueMandates(w, app, { tag: 'inflight', n: 1, at });
    const mandate = m!;
    // Slow, but within the client's timeout (WORLDPAY_TIMEOUT_MS, 2 s here): still an answer.
    w.sandbox.script({
      match: { chainId: mandate.chainId },
      outcomes: [{ type: 'slow', ms: 1_000, next: outcome }],
    });
    const cancelled = new Promise<string>((resolve, reject) => {
      w.sandbox.app.server.once('request', () => {
        cancelMandate(app, mandate.id).then((v) => resolve(v.status), reject);
      });
    });
    const report = await runBilling(app, { asOf: runAt, trigger: 'test', mandateId: mandate.id });
    expect(await cancelled).toBe('cancelled');
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
    const out = await cancelledInFlight({ type: 'authorize' });
    expect(out.requests).toBe(1);
    expect(out.report.counts).toMatchObject({ attempted: 1, authorized: 1, lostLeases: 0 });
    expect(out.attempts.map((a) => a.state)).toEqual(['authorized']);
    // authorized is not a waiting state: the table keeps it, and its settle goes out.
    expect((UNSENT_CHARGE_STATES as readonly string[]).includes('authorized')).toBe(false);
    expect(out.charge.state).toBe('settling');
    expect(out.mandateStatus).toBe('cancelled');
  });

  it('a refusal that would retry: the charge is cancelled with its mandate, not scheduled again', async () => {
    const out = await cancelledInFlight({ type: 'refuse', code: '5' });
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
    const out = await cancelledInFlight({ type: 'refuse', code: '6' });
    expect(out.attempts.map((a) => a.state)).toEqual(['refused']);
    expect(out.charge.state).toBe('cancelled');
    // The refusal would move an active mandate to needs_new_credential; a cancelled one stays so.
    expect(out.mandateStatus).toBe('cancelled');
  });

  it('a refusal that blocks the card: the charge is cancelled, the card is blocked all the same', async () => {
    const out = await cancelledInFlight({ type: 'refuse', code: '14' });
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
    const out = await cancelledInFlight({ type: 'refuse', code: '5' });
    expect(out.attempts.map((a) => a.state)).toEqual(['refused']);
    // failed is not a waiting state: nothing would send it again, so the cancel does not apply.
    expect((UNSENT_CHARGE_STATES as readonly string[]).includes('failed')).toBe(false);
    expect(out.charge.state).toBe('failed');
    expect(out.mandateStatus).toBe('cancelled');
  });

  it('a request the gateway turned away for our credentials: the deferred charge is cancelled, not pending', async () => {
    const out = await cancelledInFlight({ type: 'error', status: 401 });
    expect(out.requests).toBe(1);
    // Not the card's answer: the attempt is deferred (`error`), the charge would wait again as
    // pending; on a cancelled mandate nothing would ever send it, so it is cancelled.
    expect(out.attempts.map((a) => a.state)).toEqual(['error']);
    expect(out.charge.state).toBe('cancelled');
    expect(out.mandateStatus).toBe('cancelled');
  });

  it('cancelled after its write-ahead, before its request left: nothing is sent, the attempt is not_sent', async () => {
    const [m] = await dueMandates(w, app, { tag: 'queued', n: 1, at });
    const mandate = m!;
    app.faults = {
      async hit(point) {
        if (point === 'after-write-ahead') await cancelMandate(app, mandate.id);
      },
    };
    const report = await runBilling(app, { asOf: runAt, trigger: 'test', mandateId: mandate.id });
    const out = await outcome_(mandate);
    expect(out.requests).toBe(0);
    expect(report.counts).toMatchObject({ attempted: 0, authorized: 0, skipped: 1, errors: 0 });
    expect(out.attempts.map((a) => a.state)).toEqual(['not_sent']);
    expect(out.charge.state).toBe('cancelled');
    expect(out.mandateStatus).toBe('cancelled');
  });

  it('cancelled by another process after its launch, before its request: the notification stops it', async () => {
    const [m] = await dueMandates(w, app, { tag: 'launched', n: 1, at });
    const mandate = m!;
    // Another process: its own connections, so the run hears of the cancel only from PostgreSQL.
    const other = await createDatabase({ databaseUrl: w.t.url });
    const operator = await openApp(w.config, {
      database: other,
      logger: silentLogger,
      clock: fixedClock(runAt),
    });
    try {
      app.faults = {
        async hit(point) {
          if (point !== 'after-launch') return;
          await cancelMandate(operator, mandate.id);
          // Within the bound the notification is delivered; the request would go out after it.
          await new Promise((r) => setTimeout(r, 100));
        },
      };
      await runBilling(app, { asOf: runAt, trigger: 'test', mandateId: mandate.id });
    } finally {
      await operator.close();
      await other.close();
    }
    const out = await outcome_(mandate);
    expect(out.requests).toBe(0);
    expect(out.attempts.map((a) => a.state)).toEqual(['not_sent']);
    expect(out.charge.state).toBe('cancelled');
  });
});

describe.skipIf(hasServer)('charge: mandate cancelled while its charge is in flight', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
