import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import type { attempts, charges, credentials, paymentActions } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import { CHARGE_ACTION_STATES } from '../../domain/charge-actions.ts';
import type { ChargeState } from '../../domain/lifecycle.ts';
import { ConflictError, NotFoundError } from '../../errors.ts';
import type { Intent } from '../../gateways/types.ts';
import { chargeDunning, loadCardHistory } from '../charge/claim.ts';
import type { BillingContext } from '../context.ts';
import { chargeDisputes, type DisputeView } from '../disputes/views.ts';
import { type RunReport, runBilling } from '../run/run.ts';
import { lockMandate, transitionCharge, transitionMandate } from '../sql/transitions.ts';

export interface ChargeView {
  id: number;
  mandateId: number;
  cycle: number;
  /** `cycle`, or `proration`: a one-off for a mandate change. */
  kind: string;
  /** What is charged, after creditApplied was taken off. */
  amount: number;
  creditApplied: number;
  currency: string;
  state: string;
  stateReason: string | null;
  dueAt: string;
  nextAttemptAt: string | null;
  attemptCount: number;
  settledAmount: number;
  refundedAmount: number;
  transactionReference: string | null;
  lastAttempt: {
    reference: string;
    state: string;
    refusalCode: string | null;
    refusalDescription: string | null;
    adviceCode: string | null;
    decision: string | null;
    decisionReason: string | null;
    correlationId: string | null;
  } | null;
  updatedAt: string;
}

export interface ChargeDetail extends ChargeView {
  actions: {
    id: number;
    kind: string;
    reference: string;
    amount: number | null;
    currency: string | null;
    state: string;
    lastEvent: string | null;
    error: string | null;
    createdAt: string;
  }[];
  events: { source: string; lastEvent: string; eventId: string | null; receivedAt: string }[];
  /** Worldpay's disputes of the payment (informationRequested, chargedBack), oldest first. */
  disputes: DisputeView[];
}

const chargeSelect = sql`select c.*, pa.transaction_reference as paid_reference,
    la.transaction_reference as last_reference, la.state as last_state, la.refusal_code, la.refusal_description, la.advice_code,
    la.decision, la.decision_reason, la.correlation_id
  from charges c
  left join attempts pa on pa.id = c.authorized_attempt_id
  left join lateral (select * from attempts a where a.charge_id = c.id order by a.attempt_no desc limit 1) la on true`;

/** A row of `chargeSelect`: the charge, the paid attempt's reference and the last attempt (null without one). */
type ChargeRow = RawRow<typeof charges> & {
  [K in keyof LastAttempt]: LastAttempt[K] | null;
} & { paid_reference: string | null; last_reference: string | null; last_state: string | null };
type LastAttempt = Pick<
  RawRow<typeof attempts>,
  'refusal_code' | 'refusal_description' | 'advice_code' | 'decision' | 'decision_reason' | 'correlation_id'
>;

function toChargeView(r: ChargeRow): ChargeView {
  return {
    id: r.id,
    mandateId: r.mandate_id,
    cycle: r.cycle,
    kind: r.kind,
    amount: r.amount,
    creditApplied: r.credit_applied,
    currency: r.currency,
    state: r.state,
    stateReason: r.state_reason,
    dueAt: r.due_at.toISOString(),
    nextAttemptAt: r.next_attempt_at?.toISOString() ?? null,
    attemptCount: r.attempt_count,
    settledAmount: r.settled_amount,
    refundedAmount: r.refunded_amount,
    transactionReference: r.paid_reference,
    lastAttempt:
      r.last_reference === null
        ? null
        : {
            reference: r.last_reference,
            state: String(r.last_state),
            refusalCode: r.refusal_code,
            refusalDescription: r.refusal_description,
            adviceCode: r.advice_code,
            decision: r.decision,
            decisionReason: r.decision_reason,
            correlationId: r.correlation_id,
          },
    updatedAt: r.updated_at.toISOString(),
  };
}

export const DUNNING_STATES = ['retry_scheduled', 'needs_new_credential', 'stopped', 'failed'];

