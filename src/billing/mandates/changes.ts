import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { parseInterval } from '../../domain/calendar.ts';
import { type Proration, planAt } from '../../domain/mandate-change.ts';
import { guardMoney } from '../../domain/money.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { cancelScheduledChange } from '../sql/mandate-changes.ts';
import { writeAudit } from '../sql/transitions.ts';
import {
  applyStored,
  type ChangeRow,
  checkedChange,
  type PlanRow,
  planColumns,
  planOf,
  type StoredChange,
} from './apply-change.ts';
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
    settlePercent: z
      .number()
      .int()
      .min(1)
      .max(100)
      .optional()
      .describe('With settleMode partial (required when the mandate is not partial already)'),
    effective: z
      .string()
      .max(64)
      .optional()
      .describe(
        'next_cycle (default): the first cycle due after the answer (cycles already due keep the old terms; effectiveAt names the cycle); ' +
          'now; or an ISO instant (a scheduled change). While cycles already due are not charged yet, a change now or at the next cycle is scheduled behind them',
      ),
    proration: z
      .enum(['none', 'charge', 'credit'])
      .optional()
      .describe(
        'For amount and billingAnchor changes effective now or at an instant t in the period [prev, next): share = (next - t) / (next - prev). ' +
          'amount, charge: a one-off of round((new - old) x share); amount, credit: round((old - new) x share) as credit; ' +
          'billingAnchor later, charge: round(amount x (newNext - next) / ((next + interval) - next)), amount and interval of the plan after the change; ' +
          'earlier, credit: round(amount x (next - newNext) / (next - prev)). The anchor moves at most one interval either way. ' +
          'Integer minor units, half up; a one-off above REBILL_MAX_AMOUNT is refused. Instalment plans are never prorated. ' +
          'Example: 3000 a month from Jan 1, 6000 from Jan 11 with charge: round(3000 x 21/31) = 2032.',
      ),
    /** Never changes: named here so the refusal can say why. */
    currency: z.unknown().optional(),
  })
  .strict();
export type UpdateMandateInput = z.input<typeof updateMandateSchema>;

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

function toChangeView(r: ChangeRow): ChangeView {
  return {
    id: r.id,
    mandateId: r.mandate_id,
    effectiveAt: r.effective_at.toISOString(),
    changes: r.changes,
    proration: r.proration,
    state: r.state,
    result: r.result,
    createdAt: r.created_at.toISOString(),
    appliedAt: r.applied_at?.toISOString() ?? null,
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
  if (proration !== 'none') {
    if (effective === 'next_cycle')
      throw new ValidationError(
        'proration',
        'applies to a change effective now or at an instant; at the next cycle nothing is left to prorate',
      );
    if (change.amount === undefined && change.billingAnchor === undefined)
      throw new ValidationError('proration', 'applies to amount and billingAnchor changes only');
    if (m.intent === 'instalment')
      throw new ValidationError(
        'proration',
        "an instalment plan is never prorated: the plan's total is the contract",
      );
  }
  const rows = await ctx.database.rows<PlanRow & { pending: Date | null }>(
    sql`select ${planColumns}, (select min(effective_at) from mandate_changes
                                 where mandate_id = ${id} and state = 'scheduled') as pending
          from mandates where id = ${id}`,
  );
  const plan = planOf(rows[0]!);
  const pending = rows[0]!.pending;
  // Cycles due and not charged yet keep the old terms: a change now or at the next cycle waits
  // behind them, scheduled (the run charges them first, then applies it); so does one behind a
  // change scheduled earlier, which is applied first.
  const behind = plan.interval !== null && plan.nextDueAt !== null && plan.nextDueAt <= now;
  let effectiveAt: Date | null = null;
  if (effective === 'now') effectiveAt = now;
  else if (effective === 'next_cycle') {
    effectiveAt = behind ? planAt(plan, new Date(now.getTime() + 1)).nextDueAt : plan.nextDueAt;
    if (behind && effectiveAt === null)
      throw new ValidationError(
        'effective',
        'no cycle falls due after now: there is no next cycle to change',
      );
  } else {
    effectiveAt = instantOf('effective', effective, m.timezone);
    if (effectiveAt.getTime() <= now.getTime())
      throw new ValidationError('effective', 'an instant must be in the future (or give now / next_cycle)');
  }
  const scheduled =
    effectiveAt !== null &&
    (behind ||
      (effective !== 'now' && effective !== 'next_cycle') ||
      (pending !== null && pending.getTime() <= effectiveAt.getTime()));
  if (effectiveAt !== null && scheduled) {
    if (change.billingAnchor !== undefined && new Date(change.billingAnchor) < effectiveAt)
      throw new ValidationError(
        'billingAnchor',
        `is before the change takes effect (${effectiveAt.toISOString()}): the next charge cannot move into the past`,
      );
    // Refused now, not when a run reaches it: checked against the plan as it will stand then.
    checkedChange(ctx, m.currency, planAt(plan, effectiveAt), change, effectiveAt, proration);
    const rows = await ctx.database.db.transaction(async (tx) => {
      const ins = await ctx.database.rows<ChangeRow>(
        sql`insert into mandate_changes (mandate_id, effective_at, changes, proration)
            values (${id}, ${effectiveAt.toISOString()}::timestamptz, ${JSON.stringify(change)}::jsonb, ${proration})
            returning *`,
        tx,
      );
      await writeAudit(
        tx,
        'mandate_change',
        ins[0]!.id,
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
  const calendarField = (['interval', 'billingAnchor', 'end', 'settleMode', 'settlePercent'] as const).find(
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
    guardMoney(input.amount, m.currency, ctx.config.billing.maxAmount);
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
  const mode = input.settleMode ?? m.settleMode;
  if (input.settlePercent !== undefined) {
    if (mode !== 'partial') throw new ValidationError('settlePercent', 'only with settleMode partial');
    out.settlePercent = input.settlePercent;
  } else if (input.settleMode === 'partial' && m.settlePercent === null)
    throw new ValidationError('settlePercent', 'is required when settleMode is partial');
  if (Object.keys(out).length === 0)
    throw new ValidationError(
      'body',
      'give at least one of amount, interval, billingAnchor, narrative, end, settleMode, settlePercent',
    );
  return out;
}

/** A mandate's scheduled, applied and cancelled changes, oldest first. */
export async function listChanges(ctx: BillingContext, mandateId: number): Promise<{ items: ChangeView[] }> {
  await getMandate(ctx.database, mandateId);
  const rows = await ctx.database.rows<ChangeRow>(
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
  const row = await cancelScheduledChange<ChangeRow>(ctx.database, mandateId, changeId);
  if (!row) {
    const any = await ctx.database.rows<Pick<ChangeRow, 'state'>>(
      sql`select state from mandate_changes where id = ${changeId} and mandate_id = ${mandateId}`,
    );
    if (!any[0]) throw new NotFoundError(`change of mandate ${mandateId}`, changeId);
    throw new ConflictError(`change ${changeId} is ${any[0].state}, not scheduled`);
  }
  return toChangeView(row);
}

/** The billing run applies scheduled changes through this module. */
export { applyDueChanges } from './apply-change.ts';
