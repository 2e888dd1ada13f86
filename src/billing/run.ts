import { sql } from 'drizzle-orm';
import { ConfigError } from '../config.ts';
import { num } from '../db/values.ts';
import { RebillError, ValidationError } from '../errors.ts';
import { ConnectionError, GatewayError, RequestRejectedError } from '../gateways/errors.ts';
import type { AuthorizeResult, Instrument } from '../gateways/types.ts';
import { decryptSecret } from '../legacy/crypto.ts';
import {
  chargeStateFor,
  commitAuthorized,
  commitDeferred,
  commitRefused,
  commitUnknown,
  instrumentFor,
  type PlannedAttempt,
  writeAhead,
} from './attempt.ts';
import { type ClaimedCharge, claimDueCharges, loadCardHistory } from './claim.ts';
import type { BillingContext } from './context.ts';
import { decideRefusal, mandateStatusFor } from './decide.ts';
import { releaseLeases, renewLease, transitionCharge, transitionMandate } from './door.ts';
import { dueMandates, materializeDueCharges } from './materialize.ts';
import { reconcileUnknown } from './reconcile.ts';
import { transactionReference } from './references.ts';
import type { RetryDecision } from './retry-policy.ts';
import { followSettlements, planSettle, resumeSettlements, sendSettle } from './settle.ts';

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

export interface RunCounts {
  due: number;
  created: number;
  attempted: number;
  authorized: number;
  refused: number;
  unknown: number;
  errors: number;
  /** Outcomes not committed because another worker or an operator took the charge over. */
  lostLeases: number;
  /** Cycles recorded as skipped: more than REBILL_MAX_CATCH_UP_CYCLES behind. */
  missedCycles: number;
  skipped: number;
  settleRequested: number;
  settled: number;
  reconciled: number;
  needsNewCredential: number;
  retryScheduled: number;
  stopped: number;
  failed: number;
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
    cycle: number;
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

const zero = (): RunCounts => ({
  due: 0,
  created: 0,
  attempted: 0,
  authorized: 0,
  refused: 0,
  unknown: 0,
  errors: 0,
  lostLeases: 0,
  missedCycles: 0,
  skipped: 0,
  settleRequested: 0,
  settled: 0,
  reconciled: 0,
  needsNewCredential: 0,
  retryScheduled: 0,
  stopped: 0,
  failed: 0,
});

/** Check that a mandate filter names a real mandate, so a typo is an error, not an empty run. */
export async function assertMandateExists(ctx: BillingContext, mandateId: number): Promise<void> {
  const rows = await ctx.database.rows(sql`select 1 from mandates where id = ${mandateId}`);
  if (rows.length === 0) throw new RebillError(`mandate ${mandateId} not found`, 'not_found');
}

export async function createRun(ctx: BillingContext, opts: RunOptions): Promise<number> {
  const rows =
    await ctx.database.rows(sql`insert into billing_runs (trigger, as_of, dry_run, mandate_id, "limit", owner)
    values (${opts.trigger}, ${opts.asOf.toISOString()}::timestamptz, ${opts.dryRun ?? false}, ${opts.mandateId ?? null},
            ${opts.limit ?? null}, ${ctx.workerId}) returning id`);
  return num(rows[0]?.id);
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
  const book: RunBook = { runId, counts, held: new Map(), errors: [] };
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
    if (opts.dryRun) {
      const out = report('completed');
      out.forecast = await forecast(ctx, opts);
      counts.due = out.forecast.length;
      await finishRun(ctx, runId, 'completed', counts, null);
      return out;
    }
    const batch = ctx.config.billing.batchSize;
    const rec = await reconcileUnknown(ctx, { asOf: opts.asOf, limit: 10_000, mandateId: opts.mandateId });
    counts.reconciled = rec.checked;
    counts.settleRequested += await resumeSettlements(ctx, { limit: 10_000, mandateId: opts.mandateId });
    const mat = await materializeDueCharges(ctx.database, opts.asOf, {
      batchSize: batch,
      mandateId: opts.mandateId,
      maxCatchUp: ctx.config.billing.maxCatchUpCycles,
    });
    counts.created = mat.created;
    counts.missedCycles = mat.skipped;
    await refreshStatistics(ctx, mat.created);
    await sendDue(ctx, opts, book);
    if (opts.followSettlements) {
      const f = await followSettlements(ctx, { limit: 10_000 });
      counts.settled += f.settled;
    }
    counts.errors += rec.errors;
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
    await finishRun(ctx, runId, 'failed', counts, (err as Error).message).catch(() => {});
    throw err;
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

async function finishRun(
  ctx: BillingContext,
  runId: number,
  status: string,
  counts: RunCounts,
  error: string | null,
): Promise<void> {
  await ctx.database.rows(sql`update billing_runs set status = ${status}, counts = ${JSON.stringify(counts)}::jsonb,
    error = ${error}, finished_at = now() where id = ${runId}`);
}

/** What a run at `asOf` would charge, without writing or sending anything. */
async function forecast(ctx: BillingContext, opts: RunOptions): Promise<NonNullable<RunReport['forecast']>> {
  const limit = opts.limit ?? 100_000;
  const out: NonNullable<RunReport['forecast']> = [];
  for (const m of await dueMandates(ctx.database, opts.asOf, { mandateId: opts.mandateId, limit })) {
    out.push({
      mandateId: m.id,
      cycle: m.nextCycle,
      amount: m.amount,
      currency: m.currency,
      dueAt: m.nextDueAt.toISOString(),
      kind: 'new cycle',
    });
  }
  const filter = opts.mandateId === undefined ? sql`` : sql`and mandate_id = ${opts.mandateId}`;
  const rows =
    await ctx.database.rows(sql`select mandate_id, cycle, amount, currency, next_attempt_at, state from charges
    where state in ('pending', 'retry_scheduled') and next_attempt_at <= ${opts.asOf.toISOString()}::timestamptz ${filter}
    order by next_attempt_at limit ${limit}`);
  for (const r of rows) {
    out.push({
      mandateId: num(r.mandate_id),
      cycle: num(r.cycle),
      amount: num(r.amount),
      currency: String(r.currency),
      dueAt: new Date(
        String(r.next_attempt_at)
          .replace(' ', 'T')
          .replace(/([+-]\d\d)$/, '$1:00'),
      ).toISOString(),
      kind: r.state === 'pending' ? 'pending charge' : 'retry',
    });
  }
  return out.slice(0, limit);
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
    nextAttemptAt: r.next_at
      ? new Date(
          String(r.next_at)
            .replace(' ', 'T')
            .replace(/([+-]\d\d)$/, '$1:00'),
        ).toISOString()
      : null,
  }));
}

