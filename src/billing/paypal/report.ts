import { sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';

/**
 * PayPal payments in a report's window, apart from card charges (they are not charged or
 * dunned by rebill, only refunded): per currency, the payments tracked in `[from, to)` and
 * their amount, and the refunds made in the window: accepted (count and amount), failed, and
 * still in doubt (sent, answer not known yet).
 */
export interface PaypalFigures {
  currency: string;
  tracked: number;
  trackedAmount: number;
  refunds: number;
  refundedAmount: number;
  refundsFailed: number;
  refundsInDoubt: number;
}

export async function paypalFigures(database: Database, from: Date, to: Date): Promise<PaypalFigures[]> {
  const f = from.toISOString();
  const t = to.toISOString();
  const rows = await database.rows<{
    currency: string;
    tracked: number;
    tracked_amount: number;
    refunds: number;
    refunded_amount: number;
    failed: number;
    in_doubt: number;
  }>(sql`
    with p as (
      select currency, count(*)::int as tracked, sum(amount)::bigint as tracked_amount
        from paypal_payments where created_at >= ${f}::timestamptz and created_at < ${t}::timestamptz
       group by currency
    ), r as (
      select currency,
             count(*) filter (where state = 'accepted')::int as refunds,
             coalesce(sum(amount) filter (where state = 'accepted'), 0)::bigint as refunded_amount,
             count(*) filter (where state = 'failed')::int as failed,
             count(*) filter (where state = 'requested')::int as in_doubt
        from paypal_refunds where created_at >= ${f}::timestamptz and created_at < ${t}::timestamptz
       group by currency
    )
    select coalesce(p.currency, r.currency) as currency, coalesce(p.tracked, 0) as tracked,
           coalesce(p.tracked_amount, 0)::bigint as tracked_amount, coalesce(r.refunds, 0) as refunds,
           coalesce(r.refunded_amount, 0)::bigint as refunded_amount, coalesce(r.failed, 0) as failed,
           coalesce(r.in_doubt, 0) as in_doubt
      from p full join r on r.currency = p.currency order by 1`);
  return rows.map((r) => ({
    currency: r.currency,
    tracked: r.tracked,
    trackedAmount: r.tracked_amount,
    refunds: r.refunds,
    refundedAmount: r.refunded_amount,
    refundsFailed: r.failed,
    refundsInDoubt: r.in_doubt,
  }));
}
