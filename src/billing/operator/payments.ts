import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { CHARGE_ACTION_STATES } from '../../domain/charge-actions.ts';
import type { ChargeState } from '../../domain/lifecycle.ts';
import { formatMoney, guardMoney } from '../../domain/money.ts';
import { ConflictError, GatewayRejectedError, NotFoundError, ValidationError } from '../../errors.ts';
import { GatewayError } from '../../gateways/errors.ts';
import { actionLink } from '../../gateways/links.ts';
import type { PaymentActionKind, PaymentActionResult } from '../../gateways/types.ts';
import { actionReference } from '../charge/references.ts';
import {
  adoptRejectedAction,
  commitActionAccepted,
  commitActionFailed,
  paymentLinks,
} from '../charge/settle.ts';
import type { BillingContext } from '../context.ts';
import { parseInput } from '../mandates/index.ts';
import { releaseLease, writeAudit } from '../sql/transitions.ts';
import { type ChargeDetail, getCharge } from './charges.ts';
import type { AuthorizedPaymentRow } from './payment-events.ts';

/** The payment's room: an action, and the events query that resolves one left unknown. */
export { type PaymentEventsOutcome, paymentEvents, recordedPaymentEvents } from './payment-events.ts';

/**
 * Operator actions on a charge's payment (the authorized attempt): settle, partial settle,
 * cancel, refund, partial refund, reversal; the events query is `payment-events.ts`. Amount and
 * state checks are done here, under a row lock on the charge, before anything is sent; the
 * action row is committed before the request goes out, like an authorization.
 */

export type PaymentOp = PaymentActionKind;
export const paymentOps: readonly PaymentOp[] = [
  'settle',
  'partialSettle',
  'cancel',
  'refund',
  'partialRefund',
  'reversal',
];

export const amountInputSchema = z
  .object({
    amount: z.number().int().positive(),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code')
      .optional(),
  })
  .strict();
export const noAmountInputSchema = z
  .object({
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code')
      .optional(),
  })
  .strict();

export interface PaymentActionOutcome {
  chargeId: number;
  actionId: number;
  kind: PaymentOp;
  reference: string;
  amount: number | null;
  currency: string;
  /** `unknown`: the gateway may or may not have acted; `events` resolves it before anything is resent. */
  outcome: 'accepted' | 'unknown';
  correlationId: string | null;
  charge: ChargeDetail;
}

interface Locked {
  actionId: number;
  attemptId: number;
  gateway: string;
  paymentId: string;
  reference: string;
  amount: number | null;
  currency: string;
  fence: number;
}

const SETTLES = sql`('settle', 'partialSettle')`;
const REFUNDS = sql`('refund', 'partialRefund', 'reversal')`;

/**
 * Check the request against the charge and what was already asked of the gateway, then write
 * the action row and take the charge's lease, all in one transaction so that two operators
 * (or an operator and the daemon's auto-settle) cannot both pass the checks.
 */
