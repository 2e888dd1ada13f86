import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { date, dateOrNull, num, numOrNull, str } from '../../db/values.ts';
import type { ChargeState } from '../../domain/lifecycle.ts';
import { ConflictError, NotFoundError } from '../../errors.ts';
import type { Intent } from '../../gateways/types.ts';
import { chargeDunning, loadCardHistory } from '../charge/claim.ts';
import type { BillingContext } from '../context.ts';
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
}

const chargeSelect = sql`select c.*, pa.transaction_reference as paid_reference,
    la.transaction_reference as last_reference, la.state as last_state, la.refusal_code, la.refusal_description, la.advice_code,
    la.decision, la.decision_reason, la.correlation_id
  from charges c
  left join attempts pa on pa.id = c.authorized_attempt_id
  left join lateral (select * from attempts a where a.charge_id = c.id order by a.attempt_no desc limit 1) la on true`;

function toChargeView(r: Record<string, unknown>): ChargeView {
  return {
    id: num(r.id),
    mandateId: num(r.mandate_id),
    cycle: num(r.cycle),
    kind: String(r.kind ?? 'cycle'),
    amount: num(r.amount),
    creditApplied: num(r.credit_applied ?? 0),
    currency: String(r.currency),
    state: String(r.state),
    stateReason: str(r.state_reason),
    dueAt: date(r.due_at).toISOString(),
    nextAttemptAt: dateOrNull(r.next_attempt_at)?.toISOString() ?? null,
    attemptCount: num(r.attempt_count),
    settledAmount: num(r.settled_amount),
    refundedAmount: num(r.refunded_amount),
    transactionReference: str(r.paid_reference),
    lastAttempt:
      r.last_reference === null || r.last_reference === undefined
        ? null
        : {
            reference: String(r.last_reference),
            state: String(r.last_state),
            refusalCode: str(r.refusal_code),
            refusalDescription: str(r.refusal_description),
            adviceCode: str(r.advice_code),
            decision: str(r.decision),
            decisionReason: str(r.decision_reason),
            correlationId: str(r.correlation_id),
          },
    updatedAt: date(r.updated_at).toISOString(),
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
  const rows = await database.rows(
    sql`${chargeSelect} where ${sql.join(where, sql` and `)} order by c.id limit ${limit + 1}`,
  );
  const items = rows.slice(0, limit).map(toChargeView);
  return { items, next: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
}

export async function getCharge(database: Database, id: number): Promise<ChargeDetail> {
  const rows = await database.rows(sql`${chargeSelect} where c.id = ${id}`);
  if (!rows[0]) throw new NotFoundError('charge', id);
  const actions = await database.rows(sql`select * from payment_actions where charge_id = ${id} order by id`);
  const events =
    await database.rows(sql`select e.source, e.last_event, e.event_id, e.created_at as received_at
      from payment_events e join charges c on c.authorized_attempt_id = e.attempt_id where c.id = ${id} order by e.id`);
  return {
    ...toChargeView(rows[0]),
    actions: actions.map((a) => ({
      id: num(a.id),
      kind: String(a.kind),
      reference: String(a.reference),
      amount: numOrNull(a.amount),
      currency: str(a.currency),
      state: String(a.state),
      lastEvent: str(a.last_event),
      error: str(a.error),
      createdAt: date(a.created_at).toISOString(),
    })),
    events: events.map((e) => ({
      source: String(e.source),
      lastEvent: String(e.last_event),
      eventId: str(e.event_id),
      receivedAt: date(e.received_at).toISOString(),
    })),
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
  const rows = await database.rows(sql`
    select a.refusal_code, a.advice_code, a.decision, c.state, count(*)::int as n,
           min(c.next_attempt_at) filter (where c.state = 'retry_scheduled') as next_at
      from charges c join attempts a on a.charge_id = c.id and a.attempt_no = c.attempt_count
     where c.state in ('retry_scheduled', 'needs_new_credential', 'stopped', 'failed')
     group by 1, 2, 3, 4 order by n desc`);
  return rows.map((r) => ({
    code: str(r.refusal_code),
    adviceCode: str(r.advice_code),
    decision: str(r.decision),
    state: String(r.state),
    charges: num(r.n),
    nextAttemptAt: dateOrNull(r.next_at)?.toISOString() ?? null,
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
  if (!RETRYABLE.includes(charge.state as ChargeState)) {
    throw new ConflictError(`charge ${id} is ${charge.state}: nothing to retry`);
  }
  const open = await ctx.database.rows(
    sql`select transaction_reference from attempts where charge_id = ${id} and state in ('sending', 'unknown')`,
  );
  if (open.length > 0) {
    throw new ConflictError(
      `charge ${id} has an attempt whose outcome is unknown (${String(open[0]?.transaction_reference)}); reconcile it first`,
    );
  }
  const cred =
    await ctx.database.rows(sql`select cr.id, cr.status, cr.status_reason, cr.expiry_month, cr.expiry_year,
      m.status as mandate_status, m.intent
    from charges c join mandates m on m.id = c.mandate_id join credentials cr on cr.id = m.credential_id where c.id = ${id}`);
  const c = cred[0]!;
  if (c.status !== 'active') {
    throw new ConflictError(
      `the card of charge ${id} is ${String(c.status)}: ${String(c.status_reason ?? '')}; attach a new credential`,
    );
  }
  // A paused mandate stays paused: its operator resumes it first. Only a stopped one is revived.
  if (c.mandate_status !== 'active' && c.mandate_status !== 'stopped')
    throw new ConflictError(`mandate ${charge.mandateId} is ${String(c.mandate_status)}: resume it first`);
  const credentialId = num(c.id);
  const history = await loadCardHistory(ctx.database, [credentialId], now);
  const check = ctx.policy.beforeSend({
    now,
    expiryMonth: numOrNull(c.expiry_month),
    expiryYear: numOrNull(c.expiry_year),
    ledger: { attempts: history.get(credentialId) ?? [], blocked: null },
    isRetry: true,
    intent: String(c.intent) as Intent,
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

/** Charges an operator may send again now. */
const RETRYABLE: readonly ChargeState[] = ['retry_scheduled', 'stopped', 'needs_new_credential', 'pending'];
