import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import { num, str } from '../db/values.ts';
import type { Links, PaymentActionResult, PaymentStatus } from '../gateways/types.ts';
import type { SettlePlan } from './attempt.ts';
import type { BillingContext } from './context.ts';
import { actionReference } from './references.ts';

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

/** Apply an action's accepted answer: the action, its links, and the charge's amounts and state. */
export async function commitActionAccepted(
  database: Database,
  a: { actionId: number; chargeId: number; attemptId: number; kind: string; amount: number | null },
  r: Extract<PaymentActionResult, { outcome: 'accepted' }>,
  opts: { releaseLease: boolean; fence?: number | undefined },
): Promise<void> {
  const links = Object.entries(r.links);
  const settleKinds = a.kind === 'settle' || a.kind === 'partialSettle';
  const refundKinds = a.kind === 'refund' || a.kind === 'partialRefund';
  const nextState = settleKinds
    ? 'settling'
    : a.kind === 'cancel'
      ? 'cancelled'
      : refundKinds || a.kind === 'reversal'
        ? null
        : null;
  await database.rows(sql`
    with act as (
      update payment_actions set state = 'accepted', http_status = ${r.httpStatus ?? null},
             correlation_id = ${r.correlationId ?? null}, completed_at = now()
       where id = ${a.actionId} and state <> 'accepted' returning id
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
    }, ch as (
      update charges set
        state = coalesce(${nextState}, state),
        settled_amount = settled_amount + case when ${settleKinds}::boolean then ${a.amount ?? 0}::bigint else 0 end,
        refunded_amount = refunded_amount + case when ${refundKinds}::boolean then ${a.amount ?? 0}::bigint else 0 end,
        lease_owner = case when ${opts.releaseLease}::boolean then null else lease_owner end,
        lease_expires_at = case when ${opts.releaseLease}::boolean then null else lease_expires_at end,
        updated_at = now()
       where id = ${a.chargeId} and exists (select 1 from act) returning id
    )
    insert into audit_log (entity_type, entity_id, to_state, reason)
    select 'payment_action', ${a.actionId}, 'accepted', ${`${a.kind} accepted by the gateway`} where exists (select 1 from act)`);
}

export async function commitActionFailed(
  database: Database,
  a: { actionId: number; chargeId: number },
  info: {
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    error: string;
    chargeState?: string;
  },
): Promise<void> {
  await database.db.transaction(async (tx) => {
    await tx.execute(sql`update payment_actions set state = 'failed', http_status = ${info.httpStatus ?? null},
      correlation_id = ${info.correlationId ?? null}, error = ${info.error}, completed_at = now() where id = ${a.actionId}`);
    await tx.execute(sql`update charges set state = coalesce(${info.chargeState ?? null}, state), state_reason = ${info.error},
      lease_owner = null, lease_expires_at = null, updated_at = now() where id = ${a.chargeId}`);
    await tx.execute(sql`insert into audit_log (entity_type, entity_id, to_state, reason)
      values ('payment_action', ${a.actionId}, 'failed', ${info.error})`);
  });
}

