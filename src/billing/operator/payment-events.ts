import { sql } from 'drizzle-orm';
import { ConflictError, NotFoundError } from '../../errors.ts';
import { applyPaymentStatus, resolvePendingActions } from '../charge/follow.ts';
import { paymentLinks } from '../charge/settle.ts';
import type { BillingContext } from '../context.ts';
import { type ChargeDetail, getCharge } from './charges.ts';

/**
 * The events query on a charge's payment: ask the gateway where it is now and apply that, and
 * resolve the operator's actions an unknown answer left `requested` by what the payment shows
 * (the daemon's follow-up and the webhook resolve them the same way).
 */

/** A charge's authorized payment, as the payment operations read it (the attempt may be missing). */
export interface AuthorizedPaymentRow {
  authorized_attempt_id: number | null;
  state: string;
  gateway: string;
  gateway_payment_id: string | null;
  transaction_reference: string | null;
}

export interface PaymentEventsOutcome {
  chargeId: number;
  found: boolean | 'unknown';
  status: string | null;
  rawStatus: string | null;
  /** The charge state the answer moved the charge to, when it moved. */
  applied: string | null;
  charge: ChargeDetail;
}

/** A charge's payment events as recorded (webhooks and queries), oldest first: read only, nothing asked. */
export async function recordedPaymentEvents(
  ctx: BillingContext,
  chargeId: number,
): Promise<{ chargeId: number; items: ChargeDetail['events'] }> {
  const charge = await getCharge(ctx.database, chargeId);
  return { chargeId, items: charge.events };
}

/**
 * Ask the gateway where the payment is now and apply it (what the daemon's follow-up does): the
 * POST of a charge's query, never a GET, since the answer is written.
 */
export async function paymentEvents(ctx: BillingContext, chargeId: number): Promise<PaymentEventsOutcome> {
  const rows =
    await ctx.database.rows<AuthorizedPaymentRow>(sql`select c.authorized_attempt_id, c.state, m.gateway, a.gateway_payment_id,
      a.transaction_reference from charges c join mandates m on m.id = c.mandate_id
      left join attempts a on a.id = c.authorized_attempt_id where c.id = ${chargeId}`);
  const c = rows[0];
  if (!c) throw new NotFoundError('charge', chargeId);
  if (c.authorized_attempt_id === null || c.gateway_payment_id === null)
    throw new ConflictError(`charge ${chargeId} is ${c.state}: it has no authorized payment`);
  const attemptId = c.authorized_attempt_id;
  const links = await paymentLinks(ctx.database, attemptId);
  const q = await ctx.gateway(c.gateway).query({ paymentId: c.gateway_payment_id, links });
  ctx.metrics?.gatewayLatency('query', q.latencyMs / 1000);
  let applied: string | null = null;
  if (q.found === true) {
    // An action left `requested` by an unknown answer is resolved by what the payment shows
    // (first: the status below may then move the charge further, never back).
    await resolvePendingActions(ctx.database, attemptId, q.status);
    applied = await applyPaymentStatus(ctx.database, {
      attemptId,
      status: q.status,
      rawStatus: q.rawStatus,
      source: 'query',
      transactionReference: c.transaction_reference,
    });
  }
  return {
    chargeId,
    found: q.found,
    status: q.found === true ? q.status : null,
    rawStatus: q.found === true ? q.rawStatus : null,
    applied,
    charge: await getCharge(ctx.database, chargeId),
  };
}