function count(counts: RunCounts, d: RetryDecision): void {
  if (d.action === 'retry') counts.retryScheduled++;
  else if (d.action === 'needs_new_credential') counts.needsNewCredential++;
  else if (d.action === 'stop') counts.stopped++;
  else counts.failed++;
}

/** What a run keeps while it goes: its counts, the leases it holds on deferred charges, errors. */
interface RunBook {
  runId: number;
  counts: RunCounts;
  /** Charges deferred in this run (id -> fence): leased until the run ends, so not retried in it. */
  held: Map<number, number>;
  /** The first distinct error messages, for the report. */
  errors: string[];
}

function noteError(book: RunBook, message: string): void {
  book.counts.errors++;
  if (book.errors.length < 10 && !book.errors.includes(message)) book.errors.push(message);
}

/** A decision taken before anything is sent (expired card, blocked card, ledger full). */
async function commitWithoutAttempt(
  ctx: BillingContext,
  c: ClaimedCharge,
  decision: RetryDecision,
  book: RunBook,
) {
  const state = chargeStateFor(decision);
  const mandateStatus = mandateStatusFor(decision);
  const retryAt = decision.action === 'retry' ? decision.retryAt.toISOString() : null;
  const moved = await ctx.database.db.transaction(async (tx) => {
    const r = await transitionCharge(ctx.database, tx, {
      id: c.id,
      to: state,
      fence: c.fence,
      release: true,
      orSame: true,
      reason: `not sent: ${decision.reason}`,
      runId: book.runId,
      set: [sql`next_attempt_at = coalesce(${retryAt}::timestamptz, next_attempt_at)`],
    });
    if (!r.ok) return false;
    if (mandateStatus) {
      await transitionMandate(ctx.database, tx, {
        id: c.mandateId,
        to: mandateStatus,
        from: ['active'],
        reason: decision.reason,
        runId: book.runId,
      });
    }
    return true;
  });
  if (!moved) {
    book.counts.lostLeases++;
    return;
  }
  book.counts.skipped++;
  count(book.counts, decision);
}

