import { sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import { errorMessage } from '../../errors.ts';
import { GatewayError, RequestRejectedError } from '../../gateways/errors.ts';
import { linkFor } from '../../gateways/links.ts';
import type { Links, PaymentActionKind, PaymentActionResult, PaymentStatus } from '../../gateways/types.ts';
import type { BillingContext } from '../context.ts';
import { type Acceptance, commitAcceptances, commitActionFailed } from '../sql/payment-actions.ts';
import { releaseLease } from '../sql/transitions.ts';
import { batcher } from './batcher.ts';
import type { SettlePlan } from './outcome.ts';
import { actionReference } from './references.ts';

export { commitActionFailed } from '../sql/payment-actions.ts';

/**
 * A payment's settle: planned from its mandate after an authorization, sent once its
 * write-ahead row is committed, and its answer committed. Settlements a crash left behind are
 * resumed in `recover.ts`; where they ended is followed in `follow.ts`.
 */

/** The settle the mandate asks for after an authorization, or null when it settles by hand. */
export function planSettle(
  m: { settleMode: string; settlePercent: number | null; amount: number; currency: string },
  reference: string,
  links: Links,
  paymentId: string,
): SettlePlan | null {
  if (m.settleMode === 'none') return null;
  if (m.settleMode === 'partial' && m.settlePercent !== null && m.settlePercent < 100) {
    const amount = Math.floor((m.amount * m.settlePercent) / 100);
    if (amount > 0) {
      return {
        kind: 'partialSettle',
        reference: actionReference(reference, 'partialSettle', 1),
        amount,
        currency: m.currency,
        linkHref: linkFor(links, 'partialSettle') ?? paymentId,
      };
    }
  }
  return {
    kind: 'settle',
    reference: actionReference(reference, 'settle', 1),
    amount: m.amount,
    currency: m.currency,
    linkHref: linkFor(links, 'settle') ?? paymentId,
  };
}

/** Which action kinds a payment status proves were accepted. */
export const ACTIONS_PROVEN: Partial<Record<string, PaymentActionKind[]>> = {
  sentForSettlement: ['settle', 'partialSettle'],
  settled: ['settle', 'partialSettle'],
  sentForCancellation: ['cancel'],
  cancelled: ['cancel', 'reversal'],
  sentForRefund: ['refund', 'partialRefund', 'reversal'],
  refunded: ['refund', 'partialRefund', 'reversal'],
};

/** A payment in this status has been sent for settlement (or gone further: refunded). */
export const settleProvenBy = (status: PaymentStatus): boolean =>
  ['settled', 'sentForSettlement', 'sentForRefund', 'refunded', 'refundFailed'].includes(status);

/**
 * An action the gateway turned away because it already has it: its reference was used
 * (`duplicateReference`), or a full action's payment is already past the state it acts on
 * (409). Both are what a worker whose database forgot the action meets when it sends it again.
 * Never an answer on its own: the gateway is asked about the payment, and when the status it
 * reports proves this kind of action accepted, that is the answer (with the payment's links).
 * Anything else (another 4xx, a status that proves nothing) answers undefined: the rejection
 * stands.
 */
export async function adoptRejectedAction(
  ctx: BillingContext,
  gateway: string,
  payment: { paymentId: string; links: Links },
  kind: PaymentActionKind,
  err: unknown,
): Promise<Extract<PaymentActionResult, { outcome: 'accepted' }> | undefined> {
  if (!(err instanceof RequestRejectedError) || !(err.duplicateReference || err.status === 409)) return;
  const q = await ctx.gateway(gateway).query(payment);
  if (q.found !== true || !ACTIONS_PROVEN[q.status]?.includes(kind)) return;
  ctx.logger.info({ kind, status: q.rawStatus }, `${kind} already at the gateway; adopted what it reports`);
  return {
    outcome: 'accepted',
    links: q.links,
    status: q.status,
    latencyMs: q.latencyMs,
    httpStatus: q.httpStatus,
    correlationId: q.correlationId,
  };
}

/**
 * The newest link of each relation a payment has returned: the authorization's, then each
 * action's in order, a later answer's link replacing an earlier one of the same relation (the
 * `payment_links` view, reached through the attempt's charge so both halves use an index).
 * `on`: a transaction to read in (PGlite has one connection: a read outside it would wait).
 */
export async function paymentLinks(database: Database, attemptId: number, on?: Executor): Promise<Links> {
  const rows = await database.rows<{ rel: string; href: string }>(
    sql`select rel, href from payment_links
     where charge_id = (select charge_id from attempts where id = ${attemptId}) and attempt_id = ${attemptId}
     order by action_id nulls first, n`,
    on,
  );
  const out: Links = {};
  for (const r of rows) out[r.rel] = r.href;
  return out;
}

/**
 * Apply an action's accepted answer: a batch of one through the statement that commits the
 * run's settles many at a time (`commitAcceptances`): the action, its links, the charge's
 * amounts and, where the table allows it from where the charge is now, its state. An answer
 * that arrives after the charge moved on (a webhook said settled first) still records the
 * action and amounts. With a fence, only the holder of that lease may write; without one (an
 * answer proven by a later query), the action row's own `requested` state is the guard.
 */
export async function commitActionAccepted(
  database: Database,
  a: { actionId: number; chargeId: number; kind: string; amount: number | null },
  r: Extract<PaymentActionResult, { outcome: 'accepted' }>,
  opts: { releaseLease: boolean; fence?: number | undefined; on?: Executor | undefined },
): Promise<boolean> {
  const applied = await commitAcceptances(
    database,
    [
      {
        ...a,
        fence: opts.fence ?? null,
        httpStatus: r.httpStatus ?? null,
        correlationId: r.correlationId ?? null,
        links: r.links,
        releaseLease: opts.releaseLease,
      },
    ],
    opts.on,
  );
  return applied.has(a.actionId);
}

/**
 * Send a settle whose write-ahead row is committed, and record the answer. An unknown answer
 * leaves the action `requested`; settlement follow-up asks the gateway before sending again.
 */
export async function sendSettle(
  ctx: BillingContext,
  s: {
    gateway: string;
    chargeId: number;
    /** The fencing token of the lease the caller holds on the charge. */
    fence: number;
    attemptId: number;
    actionId: number;
    plan: SettlePlan;
    paymentId: string;
    links: Links;
    /** The run's batch: the acceptance commits with others (`acceptanceBatcher` below). */
    batch?: AcceptanceBatcher | undefined;
  },
): Promise<'accepted' | 'unknown' | 'failed'> {
  const gw = ctx.gateway(s.gateway);
  let result: PaymentActionResult;
  try {
    result = await gw.action({
      kind: s.plan.kind,
      links: s.links,
      paymentId: s.paymentId,
      reference: s.plan.reference,
      value:
        s.plan.kind === 'partialSettle' ? { amount: s.plan.amount, currency: s.plan.currency } : undefined,
    });
  } catch (err) {
    const adopted = await adoptRejectedAction(ctx, s.gateway, s, s.plan.kind, err);
    if (adopted) return acceptSettle(ctx, s, adopted);
    const answer = err instanceof GatewayError ? err : undefined;
    const message = err instanceof Error ? err.message : undefined;
    ctx.logger.warn(
      { chargeId: s.chargeId, err: message, correlationId: answer?.correlationId },
      'settle rejected',
    );
    await commitActionFailed(
      ctx.database,
      { actionId: s.actionId, chargeId: s.chargeId, fence: s.fence },
      {
        httpStatus: answer?.status,
        correlationId: answer?.correlationId,
        error: message ?? 'settle rejected',
        chargeState: 'settle_failed',
      },
    );
    return 'failed';
  }
  ctx.metrics?.gatewayLatency(s.plan.kind, result.latencyMs / 1000);
  if (result.outcome === 'unknown') {
    ctx.logger.warn(
      { chargeId: s.chargeId, correlationId: result.correlationId, reason: result.reason },
      'settle outcome unknown',
    );
    await releaseLease(
      ctx.database,
      { chargeId: s.chargeId, fence: s.fence },
      `settle outcome unknown: ${result.reason}`,
    );
    return 'unknown';
  }
  return acceptSettle(ctx, s, result);
}

/** Commit a settle's acceptance: in the run's batch when there is one, else on its own. */
async function acceptSettle(
  ctx: BillingContext,
  s: {
    chargeId: number;
    fence: number;
    attemptId: number;
    actionId: number;
    plan: SettlePlan;
    batch?: AcceptanceBatcher | undefined;
  },
  result: Extract<PaymentActionResult, { outcome: 'accepted' }>,
): Promise<'accepted'> {
  const accepted: Acceptance = {
    actionId: s.actionId,
    chargeId: s.chargeId,
    fence: s.fence,
    kind: s.plan.kind,
    amount: s.plan.amount,
    httpStatus: result.httpStatus ?? null,
    correlationId: result.correlationId ?? null,
    links: result.links,
    releaseLease: true,
  };
  // The run's batch commits it with others; without one (PGlite), the same statement for one.
  // Either way the settle is done when its acceptance is committed: a settle off the slot holds
  // its place until then, so answers cannot pile up in memory faster than they are committed.
  if (s.batch) await s.batch.add(accepted);
  else await commitAcceptances(ctx.database, [accepted]);
  return 'accepted';
}

/** An authorized payment as settlement resumption and follow-up read it. */
export interface PaymentRow {
  chargeId: number;
  fence: number;
  attemptId: number;
  gateway: string;
  paymentId: string;
  transactionReference: string;
  amount: number;
  currency: string;
  settleMode: string;
  settlePercent: number | null;
  /** A settle written ahead whose answer never came. */
  pendingActionId: number | null;
}

/**
 * An authorized payment's row as settlement resumption's claim and follow-up's select return
 * it; follow-up selects no amounts, settle mode, fence or pending action.
 */
export interface PaymentSelectRow {
  id: number;
  authorized_attempt_id: number;
  gateway: string;
  gateway_payment_id: string;
  transaction_reference: string;
  fence?: number;
  amount?: number;
  currency?: string;
  settle_mode?: string;
  settle_percent?: number | null;
  pending_action_id?: number | null;
}

/** The one reader of those rows (columns a query did not select read as their empty value). */
export function toPaymentRow(r: PaymentSelectRow): PaymentRow {
  return {
    chargeId: r.id,
    fence: r.fence ?? 0,
    attemptId: r.authorized_attempt_id,
    gateway: r.gateway,
    paymentId: r.gateway_payment_id,
    transactionReference: r.transaction_reference,
    amount: r.amount ?? 0,
    currency: r.currency ?? '',
    settleMode: r.settle_mode ?? 'none',
    settlePercent: r.settle_percent ?? null,
    pendingActionId: r.pending_action_id ?? null,
  };
}

/**
 * The run's settle acceptances, group-committed (`batcher`) through the statement
 * `commitActionAccepted` commits one with. Write-ahead is not weakened: the settle's action row
 * (`requested`) was committed with the authorization before the settle was sent; what waits
 * here is only its answer, which a crash loses to `resumeSettlements` (it asks the gateway
 * before sending anything again). `add` resolves once the acceptance's batch is committed (or
 * failed, which is logged and noted, never thrown: the action stays `requested` for settlement
 * resumption). Its caller is the settle, off the sender's slot, so no sender waits on it; but a
 * settle keeps its place among the C off the slot until then, which bounds what waits here (at
 * one month start, 1,000,000 charges at 200 ms, 130,000 answered settles once queued here
 * uncommitted, 1 GiB resident, when nothing waited). `close()` commits what is left; the run
 * releases its leases only after that.
 */
export function acceptanceBatcher(
  ctx: BillingContext,
  opts: { maxItems?: number; onError?: (message: string) => void } = {},
) {
  const b = batcher<Acceptance, boolean>(
    ctx,
    'settle acceptance',
    async (items) => {
      const applied = await commitAcceptances(ctx.database, items);
      return items.map((a) => applied.has(a.actionId));
    },
    { maxItems: opts.maxItems ?? 100 },
  );
  return {
    add(a: Acceptance): Promise<void> {
      return b.add(a).then(
        (applied) => {
          if (!applied)
            ctx.logger.warn(
              { actionId: a.actionId, chargeId: a.chargeId },
              'settle acceptance not applied: its charge was taken over meanwhile',
            );
        },
        (err: unknown) => {
          // Left `requested`: the next run's settlement resumption asks the gateway and applies it.
          ctx.logger.error(
            { err: errorMessage(err), actionId: a.actionId },
            'settle acceptance not committed',
          );
          opts.onError?.(`settle acceptance not committed: ${errorMessage(err)}`);
        },
      );
    },
    close: b.close,
  };
}
export type AcceptanceBatcher = ReturnType<typeof acceptanceBatcher>;
