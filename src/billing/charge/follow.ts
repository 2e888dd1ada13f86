import { sql } from 'drizzle-orm';
import { num } from '../../db/values.ts';
import { normalisePaymentStatus } from '../../gateways/worldpay/status.ts';
import type { BillingContext } from '../context.ts';
import { resolvePendingActions } from '../operator/payments.ts';
import { applyPaymentStatus } from './settle.ts';

export interface PaymentEventInput {
  eventId: string;
  transactionReference: string;
  type: string;
  occurredAt?: Date | undefined;
  payload: unknown;
}

export type PaymentEventOutcome =
  | { outcome: 'unknown_reference' }
  | { outcome: 'duplicate'; chargeId: number }
  | { outcome: 'applied' | 'recorded'; chargeId: number; moved: string | null };

/**
 * A Worldpay event pushed to the webhook: find its attempt by reference, drop a redelivery
 * (deduped on eventId), resolve the actions it proves and apply the status, all in one
 * transaction, so a crash part-way leaves the event unrecorded and Worldpay's redelivery
 * applies it whole.
 */
export async function receivePaymentEvent(
  ctx: BillingContext,
  e: PaymentEventInput,
): Promise<PaymentEventOutcome> {
  const db = ctx.database;
  return db.db.transaction(async (tx) => {
    const rows = await db.rows(
      sql`select a.id, a.charge_id from attempts a where a.transaction_reference = ${e.transactionReference}`,
      tx,
    );
    const attempt = rows[0];
    if (!attempt) return { outcome: 'unknown_reference' };
    const attemptId = num(attempt.id);
    const chargeId = num(attempt.charge_id);
    const seen = await db.rows(sql`select 1 from payment_events where event_id = ${e.eventId}`, tx);
    if (seen.length > 0) return { outcome: 'duplicate', chargeId };
    const status = normalisePaymentStatus(e.type);
    await resolvePendingActions(db, attemptId, status, tx);
    const moved = await applyPaymentStatus(
      db,
      {
        attemptId,
        status,
        rawStatus: e.type,
        source: 'webhook',
        eventId: e.eventId,
        transactionReference: e.transactionReference,
        payload: e.payload,
        occurredAt: e.occurredAt,
      },
      tx,
    );
    return { outcome: moved ? 'applied' : 'recorded', chargeId, moved };
  });
}
