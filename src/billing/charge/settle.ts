import { type SQL, sql } from 'drizzle-orm';
import type { Database, Executor, Tx } from '../../db/client.ts';
import { num, numOrNull, str } from '../../db/values.ts';
import type { ChargeState } from '../../domain/lifecycle.ts';
import { errorMessage } from '../../errors.ts';
import { GatewayError } from '../../gateways/errors.ts';
import type { Links, PaymentActionResult, PaymentStatus } from '../../gateways/types.ts';
import type { BillingContext } from '../context.ts';
import { type Acceptance, commitAcceptances } from '../sql/settle-acceptances.ts';
import { chargeMayBecome, movesTo, releaseLease, transitionCharge } from '../sql/transitions.ts';
import { leaseClaim } from './claim.ts';
import type { SettlePlan } from './outcome.ts';
import { actionReference } from './references.ts';
import type { AcceptanceBatcher } from './settle-batch.ts';

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
        linkHref: links['payments:partialSettle'] ?? paymentId,
      };
    }
  }
  return {
    kind: 'settle',
    reference: actionReference(reference, 'settle', 1),
    amount: m.amount,
    currency: m.currency,
    linkHref: links['payments:settle'] ?? paymentId,
  };
}

/** The newest link of each relation a payment has returned (authorization, then actions). */
export async function paymentLinks(database: Database, attemptId: number): Promise<Links> {
  const rows = await database.rows(
    sql`select distinct on (rel) rel, href from links where attempt_id = ${attemptId} order by rel, id desc`,
  );
  const out: Links = {};
  for (const r of rows) out[String(r.rel)] = String(r.href);
  return out;
}

/**
 * Where an accepted action takes its charge. Refunds compare what is then refunded with what
 * is settled: all of it is `refunded`, less is `partially_refunded`. A reversal cancels an
 * authorization and refunds a settlement.
 */
function actionTarget(kind: string, amount: number | null): { expr: SQL; candidates: ChargeState[] } | null {
  switch (kind) {
    case 'settle':
    case 'partialSettle':
      return { expr: sql`'settling'`, candidates: ['settling'] };
    case 'cancel':
      return { expr: sql`'cancelled'`, candidates: ['cancelled'] };
    case 'reversal':
      return {
        expr: sql`(case when c.state = 'authorized' then 'cancelled' else 'refunded' end)`,
        candidates: ['cancelled', 'refunded'],
      };
    case 'refund':
    case 'partialRefund':
      return {
        expr: sql`(case when c.refunded_amount + ${amount ?? 0}::bigint >= c.settled_amount then 'refunded' else 'partially_refunded' end)`,
        candidates: ['refunded', 'partially_refunded'],
      };
    default:
      return null;
  }
}

/** The SET of an action's charge state: the target where the table allows it, else unchanged. */
function stateAfter(target: ReturnType<typeof actionTarget>): SQL {
  if (target === null) return sql`c.state`;
  const [only] = target.candidates;
  // One possible target (settle, cancel): the plain guard, without comparing the target to itself.
  if (target.candidates.length === 1 && only !== undefined)
    return sql`case when ${chargeMayBecome(only, 'c', { orSame: true })} then ${target.expr} else c.state end`;
  return sql`case when ${movesTo(target.expr, target.candidates, 'c')} then ${target.expr} else c.state end`;
}

/**
 * Apply an action's accepted answer: the action, its links, the charge's amounts and, where
 * the table allows it from where the charge is now, its state. An answer that arrives after
 * the charge moved on (a webhook said settled first) still records the action and amounts.
 * With a fence, only the holder of that lease may write; without one (an answer proven by a
 * later query), the action row's own `requested` state is the guard.
 */
