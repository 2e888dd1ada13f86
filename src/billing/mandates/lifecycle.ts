import { sql } from 'drizzle-orm';
import type { Tx } from '../../db/client.ts';
import { cycleAtOrAfter, dueAt, type Schedule } from '../../domain/calendar.ts';
import {
  type ChargeState,
  canMove,
  type MandateStatus,
  mandateMachine,
  UNSENT_CHARGE_STATES,
} from '../../domain/lifecycle.ts';
import { guardMoney } from '../../domain/money.ts';
import { ConflictError } from '../../errors.ts';
import { appendEvent } from '../../events/append.ts';
import { noteHold } from '../charge/holds.ts';
import type { BillingContext } from '../context.ts';
import { takeOverWaitingCharges, transitionMandate, writeAudit } from '../sql/transitions.ts';
import { assertCredentialUsable, upsertCredential } from './credentials.ts';
import { type CalendarRow, calendarColumns, queueCharge as queue, scheduleOf } from './materialize.ts';
import { credentialInputSchema, parseInput } from './schemas.ts';
import { getMandate, type MandateView } from './views.ts';

/**
 * An operator's change of a mandate's status, through the door: the table decides whether the
 * move is allowed, and every charge still waiting to be sent is taken over (its fence bumped,
 * its lease cleared) in the same transaction, so a run that claimed one cannot write it ahead
 * or send it afterwards. `charges` may also move those charges (cancel ends them).
 */
async function setStatus(
  ctx: BillingContext,
  id: number,
  to: MandateStatus,
  reason: string,
  extra: (tx: Tx, m: MandateView) => Promise<void> = async () => {},
  charges: { to?: ChargeState; from?: readonly ChargeState[] } = {},
): Promise<MandateView> {
  const m = await getMandate(ctx.database, id);
  if (m.status === to) return m;
  if (!canMove(mandateMachine, m.status as MandateStatus, to)) {
    throw new ConflictError(`mandate ${id} is ${m.status} and cannot become ${to}`);
  }
  await ctx.database.db.transaction(async (tx) => {
    const moved = await transitionMandate(ctx.database, tx, {
      id,
      to,
      from: [m.status as MandateStatus],
      reason,
      actor: 'operator',
    });
    if (!moved.ok) throw new ConflictError(`mandate ${id} changed meanwhile; try again`);
    await takeOverWaitingCharges(ctx.database, tx, id, { ...charges, reason, actor: 'operator' });
    await extra(tx, m);
  });
  // This process's senders hear of it now; others when the database delivers the notification.
  await noteHold(ctx.database, id, to);
  return getMandate(ctx.database, id);
}

export function pauseMandate(
  ctx: BillingContext,
  id: number,
  reason = 'paused by operator',
): Promise<MandateView> {
  return setStatus(ctx, id, 'paused', reason);
}

/**
 * Resume: cycles that fell due while paused are skipped, not charged; billing continues with
 * the first cycle due from now on.
 */
export function resumeMandate(ctx: BillingContext, id: number): Promise<MandateView> {
  return setStatus(ctx, id, 'active', 'resumed by operator', async (tx, m) => {
    await reschedule(ctx, tx, m);
  });
}

export async function reschedule(ctx: BillingContext, tx: Tx, m: MandateView): Promise<void> {
  if (!m.interval || m.nextDueAt === null) return;
  const rows = await ctx.database.rows<CalendarRow>(
    sql`select interval_unit, interval_count, timezone, anchor_at, anchor_cycle, end_at, instalments_total
          from mandates where id = ${m.id}`,
    tx,
  );
  const schedule: Schedule = scheduleOf(calendarColumns(rows[0]!));
  const now = ctx.clock.now();
  if (new Date(m.nextDueAt) >= now) return;
  const cycle = m.intent === 'instalment' ? m.nextCycle : cycleAtOrAfter(schedule, now, m.nextCycle);
  if (cycle === null) {
    await transitionMandate(ctx.database, tx, {
      id: m.id,
      to: 'completed',
      reason: 'schedule ended while paused',
      actor: 'operator',
      set: [sql`next_due_at = null`],
    });
    return;
  }
  // Instalment plans keep every instalment: the missed ones become due now, in order.
  const next = m.intent === 'instalment' ? new Date(m.nextDueAt) : dueAt(schedule, cycle);
  if (cycle > m.nextCycle) {
    // The cycles that fell due while it was held are recorded, not charged, as catch-up's are.
    const reason = `skipped: the mandate was ${m.status.replaceAll('_', ' ')} when it fell due`;
    const skipped = [];
    for (let k = m.nextCycle; k < cycle; k++)
      skipped.push(
        sql`(${m.id}::bigint, ${k}::int, ${m.amount}::bigint, ${m.currency}, ${dueAt(schedule, k).toISOString()}::timestamptz, ${reason})`,
      );
    await tx.execute(sql`insert into charges (mandate_id, cycle, amount, currency, due_at, next_attempt_at, state, state_reason)
      select v.mandate_id, v.cycle, v.amount, v.currency, v.due_at, null, 'skipped', v.reason
        from (values ${sql.join(skipped, sql`, `)}) as v(mandate_id, cycle, amount, currency, due_at, reason)
      on conflict (mandate_id, cycle) do nothing`);
  }
  await tx.execute(
    sql`update mandates set next_cycle = ${cycle}, next_due_at = ${next.toISOString()}::timestamptz where id = ${m.id}`,
  );
}

