import { type SQL, sql } from 'drizzle-orm';
import type { charges, mandates } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import { lastCycleDueBy, nextDue } from '../../domain/calendar.ts';
import { applyChange, type Plan, type Proration, scheduleOfPlan } from '../../domain/mandate-change.ts';
import { ValidationError } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { changeOf, planOf } from './apply-change.ts';
import { applyCredit, cycleAmount } from './materialize.ts';

/**
 * What the calendar will charge, predicted by the same rules the billing run applies: every
 * cycle (not only the next), scheduled changes at their instants (through the same pure
 * `applyChange`, prorated one-offs included), instalment remainders, ends, cancel at period end
 * (no further charge), and credits taken off. It reads and never writes. Mandates are read in
 * keyset pages, so a forecast over a million mandates holds one page at a time.
 */
export interface PlannedCharge {
  mandateId: number;
  customerRef: string;
  /** `cycle`, or `proration` for a one-off of a scheduled change. */
  kind: 'cycle' | 'proration';
  cycle: number | null;
  dueAt: string;
  amount: number;
  creditApplied: number;
  currency: string;
}

interface MandateRow {
  id: number;
  customerRef: string;
  currency: string;
  cancelAtPeriodEnd: boolean;
  plan: Plan;
  changes: { effectiveAt: Date; changes: Record<string, unknown>; proration: Proration }[];
}

const PAGE = 500;

async function* activeMandates(
  ctx: BillingContext,
  f: { mandateId?: number | undefined; currency?: string | undefined; dueBefore: Date },
): AsyncGenerator<MandateRow> {
  let after = 0;
  for (;;) {
    const where: SQL[] = [
      sql`m.status = 'active'`,
      sql`m.id > ${after}`,
      // due in the window, or with a change scheduled in it (a prorated one-off, a new anchor)
      sql`((m.next_due_at is not null and m.next_due_at < ${f.dueBefore.toISOString()}::timestamptz)
            or exists (select 1 from mandate_changes c where c.mandate_id = m.id and c.state = 'scheduled'
                        and c.effective_at < ${f.dueBefore.toISOString()}::timestamptz))`,
    ];
    if (f.mandateId !== undefined) where.push(sql`m.id = ${f.mandateId}`);
    if (f.currency !== undefined) where.push(sql`m.currency = ${f.currency}`);
    const rows = await ctx.database.rows<
      RawRow<typeof mandates> & {
        customer_ref: string;
        scheduled: { effectiveAt: string; changes: Record<string, unknown>; proration: Proration }[];
      }
    >(
      sql`select m.*, cu.ref as customer_ref,
            (select coalesce(jsonb_agg(jsonb_build_object('effectiveAt', c.effective_at, 'changes', c.changes,
                     'proration', c.proration) order by c.effective_at, c.id), '[]'::jsonb)
               from mandate_changes c where c.mandate_id = m.id and c.state = 'scheduled') as scheduled
          from mandates m join customers cu on cu.id = m.customer_id
         where ${sql.join(where, sql` and `)} order by m.id limit ${PAGE}`,
    );
    for (const r of rows) {
      yield {
        id: r.id,
        customerRef: r.customer_ref,
        currency: r.currency,
        cancelAtPeriodEnd: r.cancel_at_period_end,
        plan: planOf(r),
        changes: r.scheduled.map((c) => ({ ...c, effectiveAt: new Date(c.effectiveAt) })),
      };
    }
    if (rows.length < PAGE) return;
    after = rows[rows.length - 1]!.id;
  }
}

/**
 * One mandate's charges due in `[from, to)`. `catchUpAsOf`: as a run at that instant would
 * create them (at most `maxCatchUp` of the cycles due by then, the rest skipped).
 */
function* simulate(
  m: MandateRow,
  from: Date,
  to: Date,
  opts: { catchUpAsOf?: Date; maxCatchUp?: number },
): Generator<PlannedCharge> {
  if (m.cancelAtPeriodEnd) return; // cancelled when its next cycle falls due, not charged
  let plan = m.plan;
  const changes = [...m.changes];
  const base = { mandateId: m.id, customerRef: m.customerRef, currency: m.currency };
  if (opts.catchUpAsOf && opts.maxCatchUp !== undefined && plan.interval && plan.nextDueAt) {
    const last = lastCycleDueBy(scheduleOfPlan(plan), opts.catchUpAsOf, plan.nextCycle);
    if (last !== null && last - plan.nextCycle + 1 > opts.maxCatchUp) {
      const first = last - opts.maxCatchUp + 1;
      plan = { ...plan, nextCycle: first, nextDueAt: nextDue(scheduleOfPlan(plan), first) };
    }
  }
  for (let guard = 0; guard < 100_000; guard++) {
    // Changes effective by the next cycle are applied before it, as the run does.
    while (changes[0] && plan.nextDueAt && changes[0].effectiveAt.getTime() <= plan.nextDueAt.getTime()) {
      const c = changes.shift()!;
      if (c.effectiveAt.getTime() >= to.getTime()) {
        changes.length = 0;
        break;
      }
      const applied = applyChange(plan, changeOf(c.changes), c.effectiveAt, c.proration);
      plan = applied.plan;
      if (applied.oneOff > 0 && c.effectiveAt.getTime() >= from.getTime())
        yield {
          ...base,
          kind: 'proration',
          cycle: null,
          dueAt: c.effectiveAt.toISOString(),
          amount: applied.oneOff,
          creditApplied: 0,
        };
    }
    const due = plan.nextDueAt;
    if (!due || due.getTime() >= to.getTime()) return;
    const cycle = plan.nextCycle;
    const { charge, creditUsed } = applyCredit(cycleAmount(plan, cycle), plan.credit);
    if (due.getTime() >= from.getTime() && charge > 0)
      yield {
        ...base,
        kind: 'cycle',
        cycle,
        dueAt: due.toISOString(),
        amount: charge,
        creditApplied: creditUsed,
      };
    plan = {
      ...plan,
      credit: plan.credit - creditUsed,
      nextCycle: cycle + 1,
      nextDueAt: plan.interval ? nextDue(scheduleOfPlan(plan), cycle + 1) : null,
    };
  }
}

