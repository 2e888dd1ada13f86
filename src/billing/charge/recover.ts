import { type SQL, sql } from 'drizzle-orm';
import { errorMessage } from '../../errors.ts';
import { linkFor } from '../../gateways/links.ts';
import type { PaymentStatus, QueryResult } from '../../gateways/types.ts';
import type { BillingContext } from '../context.ts';
import { decideRefusal } from '../dunning/refusal.ts';
import { writeAheadSettle } from '../sql/payment-actions.ts';
import { releaseLease } from '../sql/transitions.ts';
import { type ClaimRow, leaseClaim, toClaimed } from './claim.ts';
import { applyPaymentStatus, resolvePendingActions } from './follow.ts';
import {
  commitAuthorized,
  commitDeferred,
  commitRefused,
  commitUnknown,
  type PlannedAttempt,
  refusalTarget,
} from './outcome.ts';
import {
  commitActionAccepted,
  type PaymentRow,
  type PaymentSelectRow,
  paymentLinks,
  planSettle,
  sendSettle,
  settleProvenBy,
  toPaymentRow,
} from './settle.ts';

const AUTHORIZED_LIKE: PaymentStatus[] = [
  'authorized',
  'sentForSettlement',
  'settled',
  'sentForCancellation',
  'cancelled',
  'sentForRefund',
  'refunded',
  'refundFailed',
  'settlementFailed',
  // Only a payment that was authorized and settled can be disputed.
  'chargedBack',
  'informationRequested',
];

export interface ReconcileReport {
  checked: number;
  authorized: number;
  refused: number;
  notFound: number;
  /** Written ahead by a worker that stopped before launching them: never sent, counted nowhere. */
  notSent: number;
  stillUnknown: number;
  errors: number;
}

/**
 * Resolve attempts whose outcome is not known: `unknown` ones (timeout, reset, 5xx) and
 * `sending` ones a crashed worker left behind (its lease expired). Each is looked up by its
 * transactionReference; the charge is claimed under a lease first so two reconcilers never
 * act on one attempt. Nothing is ever resent under a new reference until the gateway has
 * said, past its event lag, that it has no such payment.
 */
export async function reconcileUnknown(
  ctx: BillingContext,
  opts: { asOf: Date; limit: number; mandateId?: number | undefined },
): Promise<ReconcileReport> {
  const report: ReconcileReport = {
    checked: 0,
    authorized: 0,
    refused: 0,
    notFound: 0,
    notSent: 0,
    stillUnknown: 0,
    errors: 0,
  };
  const filter: SQL = opts.mandateId === undefined ? sql`` : sql`and c.mandate_id = ${opts.mandateId}`;
  const leaseSeconds = ctx.config.billing.leaseSeconds;
  // Each chunk is claimed under its own lease and must be done well inside it: a query takes at
  // most the request timeout, so a chunk holds as many as fit in half the lease at that pace
  // (at least one). Chunks go in id order; a charge still unknown is not asked twice in a run.
  const chunk = Math.max(
    1,
    Math.min(100, Math.floor((leaseSeconds * 500) / Math.max(1, ctx.config.worldpay.requestTimeoutMs))),
  );
  let after = 0;
  while (report.checked < opts.limit) {
    const rows = await ctx.database.rows<OpenAttemptRow>(
      leaseClaim({
        pick: sql`c.state in ('unknown', 'attempting') and c.id > ${after} ${filter}`,
        order: sql`c.id`,
        limit: Math.min(chunk, opts.limit - report.checked),
        owner: ctx.workerId,
        leaseSeconds,
        from: sql`, mandates m, customers cu, credentials cr, attempts a`,
        join: sql`and m.id = c.mandate_id and cu.id = m.customer_id and cr.id = a.credential_id
          and a.charge_id = c.id and a.attempt_no = c.attempt_count`,
        returning: sql`c.id, c.mandate_id, c.cycle, c.amount, c.currency, c.state, c.attempt_count, c.fence,
              m.intent, m.entity, m.narrative, m.gateway, m.settle_mode, m.settle_percent, cu.ref as customer_ref,
              cr.id as credential_id, cr.status as credential_status, cr.instrument_type,
              a.id as attempt_id, a.attempt_no, a.transaction_reference, a.kind, a.link_href, a.sent_at, a.attempted_at,
              (a.launched_at is null and c.state = 'attempting') as never_launched,
              extract(epoch from (now() - a.sent_at))::float8 as age_seconds,
              extract(epoch from (now() - coalesce(picked.lease_was, a.sent_at)))::float8 as unsent_for_seconds`,
      }),
    );
    if (rows.length === 0) break;
    rows.sort((a, b) => a.id - b.id);
    after = rows.at(-1)?.id ?? after;
    for (const open of rows.map(toOpenAttempt)) {
      report.checked++;
      const c = open.attempt.charge;
      try {
        await reconcileOne(ctx, open, opts.asOf, report);
      } catch (err) {
        // One charge's trouble (a gateway answer that breaks the contract...) must not stop
        // billing: it stays open, its lease is released, and the next run asks again.
        report.errors++;
        ctx.logger.error({ chargeId: c.id, err: errorMessage(err) }, 'reconciliation failed for this charge');
        await releaseLease(
          ctx.database,
          { chargeId: c.id, owner: ctx.workerId, fence: c.fence },
          `reconciliation failed: ${errorMessage(err)}`,
        );
      }
    }
  }
  return report;
}