async function writeAheadAction(
  ctx: BillingContext,
  chargeId: number,
  kind: PaymentOp,
  input: { amount?: number | undefined; currency?: string | undefined },
): Promise<Locked> {
  return ctx.database.db.transaction(async (tx) => {
    const rows = await ctx.database.rows<
      AuthorizedPaymentRow & {
        id: number;
        amount: number;
        currency: string;
        lease_owner: string | null;
        lease_expires_at: Date | null;
        leased: boolean;
      }
    >(
      sql`select c.id, c.amount, c.currency, c.state, c.authorized_attempt_id, c.lease_owner, c.lease_expires_at,
             (c.lease_expires_at is not null and c.lease_expires_at > now()) as leased,
             m.gateway, a.transaction_reference, a.gateway_payment_id
        from charges c join mandates m on m.id = c.mandate_id left join attempts a on a.id = c.authorized_attempt_id
       where c.id = ${chargeId} for update of c`,
      tx,
    );
    const c = rows[0];
    if (!c) throw new NotFoundError('charge', chargeId);
    const currency = c.currency;
    const state = c.state as ChargeState;
    if (c.authorized_attempt_id === null || c.gateway_payment_id === null)
      throw new ConflictError(`charge ${chargeId} is ${state}: it has no authorized payment`);
    if (input.currency !== undefined && input.currency !== currency)
      throw new ConflictError(`charge ${chargeId} is in ${currency}, not ${input.currency}`);
    if (c.leased === true)
      throw new ConflictError(`charge ${chargeId} is being worked on by ${c.lease_owner}; try again shortly`);
    if (input.amount !== undefined) guardMoney(input.amount, currency, ctx.config.billing.maxAmount);
    const sums = await ctx.database.rows<{
      settle_asked: number;
      settled: number;
      settle_pending: number;
      refund_asked: number;
      refunds: number;
      cancels: number;
      same_kind: number;
    }>(
      sql`select
          coalesce(sum(amount) filter (where kind in ${SETTLES} and state in ('accepted', 'requested')), 0) as settle_asked,
          coalesce(sum(amount) filter (where kind in ${SETTLES} and state = 'accepted'), 0) as settled,
          count(*) filter (where kind in ${SETTLES} and state = 'requested') as settle_pending,
          coalesce(sum(amount) filter (where kind in ${REFUNDS} and state in ('accepted', 'requested')), 0) as refund_asked,
          count(*) filter (where kind in ${REFUNDS} and state in ('accepted', 'requested')) as refunds,
          count(*) filter (where kind = 'cancel' and state in ('accepted', 'requested')) as cancels,
          count(*) filter (where kind = ${kind}) as same_kind
        from payment_actions where charge_id = ${chargeId} and attempt_id = ${c.authorized_attempt_id}`,
      tx,
    );
    const s = sums[0]!;
    const authorized = c.amount;
    const settleAsked = s.settle_asked;
    const settled = s.settled;
    const refundAsked = s.refund_asked;
    if (s.cancels > 0) throw new ConflictError(`charge ${chargeId}: the payment was cancelled`);
    let amount: number | null = null;
    switch (kind) {
      case 'settle':
        if (settleAsked > 0)
          throw new ConflictError(
            `charge ${chargeId}: ${formatMoney(settleAsked, currency)} already settled or requested; use partial-settle for the rest`,
          );
        if (!CHARGE_ACTION_STATES.settle.includes(state))
          throw new ConflictError(
            `charge ${chargeId} is ${state}: only an authorized payment can be settled`,
          );
        amount = authorized;
        break;
      case 'partialSettle':
        amount = input.amount ?? 0;
        if (!CHARGE_ACTION_STATES.partialSettle.includes(state))
          throw new ConflictError(
            `charge ${chargeId} is ${state}: only an authorized payment can be settled`,
          );
        if (settleAsked + amount > authorized)
          throw new ConflictError(
            `charge ${chargeId}: settling ${formatMoney(amount, currency)} would exceed the authorized ${formatMoney(authorized, currency)} (${formatMoney(settleAsked, currency)} already settled or requested)`,
          );
        break;
      case 'cancel':
        if (!CHARGE_ACTION_STATES.cancel.includes(state) || settleAsked > 0)
          throw new ConflictError(
            `charge ${chargeId} is ${state}${settleAsked > 0 ? ' with a settlement' : ''}: only an authorized payment with nothing settled can be cancelled`,
          );
        break;
      case 'refund':
      case 'partialRefund':
        if (s.settle_pending > 0)
          throw new ConflictError(
            `charge ${chargeId}: a settlement is pending with an unknown outcome; run events first`,
          );
        amount = kind === 'refund' ? settled - refundAsked : (input.amount ?? 0);
        if (settled === 0)
          throw new ConflictError(`charge ${chargeId}: nothing is settled, there is nothing to refund`);
        if (!CHARGE_ACTION_STATES[kind].includes(state))
          throw new ConflictError(`charge ${chargeId} is ${state}: it cannot be refunded`);
        if (amount <= 0 || refundAsked + amount > settled)
          throw new ConflictError(
            `charge ${chargeId}: refunding ${formatMoney(amount, currency)} would exceed the settled ${formatMoney(settled, currency)} (${formatMoney(refundAsked, currency)} already refunded or requested)`,
          );
        break;
      case 'reversal':
        if (s.refunds > 0)
          throw new ConflictError(`charge ${chargeId}: a refund or reversal was already requested`);
        if (!CHARGE_ACTION_STATES.reversal.includes(state))
          throw new ConflictError(`charge ${chargeId} is ${state}: it cannot be reversed`);
        amount = settled > 0 ? settled : null;
        break;
    }
    const attemptId = c.authorized_attempt_id;
    const txRef = String(c.transaction_reference);
    const reference = actionReference(txRef, kind, s.same_kind + 1);
    const paymentId = c.gateway_payment_id;
    const links = await paymentLinks(ctx.database, attemptId, tx);
    const ins = await ctx.database.rows<{ id: number }>(
      sql`insert into payment_actions (charge_id, attempt_id, kind, reference, amount, currency, link_href)
          values (${chargeId}, ${attemptId}, ${kind}, ${reference}, ${amount}, ${currency},
                  ${actionLink(links, kind) ?? paymentId}) returning id`,
      tx,
    );
    const lease = await ctx.database.rows<{ fence: number }>(
      sql`update charges set lease_owner = ${ctx.workerId},
            lease_expires_at = now() + make_interval(secs => ${ctx.config.billing.leaseSeconds}), fence = fence + 1
          where id = ${chargeId} returning fence`,
      tx,
    );
    await writeAudit(tx, 'payment_action', ins[0]!.id, null, 'requested', `${kind} requested`);
    return {
      actionId: ins[0]!.id,
      attemptId,
      gateway: c.gateway,
      paymentId,
      reference,
      amount,
      currency,
      fence: lease[0]!.fence,
    };
  });
}

