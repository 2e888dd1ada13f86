import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import type { mandates } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import {
  cycleAtOrAfter,
  dueAt,
  type IntervalUnit,
  lastCycleDueBy,
  nextDue,
  type Schedule,
} from '../../domain/calendar.ts';
import { UNSENT_CHARGE_STATES } from '../../domain/lifecycle.ts';
import { auditCreditedCharges, auditEndedMandates } from '../sql/audit.ts';
import { advanceMandates, type MandateAdvance, takeOverWaitingCharges } from '../sql/transitions.ts';

export interface MandateCalendarRow {
  id: number;
  nextCycle: number;
  nextDueAt: Date;
  amount: number;
  currency: string;
  intervalUnit: IntervalUnit | null;
  intervalCount: number | null;
  timezone: string;
  anchorAt: Date;
  anchorCycle: number;
  endAt: Date | null;
  instalmentsTotal: number | null;
  lastInstalmentAmount: number | null;
  cancelAtPeriodEnd: boolean;
  backfillThroughCycle: number | null;
  creditBalance: number;
  /** The earliest scheduled change's instant: cycles due from then on wait for it. */
  pendingChangeAt: Date | null;
}

export function scheduleOf(m: {
  intervalUnit: string | null;
  intervalCount: number | null;
  timezone: string;
  anchorAt: Date;
  anchorCycle: number;
  endAt: Date | null;
  instalmentsTotal: number | null;
}): Schedule {
  return {
    interval:
      m.intervalUnit && m.intervalCount
        ? { unit: m.intervalUnit as IntervalUnit, count: m.intervalCount }
        : null,
    timezone: m.timezone,
    anchorAt: m.anchorAt,
    anchorCycle: m.anchorCycle,
    endAt: m.endAt,
    instalmentsTotal: m.instalmentsTotal,
  };
}

/** The shortest a calendar interval can be: a local day across a DST change is 23 hours. */
const SHORTEST_MS: Readonly<Record<IntervalUnit, number>> = {
  day: 23 * 3_600_000,
  week: 7 * 86_400_000 - 3_600_000,
  month: 28 * 86_400_000 - 3_600_000,
  year: 365 * 86_400_000 - 3_600_000,
};

/**
 * Whether more than `cycles` cycles can be due at `asOf` counting from one due at `nextDueAt`:
 * cycle next+cycles falls due no earlier than that many shortest intervals later. The common
 * case (a mandate one cycle due) is settled here, with no calendar arithmetic per mandate.
 */
function mayBeBehind(
  nextDueAt: Date,
  interval: { unit: IntervalUnit; count: number },
  cycles: number,
  asOf: Date,
): boolean {
  return asOf.getTime() >= nextDueAt.getTime() + cycles * interval.count * SHORTEST_MS[interval.unit];
}

/** A cycle's amount less the credit it takes: never below zero; the rest of the credit carries. */
export function applyCredit(amount: number, credit: number): { charge: number; creditUsed: number } {
  const creditUsed = Math.min(Math.max(credit, 0), amount);
  return { charge: amount - creditUsed, creditUsed };
}

/** The amount of one cycle: the last instalment carries the remainder when there is one. */
export function cycleAmount(
  m: Pick<MandateCalendarRow, 'amount' | 'instalmentsTotal' | 'lastInstalmentAmount'>,
  cycle: number,
): number {
  if (m.instalmentsTotal !== null && m.lastInstalmentAmount !== null && cycle === m.instalmentsTotal - 1) {
    return m.lastInstalmentAmount;
  }
  return m.amount;
}

/** A mandate's calendar columns as raw SQL reads them. */
export type CalendarRow = Pick<
  RawRow<typeof mandates>,
  | 'interval_unit'
  | 'interval_count'
  | 'timezone'
  | 'anchor_at'
  | 'anchor_cycle'
  | 'end_at'
  | 'instalments_total'
>;

/** A mandate row's calendar columns, as scheduleOf takes them: the one reader of those columns. */
export function calendarColumns(r: CalendarRow) {
  return {
    intervalUnit: r.interval_unit as IntervalUnit | null,
    intervalCount: r.interval_count,
    timezone: r.timezone,
    anchorAt: r.anchor_at,
    anchorCycle: r.anchor_cycle,
    endAt: r.end_at,
    instalmentsTotal: r.instalments_total,
  };
}

/** A row of `selectColumns`: a due mandate (next_due_at, so not null). */
type DueMandateRow = CalendarRow &
  Pick<
    RawRow<typeof mandates>,
    | 'id'
    | 'next_cycle'
    | 'amount'
    | 'currency'
    | 'last_instalment_amount'
    | 'cancel_at_period_end'
    | 'backfill_through_cycle'
    | 'credit_balance'
  > & { next_due_at: Date; pending_change_at: Date | null };

