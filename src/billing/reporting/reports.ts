import { sql } from 'drizzle-orm';
import { ValidationError } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { forecast } from '../mandates/forecast.ts';
import { type PaypalFigures, paypalFigures } from '../paypal/report.ts';

/**
 * The numbers dunning exists for, computed in SQL over indexed columns. Every figure is defined
 * here and in the README, so a finance person can check it against the charges:
 *
 * Instants are the attempts' `attempted_at` (when the run made them). Recovery, for charges whose **first refusal** (the lowest-numbered refused attempt) fell in
 * `[from, to)`, grouped by that refusal's code and advice code:
 *  - `refused`: those charges;
 *  - `recovered`: of them, authorized by a later attempt;
 *  - `recoveryRate`: recovered / refused;
 *  - `recoveredAmount`: the amounts of the recovered charges, per currency;
 *  - `medianDaysToRecover`: from the first refusal to the authorization, in days;
 *  - `medianAttemptsToRecover`: the attempt number that was authorized;
 *  - `failed`, `stopped`, `needsNewCredential`: of them, how many are in that state now;
 * and the funnel: for each attempt number, the attempts made in the window and how many were
 * authorized.
 */
export interface RecoveryRow {
  refusalCode: string;
  adviceCode: string | null;
  refused: number;
  recovered: number;
  recoveryRate: number;
  recoveredAmount: Record<string, number>;
  medianDaysToRecover: number | null;
  medianAttemptsToRecover: number | null;
  failed: number;
  stopped: number;
  needsNewCredential: number;
}

export interface RecoveryReport {
  from: string;
  to: string;
  byCode: RecoveryRow[];
  funnel: { attempt: number; attempts: number; authorized: number; rate: number }[];
  /** PayPal payments and refunds in the window, apart from the card charges above. */
  paypal: PaypalFigures[];
}

function window(from: Date, to: Date) {
  if (to.getTime() <= from.getTime()) throw new ValidationError('to', 'must be after from');
}

export async function recoveryReport(ctx: BillingContext, from: Date, to: Date): Promise<RecoveryReport> {
  window(from, to);
  const f = from.toISOString();
  const t = to.toISOString();
  const rows = await ctx.database.rows<{
    refusal_code: string;
    advice_code: string | null;
    refused: number;
    recovered: number;
    recovered_amount: Record<string, number>;
    median_days: number | null;
    median_attempts: number | null;
    failed: number;
    stopped: number;
    needs_new_credential: number;
  }>(sql`
    with first_refusal as (
      select distinct on (a.charge_id) a.charge_id, a.attempt_no, a.refusal_code, a.advice_code, a.attempted_at
        from attempts a
       where a.state = 'refused'
       order by a.charge_id, a.attempt_no
    ), cohort as (
      select fr.*, c.amount, c.currency, c.state,
             ok.attempt_no as ok_attempt, ok.attempted_at as ok_at
        from first_refusal fr join charges c on c.id = fr.charge_id
        left join attempts ok on ok.charge_id = fr.charge_id and ok.state = 'authorized' and ok.attempt_no > fr.attempt_no
       where fr.attempted_at >= ${f}::timestamptz and fr.attempted_at < ${t}::timestamptz
    )
    select coalesce(refusal_code, '') as refusal_code, advice_code,
           count(*)::int as refused,
           count(ok_attempt)::int as recovered,
           coalesce((select jsonb_object_agg(currency, amount) from (
              select c2.currency, sum(c2.amount)::bigint as amount from cohort c2
               where c2.ok_attempt is not null and c2.refusal_code is not distinct from cohort.refusal_code
                 and c2.advice_code is not distinct from cohort.advice_code group by c2.currency) x), '{}'::jsonb) as recovered_amount,
           percentile_cont(0.5) within group (order by extract(epoch from ok_at - attempted_at) / 86400.0)
             filter (where ok_attempt is not null) as median_days,
           percentile_cont(0.5) within group (order by ok_attempt) filter (where ok_attempt is not null) as median_attempts,
           count(*) filter (where state = 'failed')::int as failed,
           count(*) filter (where state = 'stopped')::int as stopped,
           count(*) filter (where state = 'needs_new_credential')::int as needs_new_credential
      from cohort group by refusal_code, advice_code order by refused desc, refusal_code, advice_code`);
  const funnel = await ctx.database.rows<{ attempt_no: number; attempts: number; authorized: number }>(sql`
    select attempt_no, count(*)::int as attempts, count(*) filter (where state = 'authorized')::int as authorized
      from attempts where attempted_at >= ${f}::timestamptz and attempted_at < ${t}::timestamptz
       and state in ('authorized', 'refused')
     group by attempt_no order by attempt_no`);
  const num0 = (v: number | null) => (v === null ? null : Math.round(v * 100) / 100);
  return {
    from: f,
    to: t,
    byCode: rows.map((r) => {
      const { refused, recovered } = r;
      return {
        refusalCode: r.refusal_code,
        adviceCode: r.advice_code,
        refused,
        recovered,
        recoveryRate: refused === 0 ? 0 : Math.round((recovered / refused) * 10_000) / 10_000,
        recoveredAmount: r.recovered_amount,
        medianDaysToRecover: num0(r.median_days),
        medianAttemptsToRecover: num0(r.median_attempts),
        failed: r.failed,
        stopped: r.stopped,
        needsNewCredential: r.needs_new_credential,
      };
    }),
    funnel: funnel.map((r) => {
      const { attempts, authorized } = r;
      return {
        attempt: r.attempt_no,
        attempts,
        authorized,
        rate: attempts === 0 ? 0 : Math.round((authorized / attempts) * 10_000) / 10_000,
      };
    }),
    paypal: await paypalFigures(ctx.database, from, to),
  };
}

