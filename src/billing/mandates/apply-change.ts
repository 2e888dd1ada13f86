import { sql } from 'drizzle-orm';
import type { Tx } from '../../db/client.ts';
import type { mandateChanges, mandates } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import { type Interval, type IntervalUnit, parseInterval } from '../../domain/calendar.ts';
import {
  type Applied,
  applyChange,
  type Change,
  leftToCharge,
  type Plan,
  type Proration,
} from '../../domain/mandate-change.ts';
import { guardMoney } from '../../domain/money.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { claimScheduledChange, settleChange } from '../sql/mandate-changes.ts';
import { transitionMandate, writeAudit } from '../sql/transitions.ts';
import type { CalendarRow } from './materialize.ts';

/**
 * Applying a mandate change (src/billing/mandates/changes.ts takes it in): at once, or, for a
 * scheduled one, by the billing run when its instant has come. The mandate's columns, a
 * prorated one-off charge, credit and the audit row, in the caller's transaction.
 */

/** What a change asks for, validated and normalised (what a scheduled change stores). */
export interface StoredChange {
  amount?: number;
  interval?: string;
  billingAnchor?: string;
  end?: string | null;
  narrative?: string;
  settleMode?: 'full' | 'partial' | 'none';
  settlePercent?: number;
}

/** A mandate_changes row, its text and JSON columns as what the code writes into them. */
export type ChangeRow = Omit<RawRow<typeof mandateChanges>, 'changes' | 'proration' | 'state' | 'result'> & {
  changes: StoredChange;
  proration: Proration;
  state: 'scheduled' | 'applied' | 'cancelled';
  result: Record<string, unknown> | null;
};

/** The mandate columns a plan is read from (`planColumns`). */
export type PlanRow = CalendarRow &
  Pick<
    RawRow<typeof mandates>,
    | 'id'
    | 'status'
    | 'intent'
    | 'amount'
    | 'currency'
    | 'last_instalment_amount'
    | 'next_cycle'
    | 'next_due_at'
    | 'credit_balance'
    | 'narrative'
    | 'settle_mode'
    | 'settle_percent'
  >;

export const planColumns = sql`id, status, intent, amount, currency, interval_unit, interval_count, timezone, anchor_at, anchor_cycle,
  end_at, instalments_total, last_instalment_amount, next_cycle, next_due_at, credit_balance, narrative, settle_mode,
  settle_percent`;

/** A mandate row as the pure plan of src/domain/mandate-change.ts. */
export function planOf(
  r: Omit<PlanRow, 'id' | 'status' | 'intent' | 'currency' | 'narrative' | 'settle_mode' | 'settle_percent'>,
): Plan {
  const unit = r.interval_unit as IntervalUnit | null;
  const count = r.interval_count;
  return {
    amount: r.amount,
    interval: unit && count ? { unit, count } : null,
    timezone: r.timezone,
    anchorAt: r.anchor_at,
    anchorCycle: r.anchor_cycle,
    endAt: r.end_at,
    instalmentsTotal: r.instalments_total,
    lastInstalmentAmount: r.last_instalment_amount,
    nextCycle: r.next_cycle,
    nextDueAt: r.next_due_at,
    credit: r.credit_balance,
  };
}

export function changeOf(c: StoredChange): Change {
  const interval: Interval | undefined = c.interval === undefined ? undefined : parseInterval(c.interval);
  return {
    amount: c.amount,
    interval,
    billingAnchor: c.billingAnchor === undefined ? undefined : new Date(c.billingAnchor),
    end: c.end === undefined ? undefined : c.end === null ? null : new Date(c.end),
  };
}

/**
 * A change's consequences for a plan at `t`, through the money guard before anything is stored:
 * the cycle amounts and a prorated one-off within the ceiling, and an instalment plan left to
 * charge exactly what it had left (its total is the contract). Refusals name the field asked for.
 */
export function checkedChange(
  ctx: BillingContext,
  currency: string,
  before: Plan,
  change: StoredChange,
  t: Date,
  proration: Proration,
): Applied {
  const applied = applyChange(before, changeOf(change), t, proration);
  const p = applied.plan;
  const asked = (['end', 'billingAnchor', 'interval', 'amount'] as const).find(
    (f) => change[f] !== undefined,
  );
  const total = leftToCharge(before);
  const maxMajor = ctx.config.billing.maxAmount;
  guardMoney(Math.max(p.amount, p.lastInstalmentAmount ?? 0), currency, maxMajor, {
    field: asked ?? 'amount',
    ...(total === null
      ? {}
      : { contract: { total, planned: leftToCharge(p, applied.oneOff) ?? 0, field: asked ?? 'body' } }),
  });
  if (applied.oneOff > 0)
    guardMoney(applied.oneOff, currency, maxMajor, {
      field: change.billingAnchor !== undefined ? 'billingAnchor' : 'amount',
      what: 'its prorated one-off',
    });
  return applied;
}

/**
 * Apply a change to a locked mandate at `at` (null: the next cycle): columns, a prorated one-off
 * charge, credit, the audit row with before and after, and completion if no cycle is left.
 */
