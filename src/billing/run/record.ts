import { setTimeout as sleep } from 'node:timers/promises';
import { isDatabaseUnavailable } from '../../db/unavailable.ts';
import type { RunStatus } from '../../domain/lifecycle.ts';
import { errorMessage } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { beatRun, finishRunRow, insertRun, interruptStaleRuns } from '../sql/runs.ts';
import type { RunOptions } from './options.ts';
import type { RunCounts } from './tally.ts';

/**
 * The run's record, its row in `billing_runs`: created when the run starts, beating while it
 * works, closed with its counts when it ends, and marked interrupted by a later run when its
 * worker is gone. The statements are in `src/billing/sql/runs.ts`.
 */

export async function createRun(ctx: BillingContext, opts: RunOptions): Promise<number> {
  return insertRun(ctx.database, {
    trigger: opts.trigger,
    asOf: opts.asOf,
    dryRun: opts.dryRun ?? false,
    mandateId: opts.mandateId ?? null,
    limit: opts.limit ?? null,
    owner: ctx.workerId,
  });
}

/**
 * A run beats every quarter lease (at most every 15 s) while it works. One whose heartbeat is
 * older than two leases (at least 30 s) lost its worker (killed, or its database went away) and
 * will never finish: the next run or daemon tick marks it `interrupted`, so `runs list` does not
 * show it running for ever. Its charges are reconciled by that next run as any crash's are.
 */
function heartbeatMs(ctx: BillingContext): number {
  return Math.min(15_000, ctx.config.billing.leaseSeconds * 250);
}

function staleSeconds(ctx: BillingContext): number {
  return Math.max(30, ctx.config.billing.leaseSeconds * 2);
}

export async function markInterruptedRuns(ctx: BillingContext): Promise<number> {
  return (await interruptStaleRuns(ctx.database, staleSeconds(ctx))).length;
}

export function startHeartbeat(ctx: BillingContext, runId: number): () => void {
  const timer = setInterval(() => {
    beatRun(ctx.database, runId).catch((err: unknown) =>
      ctx.logger.warn({ runId, err: errorMessage(err) }, 'run heartbeat not written'),
    );
  }, heartbeatMs(ctx));
  timer.unref();
  return () => clearInterval(timer);
}

/** Close the run's row through the run table; one already closed (marked interrupted) keeps its end. */
export async function finishRun(
  ctx: BillingContext,
  runId: number,
  status: RunStatus,
  counts: RunCounts,
  error: string | null,
): Promise<void> {
  if (!(await finishRunRow(ctx.database, runId, status, counts, error)))
    ctx.logger.warn(
      { runId, status },
      'run was already closed (marked interrupted meanwhile); its end stands',
    );
}

export {
  deleteIdleRun as forgetIdleRun,
  writeRunCounts as recordProgress,
  writeWouldSend as recordForecast,
} from '../sql/runs.ts';

/** How often a run that lost its database tries again to record its end. */
const RECORD_RETRY_MS = 1000;

/**
 * Close the row of a run that threw. One whose worker lost the database ends `interrupted` (it
 * is not the run that failed; its charges are reconciled by the next run, as a crash's are),
 * anything else `failed`. While the database cannot be reached the end cannot be written
 * either: it is tried again each second, in the background (a run's caller is not held up by an
 * outage), until it is written or the row is old enough for the next run to find it stale. A
 * process that exits meanwhile leaves it to that next run.
 */
export async function closeFailedRun(
  ctx: BillingContext,
  runId: number,
  counts: RunCounts,
  err: unknown,
): Promise<void> {
  const lost = isDatabaseUnavailable(err);
  const status: RunStatus = lost ? 'interrupted' : 'failed';
  const error = lost ? `its worker lost the database: ${errorMessage(err)}` : errorMessage(err);
  const write = () => finishRun(ctx, runId, status, counts, error);
  try {
    await write();
  } catch (first) {
    if (!isDatabaseUnavailable(first)) return;
    const deadline = Date.now() + staleSeconds(ctx) * 1000;
    void (async () => {
      while (Date.now() < deadline) {
        await sleep(RECORD_RETRY_MS, undefined, { ref: false });
        try {
          await write();
          ctx.logger.info({ runId, status }, 'database back: run end recorded');
          return;
        } catch (e) {
          if (!isDatabaseUnavailable(e)) return;
        }
      }
    })();
  }
}
