import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Tx } from '../../db/client.ts';
import { date, dateOrNull, num, numOrNull } from '../../db/values.ts';
import { type Interval, type IntervalUnit, parseInterval } from '../../domain/calendar.ts';
import { applyChange, type Change, type Plan, type Proration } from '../../domain/mandate-change.ts';
import { assertWithinCeiling } from '../../domain/money.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { cancelScheduledChange, claimScheduledChange, settleChange } from '../sql/mandate-changes.ts';
import { transitionMandate, writeAudit } from '../sql/transitions.ts';
import { instantInput, instantOf, narrativeSchema, parseInput } from './schemas.ts';
import { getMandate, type MandateView } from './views.ts';

/**
 * Changing a mandate without cancelling it: amount, interval, billing anchor, narrative, end,
 * settle mode; at the next cycle (default), now, or at an instant (a scheduled change the
 * billing run applies). Proration and the calendar arithmetic are in src/domain/mandate-change.ts,
 * shared with the forecast. Every change is validated as creation is, written in one
 * transaction with its audit row (before and after, which the mandate.updated event carries).
 */
export const updateMandateSchema = z
  .object({
    amount: z.number().int().positive().optional(),
    interval: z.string().max(32).optional(),
    billingAnchor: instantInput.optional(),
    narrative: narrativeSchema.optional(),
    end: instantInput.nullable().optional(),
    settleMode: z.enum(['full', 'partial', 'none']).optional(),
    effective: z
      .string()
      .max(64)
      .optional()
      .describe(
        'next_cycle (default): the first cycle due after the change; now; or an ISO instant (a scheduled change)',
      ),
    proration: z
      .enum(['none', 'charge', 'credit'])
      .optional()
      .describe(
        'For amount and billingAnchor changes effective now or at an instant t in the period [prev, next): share = (next - t) / (next - prev). ' +
          'amount, charge: a one-off of round((new - old) x share); amount, credit: round((old - new) x share) as credit; ' +
          'billingAnchor later, charge: round(amount x (newNext - next) / (next - prev)); earlier, credit: round(amount x (next - newNext) / (next - prev)). ' +
          'Integer minor units, half up. Example: 3000 a month from Jan 1, 6000 from Jan 11 with charge: round(3000 x 21/31) = 2032.',
      ),
    /** Never changes: named here so the refusal can say why. */
    currency: z.unknown().optional(),
  })
  .strict();
export type UpdateMandateInput = z.input<typeof updateMandateSchema>;

/** What a change asks for, validated and normalised (what a scheduled change stores). */
interface StoredChange {
  amount?: number;
  interval?: string;
  billingAnchor?: string;
  end?: string | null;
  narrative?: string;
  settleMode?: 'full' | 'partial' | 'none';
}

export interface ChangeView {
  id: number;
  mandateId: number;
  effectiveAt: string;
  changes: StoredChange;
  proration: Proration;
  state: 'scheduled' | 'applied' | 'cancelled';
  result: Record<string, unknown> | null;
  createdAt: string;
  appliedAt: string | null;
}

function toChangeView(r: Record<string, unknown>): ChangeView {
  return {
    id: num(r.id),
    mandateId: num(r.mandate_id),
    effectiveAt: date(r.effective_at).toISOString(),
    changes: (typeof r.changes === 'string' ? JSON.parse(r.changes) : r.changes) as StoredChange,
    proration: String(r.proration) as Proration,
    state: String(r.state) as ChangeView['state'],
    result: (typeof r.result === 'string' ? JSON.parse(r.result) : (r.result ?? null)) as Record<
      string,
      unknown
    > | null,
    createdAt: date(r.created_at).toISOString(),
    appliedAt: dateOrNull(r.applied_at)?.toISOString() ?? null,
  };
}

export interface UpdateResult extends MandateView {
  change: {
    id: number | null;
    state: 'applied' | 'scheduled';
    effectiveAt: string;
    proration: Proration;
    /** A prorated one-off charge created by the change (charged by the next run). */
    oneOffChargeId: number | null;
    oneOffAmount: number;
    credited: number;
  };
}