export async function applyStored(
  ctx: BillingContext,
  tx: Tx,
  id: number,
  change: StoredChange,
  proration: Proration,
  at: Date | null,
  actor: 'operator' | 'system',
): Promise<{ effectiveAt: string; oneOffChargeId: number | null; oneOffAmount: number; credited: number }> {
  const rows = await ctx.database.rows<PlanRow>(
    sql`select ${planColumns} from mandates where id = ${id} for update`,
    tx,
  );
  const r = rows[0];
  if (!r) throw new NotFoundError('mandate', id);
  if (r.status === 'cancelled' || r.status === 'completed')
    throw new ConflictError(`mandate ${id} is ${r.status}: nothing left to change`);
  const before = planOf(r);
  const t = at ?? before.nextDueAt ?? ctx.clock.now();
  const applied = checkedChange(ctx, r.currency, before, change, t, proration);
  const p = applied.plan;
  const settlePercent =
    change.settleMode !== undefined && change.settleMode !== 'partial'
      ? null
      : (change.settlePercent ?? r.settle_percent);
  await ctx.database.rows(
    sql`update mandates set amount = ${p.amount}, interval_unit = ${p.interval?.unit ?? null},
           interval_count = ${p.interval?.count ?? null}, anchor_at = ${p.anchorAt.toISOString()}::timestamptz,
           anchor_cycle = ${p.anchorCycle}, end_at = ${p.endAt?.toISOString() ?? null}::timestamptz,
           next_due_at = ${p.nextDueAt?.toISOString() ?? null}::timestamptz, credit_balance = ${p.credit},
           narrative = coalesce(${change.narrative ?? null}, narrative),
           settle_mode = coalesce(${change.settleMode ?? null}, settle_mode), settle_percent = ${settlePercent},
           updated_at = now()
     where id = ${id}`,
    tx,
  );
  let oneOffChargeId: number | null = null;
  if (applied.oneOff > 0) {
    // A one-off beside the calendar's cycles: numbered below zero so it never takes a cycle's key.
    const ins = await ctx.database.rows<{ id: number }>(
      sql`insert into charges (mandate_id, cycle, kind, amount, currency, due_at, next_attempt_at, state_reason)
          select ${id}, least(coalesce(min(cycle), 0), 0) - 1, 'proration', ${applied.oneOff}, ${r.currency},
                 ${t.toISOString()}::timestamptz, ${t.toISOString()}::timestamptz, 'prorated charge for a mandate change'
            from charges where mandate_id = ${id}
          returning id`,
      tx,
    );
    oneOffChargeId = ins[0]?.id ?? null;
  }
  const detail = {
    before: describe(before, r),
    after: { ...describe(p, r), ...pick(change, ['narrative', 'settleMode']), settlePercent },
    effectiveAt: t.toISOString(),
    proration,
    oneOffAmount: applied.oneOff,
    oneOffChargeId,
    credited: applied.credited,
  };
  const status = r.status;
  if (applied.completed) {
    await transitionMandate(ctx.database, tx, {
      id,
      to: 'completed',
      reason: 'no cycle left after the change',
      actor,
      set: [sql`next_due_at = null`],
    });
  }
  await writeAudit(
    tx,
    'mandate',
    id,
    status,
    applied.completed ? 'completed' : status,
    'updated',
    actor,
    detail,
  );
  return {
    effectiveAt: t.toISOString(),
    oneOffChargeId,
    oneOffAmount: applied.oneOff,
    credited: applied.credited,
  };
}

function describe(p: Plan, r: PlanRow) {
  return {
    amount: p.amount,
    interval: p.interval ? `${p.interval.count} ${p.interval.unit}` : null,
    nextDueAt: p.nextDueAt?.toISOString() ?? null,
    end: p.endAt?.toISOString() ?? null,
    creditBalance: p.credit,
    narrative: r.narrative,
    settleMode: r.settle_mode,
    settlePercent: r.settle_percent,
  };
}

function pick(c: StoredChange, keys: (keyof StoredChange)[]): Partial<StoredChange> {
  const out: Partial<StoredChange> = {};
  for (const k of keys) if (c[k] !== undefined) (out as Record<string, unknown>)[k] = c[k];
  return out;
}

/**
 * The billing run's first step: apply every scheduled change whose instant has come, and that
 * falls before the mandate's next cycle (a change effective later waits until the cycles before
 * it are charged), oldest first, each at its own instant.
 */
export async function applyDueChanges(
  ctx: BillingContext,
  asOf: Date,
  opts: { mandateId?: number | undefined } = {},
): Promise<number> {
  let applied = 0;
  const seen = new Set<number>();
  for (;;) {
    const due = await ctx.database.rows<
      Pick<ChangeRow, 'id' | 'mandate_id' | 'effective_at' | 'changes' | 'proration'> & { status: string }
    >(
      sql`select c.id, c.mandate_id, c.effective_at, c.changes, c.proration, m.status from mandate_changes c
            join mandates m on m.id = c.mandate_id
           where c.state = 'scheduled' and c.effective_at <= ${asOf.toISOString()}::timestamptz
             and (m.next_due_at is null or c.effective_at <= m.next_due_at)
             ${opts.mandateId === undefined ? sql`` : sql`and c.mandate_id = ${opts.mandateId}`}
           order by c.effective_at, c.id limit 100`,
    );
    // Another run holding one of these (SKIP LOCKED) must not keep this one looping.
    const fresh = due.filter((c) => !seen.has(c.id));
    if (fresh.length === 0) return applied;
    for (const c of fresh) {
      seen.add(c.id);
      await ctx.database.db.transaction(async (tx) => {
        if (!(await claimScheduledChange(ctx.database, tx, c.id))) return;
        let result: Record<string, unknown>;
        let state: 'applied' | 'cancelled' = 'applied';
        try {
          result = await applyStored(ctx, tx, c.mandate_id, c.changes, c.proration, c.effective_at, 'system');
        } catch (err) {
          // What became of the mandate since the change was asked for may refuse it now.
          if (!(err instanceof ConflictError || err instanceof ValidationError)) throw err;
          state = 'cancelled';
          result = { reason: err.message };
        }
        await settleChange(ctx.database, tx, c.id, state, result);
        applied++;
      });
    }
  }
}
