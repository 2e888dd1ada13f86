import { sql } from 'drizzle-orm';
import { dueAt, firstCycleAt, isTimeZone, lastCycleDueBy, parseInterval } from '../../domain/calendar.ts';
import { assertMoney, guardMoney, splitInstalments } from '../../domain/money.ts';
import { ValidationError } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { writeAudit } from '../sql/transitions.ts';
import { assertCredentialUsable, upsertCredential } from './credentials.ts';
import { scheduleOf } from './materialize.ts';
import { createMandateSchema, instantOf, parseInput } from './schemas.ts';
import { getMandate, type MandateView } from './views.ts';

export { assertCredentialUsable } from './credentials.ts';
export {
  attachCredential,
  cancelMandate,
  pauseMandate,
  queueCharge,
  resumeMandate,
  undoCancelAtPeriodEnd,
} from './lifecycle.ts';
export {
  type CreateMandateInput,
  type CredentialInput,
  createMandateSchema,
  credentialInputSchema,
  parseInput,
} from './schemas.ts';
export {
  getMandate,
  type ListFilter,
  listMandates,
  type MandateDetail,
  type MandateView,
  showMandate,
} from './views.ts';

export async function createMandate(ctx: BillingContext, raw: unknown): Promise<MandateView> {
  const input = parseInput(createMandateSchema, raw);
  const now = ctx.clock.now();
  if (input.amount === undefined && input.totalAmount === undefined)
    throw new ValidationError('amount', 'is required (or totalAmount for an instalment plan)');
  assertMoney(
    input.totalAmount ?? input.amount ?? 0,
    input.currency,
    input.totalAmount ? 'totalAmount' : 'amount',
  );
  if (!isTimeZone(input.timezone)) throw new ValidationError('timezone', 'is not a known IANA time zone');
  const interval = input.interval ? parseInterval(input.interval) : null;
  if (input.intent === 'unscheduled' && interval)
    throw new ValidationError('interval', 'unscheduled mandates have no interval');
  if (input.intent !== 'unscheduled' && !interval)
    throw new ValidationError('interval', `is required for ${input.intent} mandates`);
  if (input.intent === 'instalment' && !input.instalments)
    throw new ValidationError('instalments', 'is required for instalment mandates');
  if (input.intent !== 'instalment' && input.instalments)
    throw new ValidationError('instalments', 'only instalment mandates have a count');
  if (input.settleMode === 'partial' && !input.settlePercent)
    throw new ValidationError('settlePercent', 'is required when settleMode is partial');
  if (input.settleMode !== 'partial' && input.settlePercent !== undefined)
    throw new ValidationError('settlePercent', 'only with settleMode partial');
  if (input.gateway === 'liquido' && !('liquidoCardId' in input.credential)) {
    throw new ValidationError('credential', 'a Liquido mandate needs liquidoCardId');
  }
  if (input.gateway === 'worldpay' && 'liquidoCardId' in input.credential) {
    throw new ValidationError('credential', 'liquidoCardId is for Liquido mandates');
  }
  assertCredentialUsable(ctx, input.credential, now);
  let amount = input.amount ?? 0;
  let lastInstalmentAmount: number | null = null;
  if (input.totalAmount !== undefined) {
    if (input.intent !== 'instalment' || !input.instalments)
      throw new ValidationError('totalAmount', 'only for instalment plans');
    const split = splitInstalments(input.totalAmount, input.instalments);
    if (input.amount !== undefined && input.amount !== split.amount)
      throw new ValidationError(
        'amount',
        `contradicts totalAmount: ${input.instalments} instalments of ${input.totalAmount} are ${split.amount} each${split.lastAmount === split.amount ? '' : ` (the last ${split.lastAmount})`}; give one or the other`,
      );
    amount = split.amount;
    lastInstalmentAmount = split.lastAmount === split.amount ? null : split.lastAmount;
  }
  // The ceiling is per charge: each instalment, the remainder included.
  guardMoney(Math.max(amount, lastInstalmentAmount ?? 0), input.currency, ctx.config.billing.maxAmount, {
    field: input.totalAmount !== undefined ? 'totalAmount' : 'amount',
  });
  const startAt = input.start === undefined ? now : instantOf('start', input.start, input.timezone);
  const trialEndAt =
    input.trialEnd === undefined ? null : instantOf('trialEnd', input.trialEnd, input.timezone);
  const endAt = input.end === undefined ? null : instantOf('end', input.end, input.timezone);
  const anchorAt = firstCycleAt({
    startAt,
    trialEndAt,
    timezone: input.timezone,
    ...(input.localTime ? { localTime: input.localTime } : {}),
  });
  if (endAt && endAt <= anchorAt) throw new ValidationError('end', 'is before the first charge');
  const start = startCycle(
    {
      intervalUnit: interval?.unit ?? null,
      intervalCount: interval?.count ?? null,
      timezone: input.timezone,
      anchorAt,
      anchorCycle: 0,
      endAt,
      instalmentsTotal: input.instalments ?? null,
    },
    { now, backfill: input.backfill ?? false, intent: input.intent },
  );
  const entity = input.entity ?? ctx.config.worldpay.entity;
  const id = await ctx.database.db.transaction(async (tx) => {
    const cu = await ctx.database.rows<{ id: number }>(
      sql`insert into customers (ref) values (${input.customerRef}) on conflict (ref) do update set ref = excluded.ref returning id`,
      tx,
    );
    const customerId = cu[0]!.id;
    const credentialId = await upsertCredential(ctx, tx, customerId, input.gateway, input.credential);
    const rows = await ctx.database.rows<{ id: number }>(
      sql`insert into mandates (customer_id, credential_id, gateway, intent, amount, currency, entity, narrative,
            interval_unit, interval_count, timezone, anchor_at, start_at, end_at, trial_end_at, instalments_total,
            last_instalment_amount, next_cycle, next_due_at, backfill_through_cycle, settle_mode, settle_percent)
          values (${customerId}, ${credentialId}, ${input.gateway}, ${input.intent}, ${amount}, ${input.currency}, ${entity},
            ${input.narrative}, ${interval?.unit ?? null}, ${interval?.count ?? null}, ${input.timezone},
            ${anchorAt.toISOString()}::timestamptz, ${startAt.toISOString()}::timestamptz, ${endAt?.toISOString() ?? null}::timestamptz,
            ${trialEndAt?.toISOString() ?? null}::timestamptz, ${input.instalments ?? null}, ${lastInstalmentAmount},
            ${start.cycle}, ${interval ? start.dueAt.toISOString() : null}::timestamptz, ${start.backfillThrough},
            ${input.settleMode}, ${input.settlePercent ?? null})
          returning id`,
      tx,
    );
    const mandateId = rows[0]!.id;
    await writeAudit(
      tx,
      'mandate',
      mandateId,
      null,
      'active',
      start.skipped > 0
        ? `created; started in the past: ${start.skipped} earlier cycle(s) not charged (no backfill)`
        : 'created',
    );
    return mandateId;
  });
  return getMandate(ctx.database, id);
}