/** PATCH /v1/mandates/{id}, `rebill mandates update`. */
export async function updateMandate(ctx: BillingContext, id: number, raw: unknown): Promise<UpdateResult> {
  const input = parseInput(updateMandateSchema, raw);
  const m = await getMandate(ctx.database, id);
  const now = ctx.clock.now();
  const change = validateChange(ctx, m, input, now);
  const proration: Proration = input.proration ?? 'none';
  const effective = input.effective ?? 'next_cycle';
  let effectiveAt: Date | null = null;
  if (effective === 'now') effectiveAt = now;
  else if (effective !== 'next_cycle') {
    effectiveAt = instantOf('effective', effective, m.timezone);
    if (effectiveAt.getTime() <= now.getTime())
      throw new ValidationError('effective', 'an instant must be in the future (or give now / next_cycle)');
  }
  if (proration !== 'none') {
    if (effective === 'next_cycle')
      throw new ValidationError(
        'proration',
        'applies to a change effective now or at an instant; at the next cycle nothing is left to prorate',
      );
    if (change.amount === undefined && change.billingAnchor === undefined)
      throw new ValidationError('proration', 'applies to amount and billingAnchor changes only');
  }
  if (effectiveAt !== null && effective !== 'now') {
    const rows = await ctx.database.db.transaction(async (tx) => {
      const ins = await ctx.database.rows(
        sql`insert into mandate_changes (mandate_id, effective_at, changes, proration)
            values (${id}, ${effectiveAt.toISOString()}::timestamptz, ${JSON.stringify(change)}::jsonb, ${proration})
            returning *`,
        tx,
      );
      await writeAudit(
        tx,
        'mandate_change',
        num(ins[0]?.id),
        null,
        'scheduled',
        `change of mandate ${id} scheduled`,
        'operator',
        {
          mandateId: id,
          effectiveAt: effectiveAt.toISOString(),
          changes: change,
          proration,
        },
      );
      return ins;
    });
    const c = toChangeView(rows[0]!);
    return {
      ...(await getMandate(ctx.database, id)),
      change: {
        id: c.id,
        state: 'scheduled',
        effectiveAt: c.effectiveAt,
        proration,
        oneOffChargeId: null,
        oneOffAmount: 0,
        credited: 0,
      },
    };
  }
  const out = await ctx.database.db.transaction(async (tx) =>
    applyStored(ctx, tx, id, change, proration, effectiveAt, 'operator'),
  );
  return {
    ...(await getMandate(ctx.database, id)),
    change: { id: null, state: 'applied', proration, ...out },
  };
}

function validateChange(
  ctx: BillingContext,
  m: MandateView,
  input: z.output<typeof updateMandateSchema>,
  now: Date,
): StoredChange {
  if (input.currency !== undefined)
    throw new ValidationError(
      'currency',
      'cannot change: a mandate keeps its currency (cancel it and create a new one)',
    );
  if (m.status === 'cancelled' || m.status === 'completed')
    throw new ConflictError(`mandate ${m.id} is ${m.status}: nothing left to change`);
  const out: StoredChange = {};
  const calendarField = (['interval', 'billingAnchor', 'end', 'settleMode'] as const).find(
    (f) => input[f] !== undefined,
  );
  if (m.intent === 'unscheduled' && calendarField)
    throw new ValidationError(
      calendarField,
      'an unscheduled mandate takes only amount and narrative changes',
    );
  if (input.amount !== undefined) {
    if (m.intent === 'instalment')
      throw new ValidationError(
        'amount',
        "cannot change on an instalment plan: the plan's total is the contract",
      );
    assertWithinCeiling(input.amount, m.currency, ctx.config.billing.maxAmount);
    out.amount = input.amount;
  }
  if (input.interval !== undefined) {
    parseInterval(input.interval, 'interval');
    out.interval = input.interval;
  }
  if (input.billingAnchor !== undefined) {
    const at = instantOf('billingAnchor', input.billingAnchor, m.timezone);
    if (at.getTime() <= now.getTime()) throw new ValidationError('billingAnchor', 'must be in the future');
    out.billingAnchor = at.toISOString();
  }
  if (input.end !== undefined) {
    if (input.end === null) out.end = null;
    else {
      const at = instantOf('end', input.end, m.timezone);
      if (at.getTime() <= now.getTime()) throw new ValidationError('end', 'must be in the future');
      out.end = at.toISOString();
    }
  }
  if (input.narrative !== undefined) out.narrative = input.narrative;
  if (input.settleMode !== undefined) out.settleMode = input.settleMode;
  if (Object.keys(out).length === 0)
    throw new ValidationError(
      'body',
      'give at least one of amount, interval, billingAnchor, narrative, end, settleMode',
    );
  return out;
}