/** Cancel now (open charges are cancelled too) or at the end of the current period. */
export async function cancelMandate(
  ctx: BillingContext,
  id: number,
  opts: { atPeriodEnd?: boolean; reason?: string } = {},
): Promise<MandateView> {
  if (opts.atPeriodEnd) {
    const m = await getMandate(ctx.database, id);
    if (m.status === 'cancelled' || m.status === 'completed')
      throw new ConflictError(`mandate ${id} is ${m.status}`);
    await ctx.database.db.transaction(async (tx) => {
      await tx.execute(
        sql`update mandates set cancel_at_period_end = true, updated_at = now() where id = ${id}`,
      );
      await writeAudit(tx, 'mandate', id, m.status, m.status, 'cancel at period end requested');
    });
    return getMandate(ctx.database, id);
  }
  return setStatus(
    ctx,
    id,
    'cancelled',
    opts.reason ?? 'cancelled by operator',
    async (tx) => {
      await tx.execute(sql`update mandates set next_due_at = null where id = ${id}`);
    },
    { to: 'cancelled', from: UNSENT_CHARGE_STATES },
  );
}

/**
 * Undo a cancel scheduled for the end of the period: the mandate renews as before. Refused when
 * none is scheduled, or the mandate has ended meanwhile (its period ended: too late).
 */
export async function undoCancelAtPeriodEnd(ctx: BillingContext, id: number): Promise<MandateView> {
  const m = await getMandate(ctx.database, id);
  if (m.status === 'cancelled' || m.status === 'completed')
    throw new ConflictError(`mandate ${id} is ${m.status}: too late to keep it`);
  if (!m.cancelAtPeriodEnd) throw new ConflictError(`mandate ${id} has no cancel scheduled`);
  await ctx.database.db.transaction(async (tx) => {
    // Only while still scheduled: a run that ended it meanwhile wins, and nothing is written.
    const kept = await ctx.database.rows<{ id: number }>(
      sql`update mandates set cancel_at_period_end = false, updated_at = now()
           where id = ${id} and cancel_at_period_end and status not in ('cancelled', 'completed') returning id`,
      tx,
    );
    if (kept.length === 0) throw new ConflictError(`mandate ${id} changed meanwhile; look again`);
    await writeAudit(tx, 'mandate', id, m.status, m.status, 'cancel at period end undone');
  });
  return getMandate(ctx.database, id);
}

/**
 * New card details for a mandate (after a refusal asked for them, or any time): a new
 * credential, the mandate moved onto it and active again, and its charges waiting for a
 * credential or stopped scheduled for a retry now.
 */
export async function attachCredential(ctx: BillingContext, id: number, raw: unknown): Promise<MandateView> {
  // Errors name `credential.<field>`, as creating a mandate does.
  const credential = parseInput(credentialInputSchema, raw, 'credential');
  assertCredentialUsable(ctx, credential, ctx.clock.now());
  const m = await getMandate(ctx.database, id);
  if (m.status === 'cancelled' || m.status === 'completed')
    throw new ConflictError(`mandate ${id} is ${m.status}`);
  const now = ctx.clock.now();
  await ctx.database.db.transaction(async (tx) => {
    const cu = await ctx.database.rows<{ customer_id: number }>(
      sql`select customer_id from mandates where id = ${id}`,
      tx,
    );
    const credentialId = await upsertCredential(ctx, tx, cu[0]!.customer_id, m.gateway, credential);
    if (credentialId === m.credential.id)
      throw new ConflictError('that is the credential the mandate already uses');
    const reason = `credential ${credentialId} attached`;
    await tx.execute(
      sql`update mandates set credential_id = ${credentialId}, updated_at = now() where id = ${id}`,
    );
    await appendEvent(ctx.database, tx, {
      type: 'credential.updated',
      mandateId: id,
      data: sql`jsonb_build_object('credential', rebill_mandate_json(${id}::bigint)->'credential', 'mandateId', ${id}::bigint,
        'reason', ${reason}::text, 'previous', jsonb_build_object('credentialId', ${m.credential.id}::bigint))`,
    });
    if (m.status !== 'active' && m.status !== 'paused') {
      await transitionMandate(ctx.database, tx, { id, to: 'active', reason, actor: 'operator' });
    } else {
      await writeAudit(tx, 'mandate', id, m.status, m.status, reason);
    }
    // Charges claimed on the old card are taken back; those waiting for a card retry now.
    await takeOverWaitingCharges(ctx.database, tx, id, { reason, actor: 'operator' });
    await takeOverWaitingCharges(ctx.database, tx, id, {
      from: ['needs_new_credential', 'stopped'],
      to: 'retry_scheduled',
      reason: 'new credential attached',
      actor: 'operator',
      set: [sql`next_attempt_at = ${now.toISOString()}::timestamptz`],
    });
    if (m.status === 'needs_new_credential' || m.status === 'stopped') await reschedule(ctx, tx, m);
  });
  return getMandate(ctx.database, id);
}

/** Queue a charge on an unscheduled mandate, due at once. */
export async function queueCharge(
  ctx: BillingContext,
  id: number,
  opts: { amount?: number | undefined } = {},
): Promise<{ chargeId: number; cycle: number }> {
  const m = await getMandate(ctx.database, id);
  if (m.intent !== 'unscheduled')
    throw new ConflictError(`mandate ${id} is ${m.intent}; only unscheduled mandates take queued charges`);
  if (m.status !== 'active') throw new ConflictError(`mandate ${id} is ${m.status}`);
  guardMoney(opts.amount ?? m.amount, m.currency, ctx.config.billing.maxAmount);
  const out = await queue(ctx.database, id, { amount: opts.amount, dueAt: ctx.clock.now() });
  if (out.chargeId === 0) throw new ConflictError(`mandate ${id} could not take a charge`);
  return out;
}