export interface DailyRow {
  /** The UTC day, YYYY-MM-DD. */
  day: string;
  currency: string;
  /** Attempts authorized on the first try that day. */
  authorized: number;
  /** Attempts refused that day. */
  refused: number;
  /** Attempts authorized that day on attempt 2 or later: recovered by a retry. */
  recovered: number;
}

/** The longest window the daily series answers: a bar per day beyond this helps nobody. */
export const MAX_DAILY_DAYS = 400;

/**
 * Charges per UTC day of `attempted_at`: authorized on the first attempt, refused, recovered by
 * a retry, per currency (the console's first chart). Days with no attempts are absent.
 */
export async function dailyReport(
  ctx: BillingContext,
  from: Date,
  to: Date,
  currency?: string | undefined,
): Promise<{ from: string; to: string; days: DailyRow[] }> {
  window(from, to);
  if (to.getTime() - from.getTime() > MAX_DAILY_DAYS * 86_400_000)
    throw new ValidationError('to', `the window is at most ${MAX_DAILY_DAYS} days`);
  const f = from.toISOString();
  const t = to.toISOString();
  const cur = currency === undefined ? sql`true` : sql`c.currency = ${currency}`;
  const rows = await ctx.database.rows<DailyRow>(sql`
    select to_char(a.attempted_at at time zone 'UTC', 'YYYY-MM-DD') as day, c.currency,
      count(*) filter (where a.state = 'authorized' and a.attempt_no = 1)::int as authorized,
      count(*) filter (where a.state = 'refused')::int as refused,
      count(*) filter (where a.state = 'authorized' and a.attempt_no >= 2)::int as recovered
    from attempts a join charges c on c.id = a.charge_id
    where a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz
      and a.state in ('authorized', 'refused') and ${cur}
    group by 1, 2 order by 1, 2`);
  return {
    from: f,
    to: t,
    days: rows.map((r) => ({
      day: r.day,
      currency: r.currency,
      authorized: r.authorized,
      refused: r.refused,
      recovered: r.recovered,
    })),
  };
}

export interface SummaryReport {
  from: string;
  to: string;
  currencies: {
    currency: string;
    charged: { charges: number; amount: number };
    settledAmount: number;
    /** Of the charges authorized in the window: what was refunded of them (so far). */
    refundedAmount: number;
    /** settledAmount less refundedAmount: what the window's charges bring in, net of refunds. */
    netAmount: number;
    firstAttemptRate: number | null;
    refusals: number;
    recoveredByRetry: { charges: number; amount: number };
    failedForGood: { charges: number; amount: number };
  }[];
  unknownOpen: number;
  mandatesByStatus: Record<string, number>;
  /** Per currency; null when asked without it (`forecast: false`). */
  forecastNext30Days: Record<string, { charges: number; amount: number }> | null;
}

/**
 * The window at a glance, per currency: `charged` (authorized in the window: count and amount),
 * `settled` (of those, the amount settled), `refundedAmount` (of those, the amount refunded so
 * far) and `netAmount` (settled less refunded), `firstAttemptRate` (charges whose first attempt was
 * in the window and authorized on it, over those charges), `refusals` (refused attempts in the
 * window), `recoveredByRetry` (authorized in the window on attempt 2 or later), `failedForGood`
 * (charges whose last attempt was in the window and that ended failed, stopped or waiting for a
 * new card); and now: `unknownOpen` (attempts whose outcome is not known), `mandatesByStatus`,
 * and the forecast of the next 30 days per currency.
 */
