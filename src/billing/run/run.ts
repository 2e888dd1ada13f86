import { sql } from 'drizzle-orm';
import type { attempts, charges } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import { NotFoundError } from '../../errors.ts';
import { noticeExpiringCards } from '../../events/expiry.ts';
import { countDueCharges } from '../charge/claim.ts';
import { followSettlements } from '../charge/follow.ts';
import { reconcileUnknown, resumeSettlements } from '../charge/recover.ts';
import type { BillingContext } from '../context.ts';
import { applyDueChanges } from '../mandates/changes.ts';
import { plannedCharges } from '../mandates/forecast.ts';
import { materializeDueCharges } from '../mandates/materialize.ts';
import { mandateReleasesCharges, releaseCredentials, releaseLeases } from '../sql/transitions.ts';
import { assertNotFuture, type RunOptions, type RunReport } from './options.ts';
import { sendDue } from './pipeline.ts';
import {
  closeFailedRun,
  createRun,
  finishRun,
  forgetIdleRun,
  markInterruptedRuns,
  recordForecast,
  startHeartbeat,
} from './record.ts';
import { refreshChargeStatistics } from './statistics.ts';
import { isIdle, type RunTally, zero } from './tally.ts';

export {
  assertNotFuture,
  FUTURE_TOLERANCE_MS,
  MAX_RUN_LIMIT,
  type RunOptions,
  type RunReport,
  type RunTrigger,
} from './options.ts';
export { createRun, markInterruptedRuns } from './record.ts';
export type { RunCounts } from './tally.ts';

/** Check that a mandate filter names a real mandate, so a typo is an error, not an empty run. */
export async function assertMandateExists(ctx: BillingContext, mandateId: number): Promise<void> {
  const rows = await ctx.database.rows<{ id: number }>(sql`select id from mandates where id = ${mandateId}`);
  if (rows.length === 0) throw new NotFoundError('mandate', mandateId);
}

/**
 * One billing run: reconcile what an earlier crash or timeout left open, finish pending
 * settlements, turn due cycles into charges, then claim and send due charges in leased
 * batches with bounded concurrency. The run's row records its progress as it goes.
 */
export async function runBilling(ctx: BillingContext, opts: RunOptions): Promise<RunReport> {
  const started = Date.now();
  assertNotFuture(ctx, opts);
  if (opts.mandateId !== undefined) await assertMandateExists(ctx, opts.mandateId);
  const runId = opts.runId ?? (await createRun(ctx, opts));
  const counts = zero();
  const book: RunTally = {
    runId,
    counts,
    held: new Map(),
    credentials: new Set(),
    holder: `${ctx.workerId}/run-${runId}`,
    errors: [],
  };
  const stopHeartbeat = startHeartbeat(ctx, runId);
  const log = ctx.logger.child({ runId });
  const report = (status: RunReport['status']): RunReport => ({
    runId,
    asOf: opts.asOf.toISOString(),
    dryRun: opts.dryRun ?? false,
    status,
    counts,
    errors: book.errors,
    refusals: [],
    durationMs: Date.now() - started,
    recorded: true,
  });
  try {
    const interrupted = await markInterruptedRuns(ctx);
    if (interrupted > 0) log.warn({ interrupted }, 'marked runs whose worker is gone as interrupted');
    if (opts.dryRun) {
      const out = report('completed');
      out.forecast = await forecast(ctx, opts);
      counts.due = out.forecast.length;
      await recordForecast(ctx.database, runId, out.forecast);
      await finishRun(ctx, runId, 'completed', counts, null);
      return out;
    }
    const batch = ctx.config.billing.batchSize;
    const rec = await reconcileUnknown(ctx, { asOf: opts.asOf, limit: 10_000, mandateId: opts.mandateId });
    counts.reconciled = rec.checked;
    counts.settleRequested += await resumeSettlements(ctx, { limit: 10_000, mandateId: opts.mandateId });
    // A cycle due at or after a scheduled change's instant waits for the change, and the change
    // for the cycles before it: the two alternate until neither has anything left.
    for (;;) {
      const applied = await applyDueChanges(ctx, opts.asOf, { mandateId: opts.mandateId });
      const mat = await materializeDueCharges(ctx.database, opts.asOf, {
        batchSize: batch,
        mandateId: opts.mandateId,
        maxCatchUp: ctx.config.billing.maxCatchUpCycles,
      });
      counts.changesApplied += applied;
      counts.created += mat.created;
      counts.missedCycles += mat.skipped;
      if (applied === 0 && mat.created + mat.skipped === 0) break;
    }
    await refreshChargeStatistics(ctx, counts.created);
    if (opts.onTotal) {
      const due = await countDueCharges(ctx.database, { asOf: opts.asOf, mandateId: opts.mandateId });
      opts.onTotal(opts.limit === undefined ? due : Math.min(due, opts.limit));
    }
    await sendDue(ctx, opts, book);
    // Everything was sent: a release that fails leaves the leases to run out, not the run failed.
    await releaseCredentials(ctx.database, book.holder, book.credentials).catch((err: unknown) =>
      log.warn({ err }, "could not release the run's credentials; their leases run out"),
    );
    book.credentials.clear();
    if (opts.followSettlements) {
      const f = await followSettlements(ctx, { limit: 10_000 });
      counts.settled += f.settled;
    }
    counts.errors += rec.errors;
    await noticeExpiringCards(ctx, opts.asOf);
    await releaseLeases(ctx.database, ctx.workerId, book.held);
    book.held.clear();
    const status: RunReport['status'] = opts.signal?.aborted
      ? 'interrupted'
      : counts.errors > 0
        ? 'completed_with_errors'
        : 'completed';
    if (
      opts.forgetIfIdle &&
      status === 'completed' &&
      isIdle(counts) &&
      (await forgetIdleRun(ctx.database, runId))
    )
      return { ...report(status), recorded: false };
    await finishRun(ctx, runId, status, counts, book.errors[0] ?? null);
    const out = report(status);
    out.refusals = await refusalSummary(ctx, runId, opts.asOf);
    log.info({ counts, durationMs: out.durationMs }, 'billing run finished');
    return out;
  } catch (err) {
    await releaseLeases(ctx.database, ctx.workerId, book.held).catch(() => {});
    await releaseCredentials(ctx.database, book.holder, book.credentials).catch(() => {});
    await closeFailedRun(ctx, runId, counts, err);
    throw err;
  } finally {
    stopHeartbeat();
  }
}