function toRow(r: DueMandateRow): MandateCalendarRow {
  return {
    id: r.id,
    nextCycle: r.next_cycle,
    nextDueAt: r.next_due_at,
    amount: r.amount,
    currency: r.currency,
    ...calendarColumns(r),
    lastInstalmentAmount: r.last_instalment_amount,
    cancelAtPeriodEnd: r.cancel_at_period_end,
    backfillThroughCycle: r.backfill_through_cycle,
    creditBalance: r.credit_balance,
    pendingChangeAt: r.pending_change_at,
  };
}

const selectColumns = sql`id, next_cycle, next_due_at, amount, currency, interval_unit, interval_count, timezone,
  anchor_at, anchor_cycle, end_at, instalments_total, last_instalment_amount, cancel_at_period_end,
  backfill_through_cycle, credit_balance,
  (select min(c.effective_at) from mandate_changes c where c.mandate_id = mandates.id and c.state = 'scheduled') as pending_change_at`;

/**
 * Turn due cycles into charge rows. Each batch is one transaction: lock due mandates
 * (SKIP LOCKED, so concurrent runs split the work), insert one charge per (mandate, cycle)
 * (the unique key makes a repeat a no-op), and advance each mandate to its next cycle by the
 * calendar in the same commit. A mandate several cycles behind gets one charge per cycle, one
 * cycle per pass, but at most `maxCatchUp` of them: older missed cycles (downtime, a long
 * outage) are recorded as `skipped` charges with the reason and never charged automatically.
 * Cycles a backfilled mandate was created with are exempt. A cycle due at or after a scheduled
 * change's instant waits until the change is applied (`applyDueChanges`): it is billed on the
 * new terms, the cycles before it on the old ones.
 */