export async function commitActionAccepted(
  database: Database,
  a: { actionId: number; chargeId: number; attemptId: number; kind: string; amount: number | null },
  r: Extract<PaymentActionResult, { outcome: 'accepted' }>,
  opts: { releaseLease: boolean; fence?: number | undefined; on?: Executor | undefined },
): Promise<boolean> {
  const links = Object.entries(r.links);
  const settleKinds = a.kind === 'settle' || a.kind === 'partialSettle';
  const refundKinds = a.kind === 'refund' || a.kind === 'partialRefund';
  const target = actionTarget(a.kind, a.amount);
  const fenced = opts.fence === undefined ? sql`true` : sql`c.fence = ${opts.fence}`;
  const rows = await database.rows(
    sql`
    with ch as (
      update charges c set
        state = ${stateAfter(target)},
        settled_amount = c.settled_amount + case when ${settleKinds}::boolean then ${a.amount ?? 0}::bigint else 0 end,
        refunded_amount = c.refunded_amount + case when ${refundKinds}::boolean then ${a.amount ?? 0}::bigint else 0 end,
        lease_owner = case when ${opts.releaseLease}::boolean then null else c.lease_owner end,
        lease_expires_at = case when ${opts.releaseLease}::boolean then null else c.lease_expires_at end,
        updated_at = now()
       from charges o
       where c.id = ${a.chargeId} and o.id = c.id and ${fenced}
         and exists (select 1 from payment_actions where id = ${a.actionId} and state = 'requested')
      returning c.id, o.state as from_state, c.state as to_state
    ), act as (
      update payment_actions set state = 'accepted', http_status = ${r.httpStatus ?? null},
             correlation_id = ${r.correlationId ?? null}, completed_at = now()
       where id = ${a.actionId} and state = 'requested' and exists (select 1 from ch) returning id
    )${
      links.length > 0
        ? sql`, lk as (
      insert into links (attempt_id, action_id, source, rel, href)
      select ${a.attemptId}::bigint, ${a.actionId}::bigint, ${a.kind}, v.rel, v.href
        from (values ${sql.join(
          links.map(([rel, href]) => sql`(${rel}, ${href})`),
          sql`, `,
        )}) as v(rel, href)
       where exists (select 1 from act))`
        : sql``
    }, aud as (
      insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      select 'payment_action', id, 'requested', 'accepted', ${`${a.kind} accepted by the gateway`} from act
      union all
      select 'charge', id, from_state, to_state, ${`${a.kind} accepted by the gateway`} from ch
       where from_state <> to_state and exists (select 1 from act)
    )
    select (select count(*) from act)::int as ok`,
    opts.on,
    { prepare: true },
  );
  return num(rows[0]?.ok ?? 0) > 0;
}

/**
 * An action the gateway turned down (or that could not be sent): the action fails, the charge
 * takes `chargeState` where the table allows it, and the lease is released, all only while the
 * caller's fence still holds.
 */