export async function releaseLease(database: Database, chargeId: number, reason?: string): Promise<void> {
  await database.rows(sql`update charges set lease_owner = null, lease_expires_at = null,
    state_reason = coalesce(${reason ?? null}, state_reason), updated_at = now() where id = ${chargeId}`);
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
    attemptId: number;
    actionId: number;
    plan: SettlePlan;
    paymentId: string;
    links: Links;
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
    const e = err as { message?: string; httpStatus?: number; status?: number; correlationId?: string };
    ctx.logger.warn(
      { chargeId: s.chargeId, err: e.message, correlationId: e.correlationId },
      'settle rejected',
    );
    await commitActionFailed(
      ctx.database,
      { actionId: s.actionId, chargeId: s.chargeId },
      {
        httpStatus: e.httpStatus ?? e.status,
        correlationId: e.correlationId,
        error: e.message ?? 'settle rejected',
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
    await releaseLease(ctx.database, s.chargeId, `settle outcome unknown: ${result.reason}`);
    return 'unknown';
  }
  await commitActionAccepted(
    ctx.database,
    {
      actionId: s.actionId,
      chargeId: s.chargeId,
      attemptId: s.attemptId,
      kind: s.plan.kind,
      amount: s.plan.amount,
    },
    result,
    { releaseLease: true },
  );
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
  const claimed = await ctx.database.rows(sql`
    with picked as (
      select c.id from charges c join mandates m on m.id = c.mandate_id
       where c.state = 'authorized' and m.settle_mode <> 'none'
         and (c.lease_expires_at is null or c.lease_expires_at < now()) ${filter}
       order by c.id limit ${opts.limit} for update of c skip locked
    )
    update charges c set lease_owner = ${ctx.workerId}, lease_expires_at = now() + make_interval(secs => ${ctx.config.billing.leaseSeconds}),
           fence = c.fence + 1
      from picked, mandates m, attempts a
     where c.id = picked.id and m.id = c.mandate_id and a.id = c.authorized_attempt_id
    returning c.id, c.amount, c.currency, c.authorized_attempt_id, m.gateway, m.settle_mode, m.settle_percent,
              a.transaction_reference, a.gateway_payment_id,
              (select pa.id from payment_actions pa where pa.charge_id = c.id and pa.kind in ('settle', 'partialSettle')
                 and pa.state = 'requested' order by pa.id desc limit 1) as pending_action_id`);
  let done = 0;
  for (const r of claimed) {
    try {
      if (await resumeOne(ctx, r)) done++;
    } catch (err) {
      // One payment's trouble must not stop the others: its lease goes, the next run retries.
      ctx.logger.error({ chargeId: num(r.id), err: (err as Error).message }, 'settlement resumption failed');
      await releaseLease(ctx.database, num(r.id), `settlement resumption failed: ${(err as Error).message}`);
    }
  }
  return done;
}

async function resumeOne(ctx: BillingContext, r: Record<string, unknown>): Promise<boolean> {
  const chargeId = num(r.id);
  const attemptId = num(r.authorized_attempt_id);
  const paymentId = String(r.gateway_payment_id);
  const gateway = String(r.gateway);
  const links = await paymentLinks(ctx.database, attemptId);
  const plan = planSettle(
    {
      settleMode: String(r.settle_mode),
      settlePercent: r.settle_percent === null ? null : num(r.settle_percent),
      amount: num(r.amount),
      currency: String(r.currency),
    },
    String(r.transaction_reference),
    links,
    paymentId,
  );
  if (!plan) return false;
  let actionId = r.pending_action_id === null ? null : num(r.pending_action_id);
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
        { releaseLease: true },
      );
      return true;
    }
    if (q.found === 'unknown') {
      await releaseLease(ctx.database, chargeId);
      return false;
    }
  } else {
    const ins = await ctx.database.rows(sql`
        insert into payment_actions (charge_id, attempt_id, kind, reference, amount, currency, link_href)
        values (${chargeId}, ${attemptId}, ${plan.kind}, ${plan.reference}, ${plan.amount}, ${plan.currency}, ${plan.linkHref})
        on conflict (reference) do update set state = payment_actions.state returning id`);
    actionId = num(ins[0]?.id);
  }
  const out = await sendSettle(ctx, { gateway, chargeId, attemptId, actionId, plan, paymentId, links });
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
  for (const r of rows) {
    try {
      const outcome = await followOne(ctx, r);
      if (outcome === 'settled') settled++;
      if (outcome === 'settle_failed') failed++;
    } catch (err) {
      ctx.logger.error({ chargeId: num(r.id), err: (err as Error).message }, 'settlement follow-up failed');
    }
  }
  return { settled, failed };
}

async function followOne(
  ctx: BillingContext,
  r: Record<string, unknown>,
): Promise<string | null | undefined> {
  const attemptId = num(r.authorized_attempt_id);
  const links = await paymentLinks(ctx.database, attemptId);
  const q = await ctx.gateway(String(r.gateway)).query({ paymentId: String(r.gateway_payment_id), links });
  if (q.found !== true) return;
  const outcome = await applyPaymentStatus(ctx.database, {
    attemptId,
    status: q.status,
    rawStatus: q.rawStatus,
    source: 'query',
    transactionReference: str(r.transaction_reference),
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
): Promise<string | null> {
  const target: Partial<Record<PaymentStatus, { to: string; from: string[] }>> = {
    settled: { to: 'settled', from: ['authorized', 'settling', 'settle_failed'] },
    settlementFailed: { to: 'settle_failed', from: ['authorized', 'settling'] },
    cancelled: { to: 'cancelled', from: ['authorized'] },
    refunded: { to: 'refunded', from: ['settling', 'settled'] },
  };
  const t = target[e.status];
  return database.db.transaction(async (tx) => {
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
    if (!t) return null;
    const moved = await database.rows(
      sql`update charges set state = ${t.to}, state_reason = ${`payment ${e.rawStatus} (${e.source})`}, updated_at = now()
           where authorized_attempt_id = ${e.attemptId} and state in (${sql.join(
             t.from.map((s) => sql`${s}`),
             sql`, `,
           )}) returning id, state`,
      tx,
    );
    for (const m of moved) {
      await tx.execute(sql`insert into audit_log (entity_type, entity_id, to_state, reason)
        values ('charge', ${num(m.id)}, ${t.to}, ${`payment ${e.rawStatus} (${e.source})`})`);
    }
    if (e.status === 'settled' || e.status === 'settlementFailed') {
      await tx.execute(sql`update payment_actions set last_event = ${e.rawStatus}
        where attempt_id = ${e.attemptId} and kind in ('settle', 'partialSettle') and state = 'accepted'`);
    }
    return moved.length > 0 ? t.to : null;
  });
}