export async function materializeDueCharges(
  database: Database,
  asOf: Date,
  opts: { batchSize: number; mandateId?: number | undefined; maxCatchUp?: number },
): Promise<{ created: number; completed: number; cancelled: number; skipped: number }> {
  const totals = { created: 0, completed: 0, cancelled: 0, skipped: 0 };
  const maxCatchUp = opts.maxCatchUp ?? Number.POSITIVE_INFINITY;
  const filter: SQL = opts.mandateId === undefined ? sql`` : sql`and id = ${opts.mandateId}`;
  for (;;) {
    const batch = await database.db.transaction(async (tx) => {
      const rows = (
        await database.rows<DueMandateRow>(
          sql`select ${selectColumns} from mandates
               where status = 'active' and next_due_at <= ${asOf.toISOString()}::timestamptz ${filter}
                 and not exists (select 1 from mandate_changes c where c.mandate_id = mandates.id
                                   and c.state = 'scheduled' and c.effective_at <= mandates.next_due_at)
               order by next_due_at, id limit ${opts.batchSize} for update skip locked`,
          tx,
          { prepare: true },
        )
      ).map(toRow);
      if (rows.length === 0) return null;
      // The batch's new charges and its mandates' next cycles are bound as JSON arrays: the two
      // statements' texts are the same at every batch size, prepared once per connection (as
      // VALUES lists they were 3,500 parameters a batch, parsed and planned at every batch).
      const chargeValues: Record<string, unknown>[] = [];
      const skippedValues: SQL[] = [];
      const mandateValues: MandateAdvance[] = [];
      const credited: { mandateId: number; cycle: number }[] = [];
      const counts = { created: 0, completed: 0, cancelled: 0, skipped: 0 };
      for (const m of rows) {
        if (m.cancelAtPeriodEnd) {
          mandateValues.push({
            id: m.id,
            next_cycle: m.nextCycle,
            next_due_at: null,
            status: 'cancelled',
            credit_balance: m.creditBalance,
          });
          counts.cancelled++;
          continue;
        }
        let cycle = m.nextCycle;
        const schedule = scheduleOf(m);
        if (
          schedule.interval &&
          Number.isFinite(maxCatchUp) &&
          cycle > (m.backfillThroughCycle ?? -1) &&
          mayBeBehind(m.nextDueAt, schedule.interval, maxCatchUp, asOf)
        ) {
          const last = lastCycleDueBy(schedule, asOf, cycle);
          if (last !== null && last - cycle + 1 > maxCatchUp) {
            // Keep the newest maxCatchUp cycles; the ones before are skipped, with the reason. A
            // change scheduled before the first kept one is applied first: skip up to it only.
            let firstKept = last - maxCatchUp + 1;
            const pending = m.pendingChangeAt;
            const waits = pending !== null && dueAt(schedule, firstKept) >= pending;
            if (waits) firstKept = cycleAtOrAfter(schedule, pending, cycle) ?? firstKept;
            const reason = `missed: ${firstKept - cycle} cycle(s) more than REBILL_MAX_CATCH_UP_CYCLES (${maxCatchUp}) behind`;
            for (let k = cycle; k < firstKept; k++)
              skippedValues.push(
                sql`(${m.id}::bigint, ${k}::int, ${cycleAmount(m, k)}::bigint, ${m.currency}, ${dueAt(schedule, k).toISOString()}::timestamptz, ${reason})`,
              );
            counts.skipped += firstKept - cycle;
            cycle = firstKept;
            m.nextDueAt = dueAt(schedule, cycle);
            if (waits) {
              mandateValues.push({
                id: m.id,
                next_cycle: cycle,
                next_due_at: m.nextDueAt.toISOString(),
                status: 'active',
                credit_balance: m.creditBalance,
              });
              continue;
            }
          }
        }
        // A credit (from a mandate change) is taken off this charge first; what is left carries
        // forward. A charge the credit covers whole is recorded, not sent.
        const { charge, creditUsed } = applyCredit(cycleAmount(m, cycle), m.creditBalance);
        m.creditBalance -= creditUsed;
        if (creditUsed > 0) credited.push({ mandateId: m.id, cycle });
        chargeValues.push({
          mandate_id: m.id,
          cycle,
          amount: charge,
          currency: m.currency,
          due_at: m.nextDueAt.toISOString(),
          credit_applied: creditUsed,
          state: charge === 0 ? 'skipped' : 'pending',
        });
        const next = schedule.interval ? nextDue(schedule, cycle + 1) : null;
        const status = next === null ? 'completed' : 'active';
        if (next === null) counts.completed++;
        mandateValues.push({
          id: m.id,
          next_cycle: cycle + 1,
          next_due_at: next?.toISOString() ?? null,
          status,
          credit_balance: m.creditBalance,
        });
        counts.created++;
      }
      if (skippedValues.length > 0) {
        await tx.execute(sql`insert into charges (mandate_id, cycle, amount, currency, due_at, next_attempt_at, state, state_reason)
          select v.mandate_id, v.cycle, v.amount, v.currency, v.due_at, null, 'skipped', v.reason
            from (values ${sql.join(skippedValues, sql`, `)}) as v(mandate_id, cycle, amount, currency, due_at, reason)
          on conflict (mandate_id, cycle) do nothing`);
      }
      if (chargeValues.length > 0) {
        await database.rows(
          sql`insert into charges (mandate_id, cycle, amount, currency, due_at, next_attempt_at, credit_applied, state, state_reason)
          select v.mandate_id, v.cycle, v.amount, v.currency, v.due_at,
                 case when v.state = 'skipped' then null else v.due_at end, v.credit_applied, v.state,
                 case when v.state = 'skipped' then 'covered by credit' end
            from jsonb_to_recordset(${JSON.stringify(chargeValues)}::jsonb) as v(mandate_id bigint, cycle int, amount bigint,
                 currency text, due_at timestamptz, credit_applied bigint, state text)
          on conflict (mandate_id, cycle) do nothing`,
          tx,
          { prepare: true },
        );
        if (credited.length > 0) await auditCreditedCharges(tx, credited);
      }
      await advanceMandates(database, tx, mandateValues);
      const ended = rows.filter((m) => m.cancelAtPeriodEnd || !mandateValues.length);
      if (counts.completed + counts.cancelled > 0 || ended.length > 0) {
        await auditEndedMandates(
          tx,
          rows.map((m) => m.id),
        );
      }
      // The cancel takes effect now: like an operator's cancel, it ends what was not sent yet
      // (a retry of the last period in dunning), which no run would ever pick up again.
      for (const m of rows.filter((r) => r.cancelAtPeriodEnd))
        await takeOverWaitingCharges(database, tx, m.id, {
          to: 'cancelled',
          from: UNSENT_CHARGE_STATES,
          reason: 'mandate cancelled at period end',
          actor: 'system',
        });
      return counts;
    });
    if (batch === null) break;
    totals.created += batch.created;
    totals.completed += batch.completed;
    totals.cancelled += batch.cancelled;
    totals.skipped += batch.skipped;
  }
  return totals;
}

/** Queue a charge of an `unscheduled` mandate (or an extra one): the next cycle, due now. */
export async function queueCharge(
  database: Database,
  mandateId: number,
  opts: { amount?: number | undefined; dueAt: Date },
): Promise<{ chargeId: number; cycle: number }> {
  const rows = await database.rows<{ id: number; cycle: number }>(sql`
    with m as (
      update mandates set next_cycle = next_cycle + 1, updated_at = now()
       where id = ${mandateId} and status = 'active' and intent = 'unscheduled'
      returning id, next_cycle - 1 as cycle, amount, currency
    )
    insert into charges (mandate_id, cycle, amount, currency, due_at, next_attempt_at)
    select id, cycle, coalesce(${opts.amount ?? null}::bigint, amount), currency, ${opts.dueAt.toISOString()}::timestamptz,
           ${opts.dueAt.toISOString()}::timestamptz from m
    returning id, cycle`);
  const r = rows[0];
  if (!r) return { chargeId: 0, cycle: -1 };
  return { chargeId: r.id, cycle: r.cycle };
}
