import { sql } from 'drizzle-orm';
import { date, num } from '../../db/values.ts';
import { type RunStatus, runMachine } from '../../domain/lifecycle.ts';
import { errorMessage, RebillError, ValidationError } from '../../errors.ts';
import { noticeExpiringCards } from '../../events/expiry.ts';
import { countDueCharges } from '../charge/claim.ts';
import { reconcileUnknown } from '../charge/recover.ts';
import { followSettlements, resumeSettlements } from '../charge/settle.ts';
import type { BillingContext } from '../context.ts';
import { applyDueChanges } from '../mandates/changes.ts';
import { plannedCharges } from '../mandates/forecast.ts';
import { materializeDueCharges } from '../mandates/materialize.ts';
import { mandateReleasesCharges, mayBecome, releaseLeases } from '../sql/transitions.ts';
import { sendDue } from './pipeline.ts';
import { type RunCounts, type RunTally, zero } from './tally.ts';

export type { RunCounts } from './tally.ts';

export type RunTrigger = 'cli' | 'api' | 'cron' | 'demo' | 'bench' | 'test';

export interface RunOptions {
  asOf: Date;
  dryRun?: boolean;
  mandateId?: number | undefined;
  /** At most this many authorization attempts in this run. */
  limit?: number | undefined;
  trigger: RunTrigger;
  /** Also ask the gateway about settlements still pending (the daemon does this every tick). */
  followSettlements?: boolean;
  /** Called after each charge with the counts so far. */
  onProgress?: (counts: RunCounts) => void;
  /** Called once, before the first charge is sent, with how many charges are due to go. */
  onTotal?: (due: number) => void;
  /** Stop claiming new work (graceful shutdown); work in flight finishes. */
  signal?: AbortSignal;
  /** An existing billing_runs row to fill in (the API creates it before starting). */
  runId?: number;
  /** Bill for an instant more than FUTURE_TOLERANCE_MS ahead of the wall clock (see assertNotFuture). */
  allowFuture?: boolean | undefined;
  /** How the caller named `asOf` (`--at` on the CLI), for the error that refuses it. */
  asOfField?: string;
}

/** How far ahead of the wall clock a run's `asOf` may be without `allowFuture`: clock skew. */
export const FUTURE_TOLERANCE_MS = 5 * 60_000;

/**
 * Billing ahead of time charges customers early: refused unless asked for (`--allow-future`,
 * `allowFuture`, or REBILL_ALLOW_FUTURE_RUNS=1 for tests, demos and simulations). A dry run
 * sends nothing and may look as far ahead as it likes.
 */
export function assertNotFuture(ctx: BillingContext, opts: RunOptions, wallNow = Date.now()): void {
  if (opts.dryRun || opts.allowFuture || ctx.config.billing.allowFutureRuns) return;
  const ahead = opts.asOf.getTime() - wallNow;
  if (ahead > FUTURE_TOLERANCE_MS) {
    const field = opts.asOfField ?? 'asOf';
    const flag = field === '--at' ? '--allow-future' : 'allowFuture: true';
    throw new ValidationError(
      field,
      `${opts.asOf.toISOString()} is ${Math.round(ahead / 60_000)} minutes ahead of now: billing early charges customers early; pass ${flag} to mean it`,
    );
  }
}

export interface RunReport {
  runId: number;
  asOf: string;
  dryRun: boolean;
  /** `completed_with_errors`: finished, but some charges errored (not sent, or not answered about the card). */
  status: 'completed' | 'completed_with_errors' | 'failed' | 'interrupted';
  counts: RunCounts;
  /** The first distinct error messages of the run. */
  errors: string[];
  /** Dry runs: what would be charged. */
  forecast?: {
    mandateId: number;
    /** null for a prorated one-off a scheduled change would create. */
    cycle: number | null;
    amount: number;
    currency: string;
    dueAt: string;
    kind: string;
  }[];
  /** Refusals by code with what was decided (the dunning report). */
  refusals: {
    code: string;
    adviceCode: string | null;
    decision: string;
    count: number;
    nextAttemptAt: string | null;
  }[];
  durationMs: number;
}