/**
 * Where a new mandate's billing starts. A start in the past charges only the latest cycle due
 * now, never the ones before it, unless backfill is asked for; then every cycle since the start
 * is due, and the catch-up bound does not apply to them. An instalment plan would lose its
 * skipped instalments, so a backdated plan without backfill is refused instead.
 */
function startCycle(
  m: Parameters<typeof scheduleOf>[0],
  opts: { now: Date; backfill: boolean; intent: string },
): { cycle: number; dueAt: Date; backfillThrough: number | null; skipped: number } {
  const schedule = scheduleOf(m);
  if (!schedule.interval) return { cycle: 0, dueAt: m.anchorAt, backfillThrough: null, skipped: 0 };
  const last = lastCycleDueBy(schedule, opts.now, 0);
  if (last === null || last === 0) return { cycle: 0, dueAt: m.anchorAt, backfillThrough: null, skipped: 0 };
  if (opts.backfill) return { cycle: 0, dueAt: m.anchorAt, backfillThrough: last, skipped: 0 };
  if (opts.intent === 'instalment')
    throw new ValidationError(
      'start',
      `is ${last} instalment(s) in the past: they would be skipped; pass backfill to charge them, or start the plan now`,
    );
  return { cycle: last, dueAt: dueAt(schedule, last), backfillThrough: null, skipped: last };
}