/** Every calendar charge due in `[from, to)`, mandate by mandate, streamed. */
export async function* plannedCharges(
  ctx: BillingContext,
  f: {
    from: Date;
    to: Date;
    mandateId?: number | undefined;
    currency?: string | undefined;
    catchUpAsOf?: Date;
    maxCatchUp?: number;
  },
): AsyncGenerator<PlannedCharge> {
  for await (const m of activeMandates(ctx, {
    mandateId: f.mandateId,
    currency: f.currency,
    dueBefore: f.to,
  }))
    yield* simulate(m, f.from, f.to, f);
}

export type Bucket = 'day' | 'week' | 'month';

/** The UTC day, ISO week (its Monday) or month an instant falls in. */
export function bucketOf(iso: string, by: Bucket): string {
  if (by === 'day') return iso.slice(0, 10);
  if (by === 'month') return iso.slice(0, 7);
  const d = new Date(`${iso.slice(0, 10)}T00:00:00Z`);
  const back = (d.getUTCDay() + 6) % 7;
  return new Date(d.getTime() - back * 86_400_000).toISOString().slice(0, 10);
}

export interface ForecastTotals {
  bucket: string;
  currency: string;
  charges: number;
  amount: number;
}

export interface Forecast {
  from: string;
  to: string;
  by: Bucket;
  totals: ForecastTotals[];
  /** The window's charges (all of them with `mandateId`; else the first `itemLimit`). */
  items: PlannedCharge[];
  truncated: boolean;
  /** Charges already created and waiting (retries in dunning, unsent charges) due in the window. */
  scheduled: {
    chargeId: number;
    mandateId: number;
    state: string;
    dueAt: string;
    amount: number;
    currency: string;
  }[];
}

export async function forecast(
  ctx: BillingContext,
  f: {
    from: Date;
    to: Date;
    mandateId?: number | undefined;
    currency?: string | undefined;
    by?: Bucket;
    itemLimit?: number;
  },
): Promise<Forecast> {
  if (f.to.getTime() <= f.from.getTime()) throw new ValidationError('to', 'must be after from');
  if (f.to.getTime() - f.from.getTime() > 3 * 366 * 86_400_000)
    throw new ValidationError('to', 'a forecast covers at most three years');
  const by = f.by ?? 'month';
  const limit = f.mandateId !== undefined ? Number.POSITIVE_INFINITY : (f.itemLimit ?? 1000);
  const totals = new Map<string, ForecastTotals>();
  const items: PlannedCharge[] = [];
  let truncated = false;
  for await (const c of plannedCharges(ctx, f)) {
    const bucket = bucketOf(c.dueAt, by);
    const key = `${bucket}|${c.currency}`;
    const t = totals.get(key) ?? { bucket, currency: c.currency, charges: 0, amount: 0 };
    t.charges++;
    t.amount += c.amount;
    totals.set(key, t);
    if (items.length < limit) items.push(c);
    else truncated = true;
  }
  const rows = await ctx.database.rows<
    // next_attempt_at: within the window, so not null
    Pick<RawRow<typeof charges>, 'id' | 'mandate_id' | 'state' | 'amount' | 'currency'> & {
      next_attempt_at: Date;
    }
  >(
    sql`select c.id, c.mandate_id, c.state, c.next_attempt_at, c.amount, c.currency from charges c
          join mandates m on m.id = c.mandate_id
         where c.state in ('pending', 'retry_scheduled') and m.status = 'active'
           and c.next_attempt_at >= ${f.from.toISOString()}::timestamptz and c.next_attempt_at < ${f.to.toISOString()}::timestamptz
           ${f.mandateId === undefined ? sql`` : sql`and c.mandate_id = ${f.mandateId}`}
           ${f.currency === undefined ? sql`` : sql`and c.currency = ${f.currency}`}
         order by c.next_attempt_at, c.id limit 1000`,
  );
  return {
    from: f.from.toISOString(),
    to: f.to.toISOString(),
    by,
    totals: [...totals.values()].sort(
      (a, b) => a.bucket.localeCompare(b.bucket) || a.currency.localeCompare(b.currency),
    ),
    items,
    truncated,
    scheduled: rows.map((r) => ({
      chargeId: r.id,
      mandateId: r.mandate_id,
      state: r.state,
      dueAt: r.next_attempt_at.toISOString(),
      amount: r.amount,
      currency: r.currency,
    })),
  };
}