const planColumns = sql`id, status, intent, amount, currency, interval_unit, interval_count, timezone, anchor_at, anchor_cycle,
  end_at, instalments_total, last_instalment_amount, next_cycle, next_due_at, credit_balance, narrative, settle_mode`;

/** A mandate row as the pure plan of src/domain/mandate-change.ts. */
export function planOf(r: Record<string, unknown>): Plan {
  const unit = (r.interval_unit as IntervalUnit | null) ?? null;
  const count = numOrNull(r.interval_count);
  return {
    amount: num(r.amount),
    interval: unit && count ? { unit, count } : null,
    timezone: String(r.timezone),
    anchorAt: date(r.anchor_at),
    anchorCycle: num(r.anchor_cycle),
    endAt: dateOrNull(r.end_at),
    instalmentsTotal: numOrNull(r.instalments_total),
    lastInstalmentAmount: numOrNull(r.last_instalment_amount),
    nextCycle: num(r.next_cycle),
    nextDueAt: dateOrNull(r.next_due_at),
    credit: num(r.credit_balance ?? 0),
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
 * Apply a change to a locked mandate at `at` (null: the next cycle): columns, a prorated one-off
 * charge, credit, the audit row with before and after, and completion if no cycle is left.
 */
async function applyStored(
  ctx: BillingContext,
  tx: Tx,
  id: number,
  change: StoredChange,
  proration: Proration,
  at: Date | null,
  actor: 'operator' | 'system',
): Promise<{ effectiveAt: string; oneOffChargeId: number | null; oneOffAmount: number; credited: number }> {
  const rows = await ctx.database.rows(
    sql`select ${planColumns} from mandates where id = ${id} for update`,
    tx,
  );
  const r = rows[0];
  if (!r) throw new NotFoundError('mandate', id);
  if (r.status === 'cancelled' || r.status === 'completed')
    throw new ConflictError(`mandate ${id} is ${String(r.status)}: nothing left to change`);
  const before = planOf(r);
  const t = at ?? before.nextDueAt ?? ctx.clock.now();
  const applied = applyChange(before, changeOf(change), t, proration);
  const p = applied.plan;
  await ctx.database.rows(
    sql`update mandates set amount = ${p.amount}, interval_unit = ${p.interval?.unit ?? null},
           interval_count = ${p.interval?.count ?? null}, anchor_at = ${p.anchorAt.toISOString()}::timestamptz,
           anchor_cycle = ${p.anchorCycle}, end_at = ${p.endAt?.toISOString() ?? null}::timestamptz,
           next_due_at = ${p.nextDueAt?.toISOString() ?? null}::timestamptz, credit_balance = ${p.credit},
           narrative = coalesce(${change.narrative ?? null}, narrative),
           settle_mode = coalesce(${change.settleMode ?? null}, settle_mode), updated_at = now()
     where id = ${id}`,
    tx,
  );
  let oneOffChargeId: number | null = null;
  if (applied.oneOff > 0) {
    // A one-off beside the calendar's cycles: numbered below zero so it never takes a cycle's key.
    const ins = await ctx.database.rows(
      sql`insert into charges (mandate_id, cycle, kind, amount, currency, due_at, next_attempt_at, state_reason)
          select ${id}, least(coalesce(min(cycle), 0), 0) - 1, 'proration', ${applied.oneOff}, ${String(r.currency)},
                 ${t.toISOString()}::timestamptz, ${t.toISOString()}::timestamptz, 'prorated charge for a mandate change'
            from charges where mandate_id = ${id}
          returning id`,
      tx,
    );
    oneOffChargeId = num(ins[0]?.id);
  }
  const detail = {
    before: describe(before, r),
    after: { ...describe(p, r), ...pick(change, ['narrative', 'settleMode']) },
    effectiveAt: t.toISOString(),
    proration,
    oneOffAmount: applied.oneOff,
    oneOffChargeId,
    credited: applied.credited,
  };
  const status = String(r.status);
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

function describe(p: Plan, r: Record<string, unknown>) {
  return {
    amount: p.amount,
    interval: p.interval ? `${p.interval.count} ${p.interval.unit}` : null,
    nextDueAt: p.nextDueAt?.toISOString() ?? null,
    end: p.endAt?.toISOString() ?? null,
    creditBalance: p.credit,
    narrative: String(r.narrative),
    settleMode: String(r.settle_mode),
  };
}

function pick(c: StoredChange, keys: (keyof StoredChange)[]): Partial<StoredChange> {
  const out: Partial<StoredChange> = {};
  for (const k of keys) if (c[k] !== undefined) (out as Record<string, unknown>)[k] = c[k];
  return out;
}

/** A mandate's scheduled, applied and cancelled changes, oldest first. */
export async function listChanges(ctx: BillingContext, mandateId: number): Promise<{ items: ChangeView[] }> {
  await getMandate(ctx.database, mandateId);
  const rows = await ctx.database.rows(
    sql`select * from mandate_changes where mandate_id = ${mandateId} order by effective_at, id`,
  );
  return { items: rows.map(toChangeView) };
}

/** Cancel a change that has not been applied yet. */
export async function cancelChange(
  ctx: BillingContext,
  mandateId: number,
  changeId: number,
): Promise<ChangeView> {
  const row = await cancelScheduledChange(ctx.database, mandateId, changeId);
  if (!row) {
    const any = await ctx.database.rows(
      sql`select state from mandate_changes where id = ${changeId} and mandate_id = ${mandateId}`,
    );
    if (!any[0]) throw new NotFoundError(`change of mandate ${mandateId}`, changeId);
    throw new ConflictError(`change ${changeId} is ${String(any[0].state)}, not scheduled`);
  }
  return toChangeView(row);
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
    const due = await ctx.database.rows(
      sql`select c.id, c.mandate_id, c.effective_at, c.changes, c.proration, m.status from mandate_changes c
            join mandates m on m.id = c.mandate_id
           where c.state = 'scheduled' and c.effective_at <= ${asOf.toISOString()}::timestamptz
             and (m.next_due_at is null or c.effective_at <= m.next_due_at)
             ${opts.mandateId === undefined ? sql`` : sql`and c.mandate_id = ${opts.mandateId}`}
           order by c.effective_at, c.id limit 100`,
    );
    // Another run holding one of these (SKIP LOCKED) must not keep this one looping.
    const fresh = due.filter((c) => !seen.has(num(c.id)));
    if (fresh.length === 0) return applied;
    for (const c of fresh) {
      seen.add(num(c.id));
      await ctx.database.db.transaction(async (tx) => {
        if (!(await claimScheduledChange(ctx.database, tx, num(c.id)))) return;
        let result: Record<string, unknown>;
        let state: 'applied' | 'cancelled' = 'applied';
        try {
          const stored = (typeof c.changes === 'string' ? JSON.parse(c.changes) : c.changes) as StoredChange;
          result = await applyStored(
            ctx,
            tx,
            num(c.mandate_id),
            stored,
            String(c.proration) as Proration,
            date(c.effective_at),
            'system',
          );
        } catch (err) {
          if (!(err instanceof ConflictError)) throw err;
          state = 'cancelled';
          result = { reason: err.message };
        }
        await settleChange(ctx.database, tx, num(c.id), state, result);
        applied++;
      });
    }
  }
}