/**
 * What a run at `asOf` would send, without writing or sending anything: the charges already
 * waiting (a retry due, a charge not yet sent) on mandates that release them, then what the
 * calendar creates, through the forecast's simulation (scheduled changes, credits, the catch-up
 * bound), so a dry run and a real run at the same instant agree.
 */
async function forecast(ctx: BillingContext, opts: RunOptions): Promise<NonNullable<RunReport['forecast']>> {
  const limit = opts.limit ?? 100_000;
  const out: NonNullable<RunReport['forecast']> = [];
  const filter = opts.mandateId === undefined ? sql`` : sql`and c.mandate_id = ${opts.mandateId}`;
  const rows = await ctx.database.rows<
    Pick<RawRow<typeof charges>, 'mandate_id' | 'cycle' | 'kind' | 'amount' | 'currency' | 'state'> & {
      next_attempt_at: Date;
      customer_ref: string;
    }
  >(sql`select c.mandate_id, c.cycle, c.kind, c.amount, c.currency, c.next_attempt_at, c.state, cu.ref as customer_ref
      from charges c join mandates m on m.id = c.mandate_id join customers cu on cu.id = m.customer_id
     where c.state in ('pending', 'retry_scheduled') and c.next_attempt_at <= ${opts.asOf.toISOString()}::timestamptz
       and ${mandateReleasesCharges('m')} ${filter}
     order by c.next_attempt_at, c.id limit ${limit}`);
  for (const r of rows)
    out.push({
      mandateId: r.mandate_id,
      customerRef: r.customer_ref,
      // A proration charge is named by its kind, as a planned one is: its cycle is internal.
      cycle: r.kind === 'proration' ? null : r.cycle,
      amount: r.amount,
      currency: r.currency,
      dueAt: r.next_attempt_at.toISOString(),
      kind: r.state === 'retry_scheduled' ? 'retry' : r.kind === 'proration' ? 'proration' : 'pending charge',
    });
  for await (const c of plannedCharges(ctx, {
    from: new Date(0),
    to: new Date(opts.asOf.getTime() + 1),
    mandateId: opts.mandateId,
    catchUpAsOf: opts.asOf,
    maxCatchUp: ctx.config.billing.maxCatchUpCycles,
  })) {
    if (out.length >= limit) break;
    out.push({
      mandateId: c.mandateId,
      customerRef: c.customerRef,
      cycle: c.cycle,
      amount: c.amount,
      currency: c.currency,
      dueAt: c.dueAt,
      kind: c.kind === 'proration' ? 'proration' : 'new cycle',
    });
  }
  return out;
}

async function refusalSummary(
  ctx: BillingContext,
  runId: number,
  _asOf: Date,
): Promise<RunReport['refusals']> {
  const rows = await ctx.database.rows<
    Pick<RawRow<typeof attempts>, 'refusal_code' | 'advice_code' | 'decision'> & {
      n: number;
      next_at: Date | null;
    }
  >(sql`
    select a.refusal_code, a.advice_code, a.decision, count(*)::int as n, min(a.retry_at) as next_at
      from attempts a, billing_runs r
     where r.id = ${runId} and a.state = 'refused' and a.sent_at >= r.started_at
     group by 1, 2, 3 order by n desc`);
  return rows.map((r) => ({
    code: r.refusal_code ?? '',
    adviceCode: r.advice_code,
    decision: r.decision ?? '',
    count: r.n,
    nextAttemptAt: r.next_at?.toISOString() ?? null,
  }));
}
