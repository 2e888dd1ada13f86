/**
 * Planner statistics a large run refreshes itself, because autovacuum's analyze notices a table
 * that changes fast too late, and not at all where autovacuum is off (`REBILL_ANALYZE_AFTER_ROWS`;
 * 0 turns both off). A database user that does not own the tables gets a warning from
 * PostgreSQL, not an error.
 */
import { sql } from 'drizzle-orm';
import { errorMessage } from '../../errors.ts';
import type { BillingContext } from '../context.ts';

/**
 * After a materialisation that created many charges. On stale statistics PostgreSQL expects a
 * handful of due rows and plans the claim as a bitmap scan that reads and sorts every due row
 * for each batch (0.84 s per claim at 1,000,000 due charges, measured) instead of reading 500
 * rows of the (next_attempt_at, id) index (1.2 ms). One ANALYZE samples the table in about
 * 0.3 s at that size.
 */
export async function refreshChargeStatistics(ctx: BillingContext, created: number): Promise<void> {
  const threshold = ctx.config.billing.analyzeAfterRows;
  if (threshold === 0 || created < threshold) return;
  const started = Date.now();
  await ctx.database.rows(sql`analyze charges`);
  ctx.logger.info({ created, ms: Date.now() - started }, 'refreshed the charges table statistics');
}

/** The tables the send loop's batch statements look rows up in by key, and that it grows. */
const GROWN = sql`analyze attempts, payment_actions, links`;

/**
 * While the send loop runs: the batch statements are prepared once per connection, and
 * PostgreSQL plans a prepared statement for good (a generic plan) at its sixth execution, from
 * the tables as they are then. At a first month start `payment_actions` and `attempts` grow from
 * nothing to millions of rows within the run, and the settle acceptances' plan stayed a
 * sequential scan of `payment_actions` for the whole run: 3.9 billion rows read over 1,000,000
 * charges, 1.2 ms of backend time per charge, the acceptances falling 130,000 behind. An ANALYZE
 * invalidates the plans made before it; taken once the run has claimed the threshold (1,000 by
 * default) and each time its claimed charges double from there, the plans follow the tables'
 * growth as autovacuum's would (ten times over a 1,000,000-charge run, each a sample of the
 * three tables, all of a small one). Planning every execution instead
 * (`plan_cache_mode`) cost 0.44 ms of backend time per charge on the 10,000-mandate bench.
 * One at a time, off the senders' path; a failure is logged, never the run's.
 */
export function growthStatistics(ctx: BillingContext) {
  const threshold = ctx.config.billing.analyzeAfterRows;
  let next = threshold;
  let running: Promise<void> | null = null;
  return {
    /** The run has claimed `claimed` charges so far. */
    claimed(claimed: number): void {
      if (threshold === 0 || !ctx.database.concurrent || running || claimed < next) return;
      while (next <= claimed) next *= 2;
      const started = Date.now();
      running = ctx.database
        .rows(GROWN)
        .then(
          () =>
            ctx.logger.info({ claimed, ms: Date.now() - started }, 'refreshed the send tables statistics'),
          (err: unknown) =>
            ctx.logger.warn({ err: errorMessage(err) }, 'could not refresh the send tables statistics'),
        )
        .finally(() => {
          running = null;
        });
    },
    /** Resolves once a refresh under way is done. */
    async close(): Promise<void> {
      await running;
    },
  };
}