export interface ChargeFilter {
  /** A charge state, or `dunning`: retry_scheduled, needs_new_credential, stopped and failed. */
  state?: string | undefined;
  /** Only charges whose last attempt was refused with this code. */
  refusalCode?: string | undefined;
  mandateId?: number | undefined;
  /** Only charges due at or after this instant. */
  dueFrom?: Date | undefined;
  /** Only charges due before this instant. */
  dueTo?: Date | undefined;
  limit?: number | undefined;
  /** Keyset pagination: charges with id > after. */
  after?: number | undefined;
}

export async function listCharges(
  database: Database,
  f: ChargeFilter = {},
): Promise<{ items: ChargeView[]; next: number | null }> {
  const where: SQL[] = [sql`true`];
  if (f.state === 'dunning') {
    where.push(
      sql`c.state in (${sql.join(
        DUNNING_STATES.map((s) => sql`${s}`),
        sql`, `,
      )})`,
    );
  } else if (f.state) where.push(sql`c.state = ${f.state}`);
  if (f.refusalCode) where.push(sql`la.refusal_code = ${f.refusalCode}`);
  if (f.mandateId !== undefined) where.push(sql`c.mandate_id = ${f.mandateId}`);
  if (f.dueFrom) where.push(sql`c.due_at >= ${f.dueFrom.toISOString()}::timestamptz`);
  if (f.dueTo) where.push(sql`c.due_at < ${f.dueTo.toISOString()}::timestamptz`);
  if (f.after !== undefined) where.push(sql`c.id > ${f.after}`);
  const limit = Math.min(Math.max(f.limit ?? 50, 1), 1000);
  const rows = await database.rows<ChargeRow>(
    sql`${chargeSelect} where ${sql.join(where, sql` and `)} order by c.id limit ${limit + 1}`,
  );
  const items = rows.slice(0, limit).map(toChargeView);
  return { items, next: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
}

export async function getCharge(database: Database, id: number): Promise<ChargeDetail> {
  const rows = await database.rows<ChargeRow>(sql`${chargeSelect} where c.id = ${id}`);
  if (!rows[0]) throw new NotFoundError('charge', id);
  const actions = await database.rows<RawRow<typeof paymentActions>>(
    sql`select * from payment_actions where charge_id = ${id} order by id`,
  );
  const events = await database.rows<{
    source: string;
    last_event: string;
    event_id: string | null;
    received_at: Date;
  }>(sql`select e.source, e.last_event, e.event_id, e.created_at as received_at
      from payment_events e join charges c on c.authorized_attempt_id = e.attempt_id where c.id = ${id} order by e.id`);
  return {
    ...toChargeView(rows[0]),
    actions: actions.map((a) => ({
      id: a.id,
      kind: a.kind,
      reference: a.reference,
      amount: a.amount,
      currency: a.currency,
      state: a.state,
      lastEvent: a.last_event,
      error: a.error,
      createdAt: a.created_at.toISOString(),
    })),
    events: events.map((e) => ({
      source: e.source,
      lastEvent: e.last_event,
      eventId: e.event_id,
      receivedAt: e.received_at.toISOString(),
    })),
    disputes: await chargeDisputes(database, id),
  };
}

/** Refusals grouped by code and decision, with the earliest next attempt: the dunning report. */
export async function dunningReport(database: Database): Promise<
  {
    code: string | null;
    adviceCode: string | null;
    decision: string | null;
    state: string;
    charges: number;
    nextAttemptAt: string | null;
  }[]
> {
  const rows = await database.rows<
    Pick<RawRow<typeof attempts>, 'refusal_code' | 'advice_code' | 'decision'> & {
      state: string;
      n: number;
      next_at: Date | null;
    }
  >(sql`
    select a.refusal_code, a.advice_code, a.decision, c.state, count(*)::int as n,
           min(c.next_attempt_at) filter (where c.state = 'retry_scheduled') as next_at
      from charges c join attempts a on a.charge_id = c.id and a.attempt_no = c.attempt_count
     where c.state in ('retry_scheduled', 'needs_new_credential', 'stopped', 'failed')
     group by 1, 2, 3, 4 order by n desc`);
  return rows.map((r) => ({
    code: r.refusal_code,
    adviceCode: r.advice_code,
    decision: r.decision,
    state: r.state,
    charges: r.n,
    nextAttemptAt: r.next_at?.toISOString() ?? null,
  }));
}

/**
 * An operator's "retry this charge now". Refused, with the reason, when an attempt's outcome
 * is still unknown (it must be reconciled first), when the card is blocked or out of its
 * scheme retry allowance, or when the charge is not waiting for a retry.
 */
export async function retryNow(ctx: BillingContext, id: number): Promise<RunReport> {
  const charge = await getCharge(ctx.database, id);
  const now = ctx.clock.now();
  if (!CHARGE_ACTION_STATES.retryNow.includes(charge.state as ChargeState)) {
    throw new ConflictError(`charge ${id} is ${charge.state}: nothing to retry`);
  }
  const open = await ctx.database.rows<{ transaction_reference: string }>(
    sql`select transaction_reference from attempts where charge_id = ${id} and state in ('sending', 'unknown')`,
  );
  if (open.length > 0) {
    throw new ConflictError(
      `charge ${id} has an attempt whose outcome is unknown (${open[0]!.transaction_reference}); reconcile it first`,
    );
  }
  const cred = await ctx.database.rows<
    Pick<RawRow<typeof credentials>, 'id' | 'status' | 'status_reason' | 'expiry_month' | 'expiry_year'> & {
      mandate_status: string;
      intent: Intent;
    }
  >(sql`select cr.id, cr.status, cr.status_reason, cr.expiry_month, cr.expiry_year,
      m.status as mandate_status, m.intent
    from charges c join mandates m on m.id = c.mandate_id join credentials cr on cr.id = m.credential_id where c.id = ${id}`);
  const c = cred[0]!;
  if (c.status !== 'active') {
    throw new ConflictError(
      `the card of charge ${id} is ${c.status}: ${c.status_reason ?? ''}; attach a new credential`,
    );
  }
  // A paused mandate stays paused: its operator resumes it first. Only a stopped one is revived.
  if (c.mandate_status !== 'active' && c.mandate_status !== 'stopped')
    throw new ConflictError(`mandate ${charge.mandateId} is ${c.mandate_status}: resume it first`);
  const credentialId = c.id;
  const history = await loadCardHistory(ctx.database, [credentialId], now);
  const check = ctx.policy.beforeSend({
    now,
    expiryMonth: c.expiry_month,
    expiryYear: c.expiry_year,
    ledger: { attempts: history.get(credentialId) ?? [], blocked: null },
    isRetry: true,
    intent: c.intent,
    firstRefusedAt: (await chargeDunning(ctx.database, id)).firstRefusedAt,
  });
  if (!check.ok) throw new ConflictError(`charge ${id} cannot be retried now: ${check.decision.reason}`);
  await ctx.database.db.transaction(async (tx) => {
    await lockMandate(ctx.database, tx, charge.mandateId);
    const reason = 'retry requested by operator';
    // Taken over from any run that claimed it: the retry below claims it afresh.
    const moved = await transitionCharge(ctx.database, tx, {
      id,
      to: 'retry_scheduled',
      from: [charge.state as ChargeState],
      orSame: true,
      takeOver: true,
      reason,
      actor: 'operator',
      set: [sql`next_attempt_at = ${now.toISOString()}::timestamptz`],
    });
    if (!moved.ok) throw new ConflictError(`charge ${id} changed meanwhile; try again`);
    if (c.mandate_status === 'stopped')
      await transitionMandate(ctx.database, tx, {
        id: charge.mandateId,
        to: 'active',
        reason,
        actor: 'operator',
      });
  });
  return runBilling(ctx, { asOf: now, trigger: 'cli', mandateId: charge.mandateId });
}