/** An attempt whose outcome is open, claimed for reconciliation, with the ages the lag rule needs. */
interface OpenAttempt {
  attempt: PlannedAttempt;
  /** Seconds since its write-ahead. */
  ageSeconds: number;
  /** Seconds since the lease of the worker that wrote it ahead ran out (it sent nothing after). */
  unsentForSeconds: number;
  /** Written ahead, never launched: its request never left the process that wrote it. */
  neverLaunched: boolean;
}

/** The reconcile claim's row: the charge's (no card data) and its open attempt's, with their ages. */
type OpenAttemptRow = ClaimRow & {
  attempt_id: number;
  attempt_no: number;
  transaction_reference: string;
  kind: PlannedAttempt['kind'];
  attempted_at: Date;
  age_seconds: number;
  unsent_for_seconds: number;
  never_launched: boolean;
};

/** The one reader of the reconcile claim's rows; it returns no card data (those read as null). */
function toOpenAttempt(r: OpenAttemptRow): OpenAttempt {
  const charge = toClaimed(r);
  return {
    attempt: {
      charge,
      attemptId: r.attempt_id,
      attemptNo: r.attempt_no,
      reference: r.transaction_reference,
      kind: r.kind,
      linkHref: r.link_href,
      asOf: r.attempted_at,
      chargeState: charge.state === 'unknown' ? 'unknown' : 'attempting',
    },
    ageSeconds: r.age_seconds,
    unsentForSeconds: r.unsent_for_seconds,
    neverLaunched: r.never_launched,
  };
}

async function reconcileOne(
  ctx: BillingContext,
  open: OpenAttempt,
  asOf: Date,
  report: ReconcileReport,
): Promise<void> {
  const p = open.attempt;
  // A missing launch marker proves nothing was sent only while the database keeps every commit:
  // after a lossy failover or a restore the marker can be lost with a request that did go out.
  // So the gateway is asked first, and only an attempt it does not know is `not_sent`.
  const q = await ctx.gateway(p.charge.gateway).queryByReference(p.reference, p.charge.entity, apiOf(p));
  if (open.neverLaunched && q.found === false && (await commitNeverSent(ctx, p))) {
    report.notSent++;
    return;
  }
  // sent_at is the write-ahead time, not the send time: a written-ahead attempt may wait in
  // the queue before it goes. A sender posts only while its lease has a margin left, so an
  // attempt still `attempting` went out, if at all, before its holder's lease ran out: count
  // the lag from there. An `unknown` one was sent right after its write-ahead.
  const age = p.charge.state === 'attempting' ? open.unsentForSeconds : open.ageSeconds;
  const lagPassed = age >= ctx.config.billing.eventLagMinutes * 60;
  report[await adoptAnswer(ctx, p, q, asOf, { lagPassed })]++;
}

/** The card API an attempt was sent through: a merchant-initiated transaction is v7's. */
const apiOf = (p: PlannedAttempt): 'v6' | 'v7' => (p.kind === 'mit' ? 'v7' : 'v6');

/** What an adoption made of an attempt: the report's counter it adds to. */
export type Adopted = 'authorized' | 'refused' | 'notFound' | 'stillUnknown';

/**
 * The gateway said this attempt's reference was already used (an authorization written ahead
 * and sent by a worker whose database forgot it: a restore, a lossy failover). That is never a
 * business outcome: ask the gateway by the reference and adopt what it knows, as the
 * reconciliation of an unknown outcome does. "Not found" cannot mean "never happened" here
 * (the gateway has just said it has it): the attempt stays open for reconciliation to ask again.
 */