/** Record an action the gateway turned away, and the error the caller answers with. */
async function actionRejected(
  ctx: BillingContext,
  a: { actionId: number; fence: number; reference: string },
  chargeId: number,
  kind: PaymentOp,
  err: unknown,
): Promise<Error> {
  const answer = err instanceof GatewayError ? err : undefined;
  const message = err instanceof Error ? err.message : undefined;
  ctx.logger.warn(
    {
      chargeId,
      actionId: a.actionId,
      reference: a.reference,
      correlationId: answer?.correlationId,
      err: message,
    },
    `${kind} rejected`,
  );
  await commitActionFailed(
    ctx.database,
    { actionId: a.actionId, chargeId, fence: a.fence },
    {
      httpStatus: answer?.status,
      correlationId: answer?.correlationId,
      error: `${kind} rejected: ${message ?? 'error'}`,
    },
  );
  // The adapter refused before sending (no such link in the payment's state): a state conflict.
  if (err instanceof ValidationError)
    return new ConflictError(`charge ${chargeId}: ${kind} is not available: ${err.message}`);
  return new GatewayRejectedError(
    `charge ${chargeId}: ${kind} rejected by the gateway: ${message ?? 'error'}`,
    {
      cause: err,
    },
  );
}

/** Run one payment action on a charge: checks, write-ahead, the request, its outcome recorded. */
export async function paymentAction(
  ctx: BillingContext,
  chargeId: number,
  kind: PaymentOp,
  raw: unknown = {},
): Promise<PaymentActionOutcome> {
  const input =
    kind === 'partialSettle' || kind === 'partialRefund'
      ? parseInput(amountInputSchema, raw ?? {})
      : parseInput(noAmountInputSchema, raw ?? {});
  const a = await writeAheadAction(ctx, chargeId, kind, input);
  const log = ctx.logger.child({ chargeId, actionId: a.actionId, reference: a.reference });
  const links = await paymentLinks(ctx.database, a.attemptId);
  const payment = { paymentId: a.paymentId, links };
  let result: PaymentActionResult;
  try {
    result = await ctx.gateway(a.gateway).action({
      kind,
      ...payment,
      reference: a.reference,
      value: a.amount !== null ? { amount: a.amount, currency: a.currency } : undefined,
    });
  } catch (err) {
    // The gateway may already have this action (sent by a worker whose database forgot it).
    const adopted = await adoptRejectedAction(ctx, a.gateway, payment, kind, err);
    if (!adopted) throw await actionRejected(ctx, a, chargeId, kind, err);
    result = adopted;
  }
  ctx.metrics?.gatewayLatency(kind, result.latencyMs / 1000);
  if (result.outcome === 'unknown') {
    log.warn({ correlationId: result.correlationId, reason: result.reason }, `${kind} outcome unknown`);
    await releaseLease(
      ctx.database,
      { chargeId, owner: ctx.workerId, fence: a.fence },
      `${kind} outcome unknown: ${result.reason}`,
    );
  } else {
    log.info({ correlationId: result.correlationId }, `${kind} accepted`);
    await commitActionAccepted(
      ctx.database,
      { actionId: a.actionId, chargeId, kind, amount: a.amount },
      result,
      { releaseLease: true, fence: a.fence },
    );
  }
  return {
    chargeId,
    actionId: a.actionId,
    kind,
    reference: a.reference,
    amount: a.amount,
    currency: a.currency,
    outcome: result.outcome,
    correlationId: result.correlationId ?? null,
    charge: await getCharge(ctx.database, chargeId),
  };
}
