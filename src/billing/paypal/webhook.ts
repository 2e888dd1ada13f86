import { sql } from 'drizzle-orm';
import type { BillingContext } from '../context.ts';
import { keepPaypalWebhook, recordPaypalAnswer } from '../sql/paypal.ts';
import { refundOutcome } from './payments.ts';

/**
 * Worldpay's webhook about a PayPal payment: found by the refund `reference` it carries (ours,
 * unique per refund) or by the checkout's transactionReference given at tracking. The event is
 * kept once by its id, the payment's last event updated, and the refund it names (or, without
 * one, the refunds in doubt) settled by it, as the events query would.
 */
export async function receivePaypalEvent(
  ctx: BillingContext,
  e: {
    eventId: string;
    transactionReference: string;
    type: string;
    reference?: string | undefined;
    payload: unknown;
    occurredAt?: Date | undefined;
  },
): Promise<{ outcome: 'applied' | 'recorded' | 'duplicate' | 'unknown_reference'; paymentId?: number }> {
  const db = ctx.database;
  const found = await db.rows<{ payment_id: number; refund_id: number | null }>(
    sql`select payment_id, id as refund_id from paypal_refunds where reference = ${e.reference ?? null}
        union all
        select id, null from paypal_payments where transaction_reference = ${e.transactionReference}
        limit 1`,
  );
  const hit = found[0];
  if (!hit) return { outcome: 'unknown_reference' };
  const paymentId = hit.payment_id;
  return db.db.transaction(async (tx) => {
    if (!(await keepPaypalWebhook(db, tx, e))) return { outcome: 'duplicate', paymentId };
    const moved = await recordPaypalAnswer(
      db,
      {
        paymentId,
        rawEvent: e.type,
        outcome: refundOutcome(e.type),
        links: {},
        checkedAt: ctx.clock.now(),
        source: 'webhook',
        refundId: hit.refund_id ?? undefined,
      },
      tx,
    );
    return { outcome: moved.length > 0 ? 'applied' : 'recorded', paymentId };
  });
}