export async function commitActionFailed(
  database: Database,
  a: { actionId: number; chargeId: number; fence: number },
  info: {
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    error: string;
    chargeState?: ChargeState;
  },
): Promise<boolean> {
  return database.db.transaction(async (tx) => {
    const act = await database.rows(
      sql`update payment_actions set state = 'failed', http_status = ${info.httpStatus ?? null},
        correlation_id = ${info.correlationId ?? null}, error = ${info.error}, completed_at = now()
        where id = ${a.actionId} and state = 'requested'
          and exists (select 1 from charges where id = ${a.chargeId} and fence = ${a.fence}) returning id`,
      tx,
    );
    if (act.length === 0) return false;
    await tx.execute(sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      values ('payment_action', ${a.actionId}, 'requested', 'failed', ${info.error})`);
    if (info.chargeState) {
      const moved = await transitionCharge(database, tx, {
        id: a.chargeId,
        to: info.chargeState,
        fence: a.fence,
        release: true,
        reason: info.error,
      });
      if (moved.ok) return true;
    }
    await releaseLease(database, { chargeId: a.chargeId, fence: a.fence }, info.error, tx);
    return true;
  });
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
    /** The run's batch: the acceptance commits with others (src/billing/settle-batch.ts). */
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
  const accepted: Acceptance = {
    actionId: s.actionId,
    chargeId: s.chargeId,
    attemptId: s.attemptId,
    fence: s.fence,
    kind: s.plan.kind,
    amount: s.plan.amount,
    httpStatus: result.httpStatus ?? null,
    correlationId: result.correlationId ?? null,
    links: result.links,
  };
  // The run's batch commits it with others; without one (PGlite), the same statement for one.
  if (s.batch) s.batch.add(accepted);
  else await commitAcceptances(ctx.database, [accepted]);
  return 'accepted';
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
  const claimed = await ctx.database.rows(
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

/** An authorized payment as settlement resumption and follow-up read it. */
interface PaymentRow {
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

/** The one reader of those rows (columns a query did not select read as their empty value). */
function toPaymentRow(r: Record<string, unknown>): PaymentRow {
  return {
    chargeId: num(r.id),
    fence: numOrNull(r.fence) ?? 0,
    attemptId: num(r.authorized_attempt_id),
    gateway: String(r.gateway),
    paymentId: String(r.gateway_payment_id),
    transactionReference: String(r.transaction_reference),
    amount: numOrNull(r.amount) ?? 0,
    currency: str(r.currency) ?? '',
    settleMode: str(r.settle_mode) ?? 'none',
    settlePercent: numOrNull(r.settle_percent),
    pendingActionId: numOrNull(r.pending_action_id),
  };
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
        { actionId, chargeId, attemptId, kind: plan.kind, amount: plan.amount },
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
    const ins = await ctx.database.rows(sql`
        insert into payment_actions (charge_id, attempt_id, kind, reference, amount, currency, link_href)
        values (${chargeId}, ${attemptId}, ${plan.kind}, ${plan.reference}, ${plan.amount}, ${plan.currency}, ${plan.linkHref})
        on conflict (reference) do update set state = payment_actions.state returning id`);
    actionId = num(ins[0]?.id);
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

/**
 * Settlement follow-up: a 202 means received, not done. Ask the gateway about charges still
 * `settling` and record where they ended (`settled` or `settle_failed`).
 */
export async function followSettlements(
  ctx: BillingContext,
  opts: { limit: number },
): Promise<{ settled: number; failed: number }> {
  const rows = await ctx.database.rows(sql`
    select c.id, c.authorized_attempt_id, m.gateway, a.gateway_payment_id, a.transaction_reference
      from charges c join mandates m on m.id = c.mandate_id join attempts a on a.id = c.authorized_attempt_id
     where c.state = 'settling' and (c.lease_expires_at is null or c.lease_expires_at < now())
     order by c.updated_at limit ${opts.limit}`);
  let settled = 0;
  let failed = 0;
  for (const r of rows.map(toPaymentRow)) {
    try {
      const outcome = await followOne(ctx, r);
      if (outcome === 'settled') settled++;
      if (outcome === 'settle_failed') failed++;
    } catch (err) {
      ctx.logger.error({ chargeId: r.chargeId, err: errorMessage(err) }, 'settlement follow-up failed');
    }
  }
  return { settled, failed };
}

async function followOne(ctx: BillingContext, r: PaymentRow): Promise<string | null | undefined> {
  const { attemptId } = r;
  const links = await paymentLinks(ctx.database, attemptId);
  const q = await ctx.gateway(r.gateway).query({ paymentId: r.paymentId, links });
  if (q.found !== true) return;
  const outcome = await applyPaymentStatus(ctx.database, {
    attemptId,
    status: q.status,
    rawStatus: q.rawStatus,
    source: 'query',
    transactionReference: r.transactionReference,
  });
  return outcome;
}

/**
 * Apply a payment's latest status (from the events query or a webhook) to its charge.
 * Tolerates repeats and out-of-order delivery: it only moves a charge forward.
 */
export async function applyPaymentStatus(
  database: Database,
  e: {
    attemptId: number;
    status: PaymentStatus;
    rawStatus: string;
    source: 'query' | 'webhook';
    eventId?: string | undefined;
    transactionReference?: string | null;
    payload?: unknown;
    occurredAt?: Date | undefined;
  },
  /** An open transaction to work in (the webhook's), else one of its own. */
  on?: Tx,
): Promise<string | null> {
  const inTx = <T>(work: (tx: Tx) => Promise<T>): Promise<T> =>
    on ? work(on) : database.db.transaction(work);
  return inTx(async (tx) => {
    if (e.eventId !== undefined) {
      const ins = await database.rows(
        sql`insert into payment_events (attempt_id, event_id, source, last_event, transaction_reference, payload, occurred_at)
            values (${e.attemptId}, ${e.eventId}, ${e.source}, ${e.rawStatus}, ${e.transactionReference ?? null},
                    ${e.payload === undefined ? null : JSON.stringify(e.payload)}::jsonb, ${e.occurredAt?.toISOString() ?? null}::timestamptz)
            on conflict (event_id) do nothing returning id`,
        tx,
      );
      if (ins.length === 0) return null; // a redelivery: already applied
    } else {
      await tx.execute(sql`insert into payment_events (attempt_id, source, last_event, transaction_reference)
        values (${e.attemptId}, ${e.source}, ${e.rawStatus}, ${e.transactionReference ?? null})`);
    }
    const charge = await database.rows(
      sql`select id, state, settled_amount, refunded_amount from charges where authorized_attempt_id = ${e.attemptId} for update`,
      tx,
    );
    const c = charge[0];
    const to = c ? statusTarget(e.status, num(c.settled_amount), num(c.refunded_amount)) : null;
    let moved: ChargeState | null = null;
    if (c && to !== null && c.state !== to) {
      const r = await transitionCharge(database, tx, {
        id: num(c.id),
        to,
        reason: `payment ${e.rawStatus} (${e.source})`,
      });
      if (r.ok) moved = to;
    }
    if (e.status === 'settled' || e.status === 'settlementFailed') {
      await tx.execute(sql`update payment_actions set last_event = ${e.rawStatus}
        where attempt_id = ${e.attemptId} and kind in ('settle', 'partialSettle') and state = 'accepted'`);
    }
    return moved;
  });
}

/**
 * The charge state a payment status reports, or null when it reports none (in progress, an
 * authorization we already know). A refund the gateway reports is full unless rebill itself
 * recorded refunding less than was settled.
 */
function statusTarget(status: PaymentStatus, settled: number, refunded: number): ChargeState | null {
  switch (status) {
    case 'settled':
      return 'settled';
    case 'settlementFailed':
      return 'settle_failed';
    case 'cancelled':
      return 'cancelled';
    case 'sentForRefund':
    case 'refunded':
      return refunded > 0 && refunded < settled ? 'partially_refunded' : 'refunded';
    default:
      return null;
  }
}