/** Check that a mandate filter names a real mandate, so a typo is an error, not an empty run. */
export async function assertMandateExists(ctx: BillingContext, mandateId: number): Promise<void> {
  const rows = await ctx.database.rows(sql`select 1 from mandates where id = ${mandateId}`);
  if (rows.length === 0) throw new RebillError(`mandate ${mandateId} not found`, 'not_found');
}

export async function createRun(ctx: BillingContext, opts: RunOptions): Promise<number> {
  const rows =
    await ctx.database.rows(sql`insert into billing_runs (trigger, as_of, dry_run, mandate_id, "limit", owner, heartbeat_at)
    values (${opts.trigger}, ${opts.asOf.toISOString()}::timestamptz, ${opts.dryRun ?? false}, ${opts.mandateId ?? null},
            ${opts.limit ?? null}, ${ctx.workerId}, now()) returning id`);
  return num(rows[0]?.id);
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

export async function markInterruptedRuns(ctx: BillingContext): Promise<number> {
  const staleSeconds = Math.max(30, ctx.config.billing.leaseSeconds * 2);
  const rows = await ctx.database.rows(sql`update billing_runs
      set status = 'interrupted', finished_at = now(),
          error = 'its worker stopped without finishing it (no heartbeat since ' || coalesce(heartbeat_at, started_at)::text || ')'
    where status = 'running' and coalesce(heartbeat_at, started_at) < now() - make_interval(secs => ${staleSeconds})
    returning id`);
  return rows.length;
}

function startHeartbeat(ctx: BillingContext, runId: number): () => void {
  const timer = setInterval(() => {
    ctx.database
      .rows(sql`update billing_runs set heartbeat_at = now() where id = ${runId} and status = 'running'`)
      .catch((err: unknown) =>
        ctx.logger.warn({ runId, err: errorMessage(err) }, 'run heartbeat not written'),
      );
  }, heartbeatMs(ctx));
  timer.unref();
  return () => clearInterval(timer);
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
  const book: RunTally = { runId, counts, held: new Map(), errors: [] };
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
  });
  try {
    const interrupted = await markInterruptedRuns(ctx);
    if (interrupted > 0) log.warn({ interrupted }, 'marked runs whose worker is gone as interrupted');
    if (opts.dryRun) {
      const out = report('completed');
      out.forecast = await forecast(ctx, opts);
      counts.due = out.forecast.length;
      await ctx.database.rows(
        sql`update billing_runs set would_send = ${JSON.stringify(out.forecast)}::jsonb where id = ${runId}`,
      );
      await finishRun(ctx, runId, 'completed', counts, null);
      return out;
    }
    const batch = ctx.config.billing.batchSize;
    const rec = await reconcileUnknown(ctx, { asOf: opts.asOf, limit: 10_000, mandateId: opts.mandateId });
    counts.reconciled = rec.checked;
    counts.settleRequested += await resumeSettlements(ctx, { limit: 10_000, mandateId: opts.mandateId });
    counts.changesApplied = await applyDueChanges(ctx, opts.asOf, { mandateId: opts.mandateId });
    const mat = await materializeDueCharges(ctx.database, opts.asOf, {
      batchSize: batch,
      mandateId: opts.mandateId,
      maxCatchUp: ctx.config.billing.maxCatchUpCycles,
    });
    counts.created = mat.created;
    counts.missedCycles = mat.skipped;
    await refreshStatistics(ctx, mat.created);
    if (opts.onTotal) {
      const due = await countDueCharges(ctx.database, { asOf: opts.asOf, mandateId: opts.mandateId });
      opts.onTotal(opts.limit === undefined ? due : Math.min(due, opts.limit));
    }
    await sendDue(ctx, opts, book);
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
    await finishRun(ctx, runId, status, counts, book.errors[0] ?? null);
    const out = report(status);
    out.refusals = await refusalSummary(ctx, runId, opts.asOf);
    log.info({ counts, durationMs: out.durationMs }, 'billing run finished');
    return out;
  } catch (err) {
    await releaseLeases(ctx.database, ctx.workerId, book.held).catch(() => {});
    await finishRun(ctx, runId, 'failed', counts, errorMessage(err)).catch(() => {});
    throw err;
  } finally {
    stopHeartbeat();
  }
}