export async function summaryReport(
  ctx: BillingContext,
  from: Date,
  to: Date,
  currency?: string | undefined,
  opts: { forecast?: boolean } = {},
): Promise<SummaryReport> {
  window(from, to);
  const f = from.toISOString();
  const t = to.toISOString();
  const cur = currency === undefined ? sql`true` : sql`c.currency = ${currency}`;
  const perCurrency = await ctx.database.rows<{
    currency: string;
    charged: number;
    charged_amount: number;
    settled_amount: number;
    refunded_amount: number;
    recovered: number;
    recovered_amount: number;
    first_attempts: number;
    first_authorized: number;
    refusals: number;
  }>(sql`
    select c.currency,
      count(*) filter (where a.state = 'authorized' and a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz)::int as charged,
      coalesce(sum(c.amount) filter (where a.state = 'authorized' and a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz), 0)::bigint as charged_amount,
      coalesce(sum(c.settled_amount) filter (where a.state = 'authorized' and a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz), 0)::bigint as settled_amount,
      coalesce(sum(c.refunded_amount) filter (where a.state = 'authorized' and a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz), 0)::bigint as refunded_amount,
      count(*) filter (where a.state = 'authorized' and a.attempt_no >= 2 and a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz)::int as recovered,
      coalesce(sum(c.amount) filter (where a.state = 'authorized' and a.attempt_no >= 2 and a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz), 0)::bigint as recovered_amount,
      count(*) filter (where a.attempt_no = 1 and a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz and a.state in ('authorized', 'refused'))::int as first_attempts,
      count(*) filter (where a.attempt_no = 1 and a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz and a.state = 'authorized')::int as first_authorized,
      count(*) filter (where a.state = 'refused' and a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz)::int as refusals
    from attempts a join charges c on c.id = a.charge_id
    where a.attempted_at >= ${f}::timestamptz and a.attempted_at < ${t}::timestamptz and ${cur}
    group by c.currency order by c.currency`);
  // A charge's last attempt is in [from, to) when it has attempts from `from` on and the
  // latest of those is before `to`: read off the attempted_at index, not every charge.
  const failed = await ctx.database.rows<{ currency: string; n: number; amount: number }>(sql`
    with last as (
      select a.charge_id from attempts a where a.attempted_at >= ${f}::timestamptz
       group by a.charge_id having max(a.attempted_at) < ${t}::timestamptz)
    select c.currency, count(*)::int as n, coalesce(sum(c.amount), 0)::bigint as amount
      from last join charges c on c.id = last.charge_id
     where c.state in ('failed', 'stopped', 'needs_new_credential') and ${cur}
     group by c.currency`);
  const unknown = await ctx.database.rows<{ n: number }>(
    sql`select count(*)::int as n from attempts where state in ('sending', 'unknown')`,
  );
  const statuses = await ctx.database.rows<{ status: string; n: number }>(
    sql`select status, count(*)::int as n from mandates group by status order by status`,
  );
  const now = ctx.clock.now();
  // The forecast walks every mandate's calendar (seconds on a large book): a caller that
  // computes its own (the console's chart) asks for the summary without it.
  const next =
    opts.forecast === false
      ? null
      : await forecast(ctx, {
          from: now,
          to: new Date(now.getTime() + 30 * 86_400_000),
          currency,
          by: 'month',
          itemLimit: 0,
        });
  const forecastTotals: Record<string, { charges: number; amount: number }> = {};
  for (const x of next?.totals ?? []) {
    const a = forecastTotals[x.currency] ?? { charges: 0, amount: 0 };
    a.charges += x.charges;
    a.amount += x.amount;
    forecastTotals[x.currency] = a;
  }
  const failedBy = new Map(failed.map((r) => [r.currency, { charges: r.n, amount: r.amount }]));
  return {
    from: f,
    to: t,
    currencies: perCurrency.map((r) => ({
      currency: r.currency,
      charged: { charges: r.charged, amount: r.charged_amount },
      settledAmount: r.settled_amount,
      refundedAmount: r.refunded_amount,
      netAmount: r.settled_amount - r.refunded_amount,
      firstAttemptRate:
        r.first_attempts === 0 ? null : Math.round((r.first_authorized / r.first_attempts) * 10_000) / 10_000,
      refusals: r.refusals,
      recoveredByRetry: { charges: r.recovered, amount: r.recovered_amount },
      failedForGood: failedBy.get(r.currency) ?? { charges: 0, amount: 0 },
    })),
    unknownOpen: unknown[0]?.n ?? 0,
    mandatesByStatus: Object.fromEntries(statuses.map((r) => [r.status, r.n])),
    forecastNext30Days: next === null ? null : forecastTotals,
  };
}