/** An attempt written ahead and ready to send, with the instrument it goes out with. */
interface Ready {
  attempt: PlannedAttempt;
  instrument: Instrument;
}

/**
 * Claim, write ahead and send every due charge as a pipeline: `concurrency` senders take groups
 * from a queue, and whenever fewer than `concurrency` groups are waiting the next batch is
 * claimed and written ahead while the senders keep going. The gateway never idles between
 * batches, and senders do not start and finish in lockstep (the two lanes this replaced did:
 * both drained at once, which left the event loop with bursts of work and the gateway idle).
 * A claimed batch waits at most about one batch's worth of sends before it goes out, and a
 * sender checks the lease still has its margin before each request. Memory holds at most about
 * two batches. When a claim fails or the run is stopped, no more is claimed, what is already
 * written ahead is still sent, and a claim error is thrown once the senders are done.
 */
async function sendDue(ctx: BillingContext, opts: RunOptions, book: RunBook): Promise<void> {
  const { counts, runId } = book;
  const concurrency = ctx.config.billing.concurrency;
  const batchSize = ctx.config.billing.batchSize;
  // PGlite has one connection: prefetching would only queue the claim behind the commits.
  const lowWater = ctx.database.concurrent ? concurrency : 0;
  const queue: Ready[][] = [];
  let remaining = opts.limit ?? Number.POSITIVE_INFINITY;
  let exhausted = false;
  let failure: unknown;
  let feeding: Promise<void> | null = null;
  let lastProgressWrite = Date.now();

  const feed = async () => {
    const limit = Math.min(batchSize, remaining);
    remaining -= limit;
    const claimed = await claimDueCharges(ctx.database, {
      asOf: opts.asOf,
      owner: ctx.workerId,
      leaseSeconds: ctx.config.billing.leaseSeconds,
      limit,
      mandateId: opts.mandateId,
    });
    remaining += limit - claimed.length;
    if (claimed.length === 0 || remaining <= 0) exhausted = true;
    if (claimed.length === 0) return;
    counts.due += claimed.length;
    queue.push(...(await prepareBatch(ctx, claimed, opts.asOf, book)));
    if (Date.now() - lastProgressWrite > 1000) {
      lastProgressWrite = Date.now();
      await ctx.database.rows(
        sql`update billing_runs set counts = ${JSON.stringify(counts)}::jsonb where id = ${runId}`,
      );
    }
  };
  const stopping = () => exhausted || failure !== undefined || opts.signal?.aborted === true;
  const refill = () => {
    if (feeding || stopping() || queue.length > lowWater) return;
    feeding = feed()
      .catch((err) => {
        failure = err;
      })
      .finally(() => {
        feeding = null;
      });
  };
  const sender = async () => {
    for (;;) {
      refill();
      const group = queue.shift();
      if (group) {
        // Written ahead already: sent even when claiming failed or the run is stopping.
        await sendGroup(ctx, group, book, () => opts.onProgress?.(counts));
        continue;
      }
      if (feeding) {
        await feeding;
        continue;
      }
      return;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, sender));
  if (failure !== undefined) throw failure;
}