export async function adoptUsedReference(ctx: BillingContext, p: PlannedAttempt): Promise<Adopted> {
  const q = await ctx.gateway(p.charge.gateway).queryByReference(p.reference, p.charge.entity, apiOf(p));
  return adoptAnswer(ctx, p, q, p.asOf, { lagPassed: false });
}

/**
 * Commit what the gateway knows of an open attempt's reference (`q`): authorized (its links
 * kept, settled as the mandate says, or recorded as far as the payment went: settling,
 * settled, refunded), refused (dunning decides), not found (after the event lag: the attempt
 * did not happen; before it: still open), or no answer (still open).
 */
export async function adoptAnswer(
  ctx: BillingContext,
  p: PlannedAttempt,
  q: QueryResult,
  asOf: Date,
  opts: { lagPassed: boolean },
): Promise<Adopted> {
  const charge = p.charge;
  const log = ctx.logger.child({
    chargeId: charge.id,
    reference: p.reference,
    correlationId: q.correlationId,
  });
  if (q.found === 'unknown') {
    await commitUnknown(ctx.database, p, {
      latencyMs: q.latencyMs,
      reason: `recovery query failed: ${q.reason}`,
    });
    return 'stillUnknown';
  }
  if (q.found === false) {
    if (!opts.lagPassed) {
      await commitUnknown(ctx.database, p, {
        httpStatus: q.httpStatus,
        correlationId: q.correlationId,
        latencyMs: q.latencyMs,
        reason: 'not found yet; the gateway may still be within its event lag',
      });
      return 'stillUnknown';
    }
    log.info('recovery: the gateway has no such payment; the attempt did not happen');
    const decision = await decideRefusal(ctx, charge, { gatewayError: true }, asOf);
    await commitRefused(
      ctx.database,
      refusalTarget(p),
      {
        attemptState: 'not_found',
        code: null,
        httpStatus: q.httpStatus,
        correlationId: q.correlationId,
        latencyMs: q.latencyMs,
        error: 'outcome unknown, then not found at the gateway after its event lag',
      },
      decision.decision,
      decision.mandateStatus,
    );
    return 'notFound';
  }
  if (q.status === 'refused' || q.status === 'failed' || q.status === 'error' || q.status === 'expired') {
    const decision = await decideRefusal(ctx, charge, { code: q.rawStatus, adviceCode: null }, asOf);
    await commitRefused(
      ctx.database,
      refusalTarget(p),
      {
        attemptState: 'refused',
        code: null,
        description: `recovered by query: ${q.rawStatus}`,
        httpStatus: q.httpStatus,
        correlationId: q.correlationId,
        latencyMs: q.latencyMs,
      },
      decision.decision,
      decision.mandateStatus,
    );
    return 'refused';
  }
  if (!AUTHORIZED_LIKE.includes(q.status)) {
    await commitUnknown(ctx.database, p, { latencyMs: q.latencyMs, reason: `payment ${q.rawStatus}` });
    return 'stillUnknown';
  }
  const paymentId = linkFor(q.links, 'events') ?? p.reference;
  // The settle the mandate asks for is written with the authorization, whatever the payment's
  // status: when the gateway already has it (sentForSettlement and later), the status proves
  // it accepted below, so the charge's settled amount is what it would have been.
  const settle =
    settleProvenBy(q.status) || q.status === 'authorized'
      ? planSettle(charge, p.reference, q.links, paymentId)
      : null;
  const committed = await commitAuthorized(
    ctx.database,
    p,
    {
      outcome: 'authorized',
      paymentId,
      links: q.links,
      latencyMs: q.latencyMs,
      httpStatus: q.httpStatus,
      correlationId: q.correlationId,
    },
    settle,
    { recovered: true },
  );
  log.info({ status: q.rawStatus }, 'recovery: the payment was authorized; kept the credential link');
  if (!committed) return 'authorized';
  if (q.status !== 'authorized') {
    // Record how far the payment went (under this worker's fence, which the commit kept):
    // the settle it proves accepted, then the status itself (settling, settled, refunded...).
    await resolvePendingActions(ctx.database, p.attemptId, q.status);
    await applyPaymentStatus(ctx.database, {
      attemptId: p.attemptId,
      status: q.status,
      rawStatus: q.rawStatus,
      source: 'query',
      transactionReference: p.reference,
    });
    await releaseLease(ctx.database, { chargeId: charge.id, owner: ctx.workerId, fence: charge.fence });
  } else if (settle && committed.settleActionId !== null) {
    await sendSettle(ctx, {
      gateway: charge.gateway,
      chargeId: charge.id,
      fence: charge.fence,
      attemptId: p.attemptId,
      actionId: committed.settleActionId,
      plan: settle,
      paymentId,
      links: q.links,
    });
  }
  return 'authorized';
}