/**
 * A run that has just created many charges (the first of the month for a large book) changes
 * the charges table faster than autovacuum's analyze notices, and not at all where autovacuum
 * is off. On stale statistics PostgreSQL expects a handful of due rows and plans the claim as a
 * bitmap scan that reads and sorts every due row for each batch (0.84 s per claim at 1,000,000
 * due charges, measured) instead of reading 500 rows of the (next_attempt_at, id) index (1.2 ms).
 * One ANALYZE samples the table in about 0.3 s at that size. A database user that does not own
 * the table gets a warning from PostgreSQL, not an error.
 */
async function refreshStatistics(ctx: BillingContext, created: number): Promise<void> {
  const threshold = ctx.config.billing.analyzeAfterRows;
  if (threshold === 0 || created < threshold) return;
  const started = Date.now();
  await ctx.database.rows(sql`analyze charges`);
  ctx.logger.info({ created, ms: Date.now() - started }, 'refreshed the charges table statistics');
}

/** Close the run's row through the run table; one already closed (marked interrupted) keeps its end. */
async function finishRun(
  ctx: BillingContext,
  runId: number,
  status: RunStatus,
  counts: RunCounts,
  error: string | null,
): Promise<void> {
  // run.completed is written with the run's end, in its statement (the outbox's rule).
  const rows =
    await ctx.database.rows(sql`with r as (update billing_runs set status = ${status}, counts = ${JSON.stringify(counts)}::jsonb,
    error = ${error}, finished_at = now() where id = ${runId} and ${mayBecome(runMachine, 'billing_runs.status', status)}
    returning id, status, trigger, as_of, dry_run, mandate_id, counts, error, started_at, finished_at
    ), ev as (
      insert into events (type, data)
      select 'run.completed', jsonb_build_object('id', id, 'status', status, 'trigger', trigger, 'asOf', rebill_iso(as_of),
             'dryRun', dry_run, 'mandateId', mandate_id, 'counts', counts, 'error', error,
             'startedAt', rebill_iso(started_at), 'finishedAt', rebill_iso(finished_at))
        from r
    )
    select id from r`);
  if (rows.length === 0)
    ctx.logger.warn(
      { runId, status },
      'run was already closed (marked interrupted meanwhile); its end stands',
    );
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
  const rows =
    await ctx.database.rows(sql`select c.mandate_id, c.cycle, c.kind, c.amount, c.currency, c.next_attempt_at, c.state
      from charges c join mandates m on m.id = c.mandate_id
     where c.state in ('pending', 'retry_scheduled') and c.next_attempt_at <= ${opts.asOf.toISOString()}::timestamptz
       and ${mandateReleasesCharges('m')} ${filter}
     order by c.next_attempt_at, c.id limit ${limit}`);
  for (const r of rows)
    out.push({
      mandateId: num(r.mandate_id),
      cycle: num(r.cycle),
      amount: num(r.amount),
      currency: String(r.currency),
      dueAt: date(r.next_attempt_at).toISOString(),
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
  const rows = await ctx.database.rows(sql`
    select a.refusal_code, a.advice_code, a.decision, count(*)::int as n, min(a.retry_at) as next_at
      from attempts a, billing_runs r
     where r.id = ${runId} and a.state = 'refused' and a.sent_at >= r.started_at
     group by 1, 2, 3 order by n desc`);
  return rows.map((r) => ({
    code: String(r.refusal_code ?? ''),
    adviceCode: r.advice_code === null ? null : String(r.advice_code),
    decision: String(r.decision ?? ''),
    count: num(r.n),
    nextAttemptAt: r.next_at ? date(r.next_at).toISOString() : null,
  }));
}