/** The card data of a legacy credential, or a ConfigError naming what is wrong with the key. */
function decryptor(ctx: BillingContext, credentialId: number) {
  return (blob: string): string => {
    const key = ctx.config.encryptionKey;
    if (!key)
      throw new ConfigError(
        'REBILL_ENCRYPTION_KEY',
        `is not set: cannot read the stored card data of credential ${credentialId}`,
      );
    try {
      return decryptSecret(blob, [key]);
    } catch (err) {
      throw new ConfigError(
        'REBILL_ENCRYPTION_KEY',
        `cannot decrypt the stored card data of credential ${credentialId}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  };
}

/**
 * Everything before the first request of a claimed batch: the retry ledger of the cards that
 * need it, the checks that stop a charge before it is sent, and the write-ahead of the rest in
 * one statement. Returns the attempts grouped by credential: charges of one credential go out
 * one after another, each on the link the previous one returned, so the newest link is always
 * the one used, and mandates sharing a legacy card share the one chain its first
 * migrateRecurring starts. Different credentials are sent in parallel.
 */
async function prepareBatch(
  ctx: BillingContext,
  claimed: ClaimedCharge[],
  asOf: Date,
  book: RunBook,
): Promise<Ready[][]> {
  const retries = claimed.filter((c) => c.attemptCount > 0 || c.expiryYear !== null);
  const histories = await loadCardHistory(
    ctx.database,
    [...new Set(retries.map((c) => c.credentialId))],
    asOf,
  );
  const toSend: {
    charge: ClaimedCharge;
    reference: string;
    kind: PlannedAttempt['kind'];
    linkHref: string | null;
  }[] = [];
  const instruments = new Map<number, Instrument>();
  for (const c of claimed) {
    if (c.credentialStatus !== 'active') {
      await commitWithoutAttempt(
        ctx,
        c,
        { action: 'needs_new_credential', reason: `credential ${c.credentialId} is ${c.credentialStatus}` },
        book,
      );
      continue;
    }
    const attempts = histories.get(c.credentialId) ?? [];
    const refusedAt = attempts
      .filter((a) => a.chargeId === c.id && (a.state === 'refused' || a.state === 'not_found'))
      .map((a) => a.at.getTime());
    const check = ctx.policy.beforeSend({
      now: asOf,
      expiryMonth: c.expiryMonth,
      expiryYear: c.expiryYear,
      ledger: { attempts, blocked: null },
      isRetry: c.attemptCount > 0,
      intent: c.intent,
      firstRefusedAt: refusedAt.length > 0 ? new Date(Math.min(...refusedAt)) : null,
    });
    if (!check.ok) {
      await commitWithoutAttempt(ctx, c, check.decision, book);
      continue;
    }
    let inst: ReturnType<typeof instrumentFor>;
    try {
      inst = instrumentFor(c, decryptor(ctx, c.credentialId));
    } catch (err) {
      inst = { error: (err as Error).message };
    }
    if ('error' in inst) {
      // Not the card's answer (a key that is missing or wrong, a credential with nothing left
      // to send): nothing is sent, the charge and the mandate stay as they are, the run says so.
      ctx.logger.error({ chargeId: c.id, credentialId: c.credentialId, err: inst.error }, 'charge not sent');
      noteError(book, inst.error);
      book.held.set(c.id, c.fence);
      continue;
    }
    instruments.set(c.id, inst.instrument);
    toSend.push({
      charge: c,
      reference: transactionReference(
        ctx.config.billing.referencePrefix,
        c.mandateId,
        c.cycle,
        c.attemptCount + 1,
      ),
      kind: inst.kind,
      linkHref: inst.linkHref,
    });
  }
  const planned = await writeAhead(ctx.database, toSend, asOf);
  book.counts.lostLeases += toSend.length - planned.length;
  for (const p of planned)
    await ctx.faults?.hit('after-write-ahead', { chargeId: p.charge.id, reference: p.reference });
  const groups = new Map<number, Ready[]>();
  for (const p of planned) {
    const instrument = instruments.get(p.charge.id);
    if (!instrument) continue;
    const g = groups.get(p.charge.credentialId);
    if (g) g.push({ attempt: p, instrument });
    else groups.set(p.charge.credentialId, [{ attempt: p, instrument }]);
  }
  return [...groups.values()];
}

/** Send a credential's attempts in turn, each on the newest link the one before returned. */
async function sendGroup(
  ctx: BillingContext,
  group: Ready[],
  book: RunBook,
  progress: () => void,
): Promise<void> {
  let newest: string | undefined;
  for (const { attempt: p, instrument: first } of group) {
    let instrument = first;
    if (newest !== undefined && instrument.type !== 'liquido/cardId') {
      instrument = { type: 'link', href: newest };
      p.kind = 'recurring';
      p.linkHref = newest;
    }
    const next = await sendAttempt(ctx, p, instrument, book);
    if (next) newest = next;
    progress();
  }
}

/**
 * How long a lease must still run for a sender to start a request on it: the request's own
 * timeout and a few seconds to commit the outcome, but never more than half the lease.
 */
function leaseMarginMs(ctx: BillingContext): number {
  return Math.min(ctx.config.billing.leaseSeconds * 500, ctx.config.worldpay.requestTimeoutMs + 5_000);
}

/** Send one attempt and commit its outcome; returns the recurring link it produced, if any. */
async function sendAttempt(
  ctx: BillingContext,
  p: PlannedAttempt,
  instrument: Instrument,
  book: RunBook,
): Promise<string | undefined> {
  const { counts } = book;
  const c = p.charge;
  const log = ctx.logger.child({ chargeId: c.id, mandateId: c.mandateId, reference: p.reference });
  if (c.leaseDeadline !== undefined && Date.now() > c.leaseDeadline - leaseMarginMs(ctx)) {
    // Too little lease left to send and commit before another worker may take the charge
    // over: renew it first (one statement, only on a slow run), or leave it if it is gone.
    const renewed = await renewLease(ctx.database, {
      chargeId: c.id,
      owner: ctx.workerId,
      fence: c.fence,
      leaseSeconds: ctx.config.billing.leaseSeconds,
    });
    if (renewed === null) {
      lostLease(ctx, book, log);
      return undefined;
    }
    c.leaseDeadline = renewed;
  }
  counts.attempted++;
  let result: AuthorizeResult;
  try {
    result = await ctx.gateway(c.gateway).authorize({
      reference: p.reference,
      instrument,
      value: { amount: c.amount, currency: c.currency },
      entity: c.entity,
      narrative: c.narrative,
      intent: c.intent,
      schemeReference: c.schemeReference ?? undefined,
      customerRef: c.customerRef,
    });
  } catch (err) {
    await recordRejected(ctx, p, err, book);
    return undefined;
  }
  ctx.metrics?.gatewayLatency('authorize', result.latencyMs / 1000);
  await ctx.faults?.hit('after-authorize', { chargeId: c.id, reference: p.reference });
  if (result.outcome === 'unknown') {
    if (result.reachedServer === false) {
      // Refused connection, client closed for shutdown: the request never left this process.
      await defer(ctx, p, book, 'not_sent', `not sent: ${result.reason}`);
      return undefined;
    }
    counts.unknown++;
    ctx.metrics?.attempt('unknown', c.gateway);
    log.warn({ correlationId: result.correlationId, reason: result.reason }, 'authorization outcome unknown');
    if (!(await commitUnknown(ctx.database, p, result))) counts.lostLeases++;
    return undefined;
  }
  if (result.outcome === 'refused') {
    counts.refused++;
    ctx.metrics?.attempt('refused', c.gateway, result.code);
    const { decision, mandateStatus } = await decideRefusal(
      ctx,
      c,
      { code: result.code, adviceCode: result.adviceCode ?? null },
      p.asOf,
    );
    log.info(
      {
        correlationId: result.correlationId,
        code: result.code,
        adviceCode: result.adviceCode,
        decision: decision.action,
      },
      decision.reason,
    );
    const committed = await commitRefused(
      ctx.database,
      refusalTarget(p),
      {
        attemptState: 'refused',
        code: result.code,
        description: result.description,
        adviceCode: result.adviceCode,
        httpStatus: result.httpStatus,
        correlationId: result.correlationId,
        latencyMs: result.latencyMs,
      },
      decision,
      mandateStatus,
    );
    if (committed) count(counts, decision);
    else lostLease(ctx, book, log);
    return undefined;
  }
  counts.authorized++;
  ctx.metrics?.attempt('authorized', c.gateway);
  const settle = planSettle(c, p.reference, result.links, result.paymentId);
  const committed = await commitAuthorized(ctx.database, p, result, settle, {
    erasePan: p.kind === 'migrate' && c.encryptedPan !== null,
  });
  if (!committed) {
    lostLease(ctx, book, log);
    return undefined;
  }
  log.debug({ correlationId: result.correlationId }, 'authorized');
  await ctx.faults?.hit('after-outcome', { chargeId: c.id, reference: p.reference });
  if (settle && committed.settleActionId !== null) {
    const out = await sendSettle(ctx, {
      gateway: c.gateway,
      chargeId: c.id,
      fence: c.fence,
      attemptId: p.attemptId,
      actionId: committed.settleActionId,
      plan: settle,
      paymentId: result.paymentId,
      links: result.links,
    });
    if (out === 'accepted') counts.settleRequested++;
    await ctx.faults?.hit('after-settle-request', { chargeId: c.id, reference: p.reference });
  }
  return result.nextRecurringLink;
}

/** Another worker owns the charge now (the lease expired and was taken, or an operator acted). */
function lostLease(ctx: BillingContext, book: RunBook, log: BillingContext['logger']): void {
  book.counts.lostLeases++;
  log.warn('lease lost before the outcome was committed; another worker owns this charge now');
  ctx.metrics?.leaseTakeover();
}

/** What a refusal commit updates, fenced by the claim's token. */
function refusalTarget(p: PlannedAttempt) {
  const c = p.charge;
  return {
    chargeId: c.id,
    fence: c.fence,
    attemptId: p.attemptId,
    reference: p.reference,
    mandateId: c.mandateId,
    credentialId: c.credentialId,
    chargeState: p.chargeState,
  };
}

/**
 * Put a written-ahead charge back to waiting, keep its lease for the rest of the run, count the
 * error. A request that never left is not counted as attempted.
 */
async function defer(
  ctx: BillingContext,
  p: PlannedAttempt,
  book: RunBook,
  attemptState: 'error' | 'not_sent',
  reason: string,
  info: {
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    latencyMs?: number | undefined;
  } = {},
): Promise<void> {
  noteError(book, reason);
  if (attemptState === 'not_sent') book.counts.attempted--;
  if (await commitDeferred(ctx.database, p, { attemptState, reason, ...info })) {
    book.held.set(p.charge.id, p.charge.fence);
  } else book.counts.lostLeases++;
}

/**
 * The request ended in an error instead of an answer about the card. The rule: only the
 * gateway's answer about this request can change business state, so
 *  - the gateway turning the request itself away (a 4xx that is not about our credentials or
 *    pace) stops the charge, as before: resending the same request cannot succeed;
 *  - everything else (our credentials or pace turned away, our own validation, configuration,
 *    a bug) defers the attempt: the charge waits as it was, the mandate is untouched, and the
 *    run finishes `completed_with_errors`.
 */
async function recordRejected(
  ctx: BillingContext,
  p: PlannedAttempt,
  err: unknown,
  book: RunBook,
): Promise<void> {
  const c = p.charge;
  const e = err instanceof GatewayError ? err : undefined;
  const message = err instanceof Error ? err.message : String(err);
  ctx.logger.error(
    {
      chargeId: c.id,
      reference: p.reference,
      err: message,
      errorClass: err instanceof Error ? err.name : typeof err,
      httpStatus: e?.httpStatus,
      correlationId: e?.correlationId,
    },
    'authorization request rejected',
  );
  const info = { httpStatus: e?.httpStatus, correlationId: e?.correlationId, latencyMs: e?.latencyMs };
  if (err instanceof ConnectionError && !err.reachedServer) {
    await defer(ctx, p, book, 'not_sent', `not sent: ${message}`, info);
    return;
  }
  if (!(err instanceof RequestRejectedError) || err.aboutUs) {
    const what =
      err instanceof RequestRejectedError
        ? `gateway turned the request away (${err.status}): ${message}`
        : err instanceof ValidationError
          ? `invalid request: ${message}`
          : `${err instanceof Error ? err.name : 'error'}: ${message}`;
    await defer(ctx, p, book, 'error', what, info);
    return;
  }
  noteError(book, `gateway rejected the request (${err.status}): ${message}`);
  const decision: RetryDecision = { action: 'stop', reason: `gateway rejected the request: ${message}` };
  const committed = await commitRefused(
    ctx.database,
    refusalTarget(p),
    {
      attemptState: 'error',
      code: null,
      httpStatus: info.httpStatus,
      correlationId: info.correlationId,
      latencyMs: info.latencyMs,
      error: message,
    },
    decision,
    null,
  );
  if (committed) count(book.counts, decision);
  else book.counts.lostLeases++;
}