/**
 * An attempt its worker wrote ahead and never launched (it crashed or stopped first): its
 * request provably never left, so it is `not_sent`, in no ledger, and the charge waits as it
 * was, due at once (cancelled with a cancelled mandate). Nothing is asked of the gateway. The
 * commit re-checks the launch under this reconciler's fence: a launch that won the race with
 * the claim is seen, and the attempt is reconciled by reference instead (false).
 */
async function commitNeverSent(ctx: BillingContext, p: PlannedAttempt): Promise<boolean> {
  const c = p.charge;
  const committed = await commitDeferred(ctx.database, p, {
    attemptState: 'not_sent',
    reason: 'not sent: written ahead by a worker that stopped before its request went out',
    unlaunched: true,
  });
  if (committed) await releaseLease(ctx.database, { chargeId: c.id, owner: ctx.workerId, fence: c.fence });
  return committed;
}

const SETTLING: PaymentStatus[] = ['sentForSettlement', 'settled'];

/**
 * Finish settlements a crash or an unknown answer left behind: charges `authorized` whose
 * mandate settles automatically. Ask the gateway first when a settle may already have gone
 * out, so the same settle is never sent twice.
 */
export async function resumeSettlements(
  ctx: BillingContext,
  opts: { limit: number; mandateId?: number | undefined },
): Promise<number> {
  const filter = opts.mandateId === undefined ? sql`` : sql`and c.mandate_id = ${opts.mandateId}`;
  const claimed = await ctx.database.rows<PaymentSelectRow>(
    leaseClaim({
      pick: sql`c.state = 'authorized' and pm.settle_mode <> 'none' ${filter}`,
      pickJoin: sql`join mandates pm on pm.id = c.mandate_id`,
      order: sql`c.id`,
      limit: opts.limit,
      owner: ctx.workerId,
      leaseSeconds: ctx.config.billing.leaseSeconds,
      from: sql`, mandates m, attempts a`,
      join: sql`and m.id = c.mandate_id and a.id = c.authorized_attempt_id`,
      returning: sql`c.id, c.fence, c.amount, c.currency, c.authorized_attempt_id, m.gateway, m.settle_mode, m.settle_percent,
              a.transaction_reference, a.gateway_payment_id,
              (select pa.id from payment_actions pa where pa.charge_id = c.id and pa.kind in ('settle', 'partialSettle')
                 and pa.state = 'requested' order by pa.id desc limit 1) as pending_action_id`,
    }),
  );
  let done = 0;
  for (const r of claimed.map(toPaymentRow)) {
    try {
      if (await resumeOne(ctx, r)) done++;
    } catch (err) {
      // One payment's trouble must not stop the others: its lease goes, the next run retries.
      ctx.logger.error({ chargeId: r.chargeId, err: errorMessage(err) }, 'settlement resumption failed');
      await releaseLease(
        ctx.database,
        { chargeId: r.chargeId, owner: ctx.workerId, fence: r.fence },
        `settlement resumption failed: ${errorMessage(err)}`,
      );
    }
  }
  return done;
}

async function resumeOne(ctx: BillingContext, r: PaymentRow): Promise<boolean> {
  const { chargeId, fence, attemptId, paymentId, gateway } = r;
  const links = await paymentLinks(ctx.database, attemptId);
  const plan = planSettle(r, r.transactionReference, links, paymentId);
  if (!plan) return false;
  let actionId = r.pendingActionId;
  if (actionId !== null) {
    const q = await ctx.gateway(gateway).query({ paymentId, links });
    if (q.found === true && SETTLING.includes(q.status)) {
      await commitActionAccepted(
        ctx.database,
        { actionId, chargeId, kind: plan.kind, amount: plan.amount },
        {
          outcome: 'accepted',
          links: q.links,
          latencyMs: q.latencyMs,
          httpStatus: q.httpStatus,
          correlationId: q.correlationId,
        },
        { releaseLease: true, fence },
      );
      return true;
    }
    if (q.found === 'unknown') {
      await releaseLease(ctx.database, { chargeId, owner: ctx.workerId, fence });
      return false;
    }
  } else {
    actionId = await writeAheadSettle(ctx.database, { chargeId, attemptId, ...plan });
  }
  const out = await sendSettle(ctx, {
    gateway,
    chargeId,
    fence,
    attemptId,
    actionId,
    plan,
    paymentId,
    links,
  });
  return out === 'accepted';
}
