import { ValidationError } from '../../errors.ts';
import { ConnectionError, GatewayError, RequestRejectedError } from '../../gateways/errors.ts';
import type { AuthorizeResult, Instrument } from '../../gateways/types.ts';
import type { BillingContext } from '../context.ts';
import { decideRefusal, mandateStatusFor } from '../dunning/refusal.ts';
import type { RetryDecision } from '../dunning/retry-policy.ts';
import { count, noteError, type RunTally } from '../run/tally.ts';
import { renewLease } from '../sql/transitions.ts';
import { type Launch, launchAttempts } from '../sql/write-ahead.ts';
import { accountUpdateOf, closingDecision } from './account-updater.ts';
import {
  commitAuthorized,
  commitDeferred,
  commitRefused,
  commitUnknown,
  type PlannedAttempt,
  refusalTarget,
} from './outcome.ts';
import type { Ready } from './prepare.ts';
import { adoptUsedReference } from './recover.ts';
import { planSettle, sendSettle } from './settle.ts';

/**
 * Where a credential stands before its group is sent, when the claim's reading may be old (an
 * earlier group of the run sent charges of it since): the link to go on, and what blocked the card.
 */
export interface GroupStart {
  newest?: string | undefined;
  blocked?: string | undefined;
}

/**
 * Send a credential's attempts in turn, each on the newest link the one before returned, the
 * first on `start.newest` when given (else the link the claim read).
 */
export async function sendGroup(
  ctx: BillingContext,
  group: Ready[],
  book: RunTally,
  progress: () => void,
  start: GroupStart = {},
): Promise<void> {
  let newest = start.newest;
  let blocked = start.blocked;
  for (const { attempt: p, instrument: first } of group) {
    if (blocked !== undefined) {
      // An earlier refusal in this group blocked the card: what is written ahead behind it is
      // not sent; it waits for a new card like any charge of a blocked credential.
      await notSentCardBlocked(ctx, p, book, blocked);
      progress();
      continue;
    }
    let instrument = first;
    // A v7 credential has no chain: each of its charges goes to the one endpoint as it is.
    if (newest !== undefined && instrument.type !== 'liquido/cardId' && instrument.type !== 'mit') {
      instrument = { type: 'link', href: newest };
      p.kind = 'recurring';
      p.linkHref = newest;
    }
    const out = await sendAttempt(ctx, p, instrument, book);
    if (out.next) newest = out.next;
    blocked = out.cardBlocked;
    progress();
  }
}

async function notSentCardBlocked(ctx: BillingContext, p: PlannedAttempt, book: RunTally, why: string) {
  const decision: RetryDecision = {
    action: 'needs_new_credential',
    reason: `not sent: the card was blocked by ${why} earlier in this run`,
  };
  const committed = await commitRefused(
    ctx.database,
    refusalTarget(p),
    { attemptState: 'not_sent', code: null, error: decision.reason },
    decision,
    null,
  );
  if (committed) {
    book.counts.skipped++;
    count(book.counts, decision);
  } else book.counts.lostLeases++;
}

/**
 * How long a lease must still run for a sender to start a request on it: the request's own
 * timeout and a few seconds to commit the outcome, but never more than half the lease.
 */
function leaseMarginMs(ctx: BillingContext): number {
  return Math.min(ctx.config.billing.leaseSeconds * 500, ctx.config.worldpay.requestTimeoutMs + 5_000);
}

/** Send one attempt and commit its outcome: the recurring link it produced, and whether its refusal blocked the card. */
async function sendAttempt(
  ctx: BillingContext,
  p: PlannedAttempt,
  instrument: Instrument,
  book: RunTally,
): Promise<{ next?: string | undefined; cardBlocked?: string | undefined }> {
  const { counts } = book;
  const c = p.charge;
  // The charge's logger is made when something is logged, not for every charge sent.
  let child: BillingContext['logger'] | undefined;
  const log = () =>
    (child ??= ctx.logger.child({ chargeId: c.id, mandateId: c.mandateId, reference: p.reference }));
  if (c.leaseDeadline !== undefined && Date.now() > c.leaseDeadline - leaseMarginMs(ctx)) {
    // Too little lease left to send and commit before another worker may take the charge
    // over: renew it first (one statement, only on a slow run), or leave it if it is gone.
    const renewed = await renewLease(ctx.database, {
      chargeId: c.id,
      credentialId: c.credentialId,
      owner: ctx.workerId,
      holder: book.holder,
      fence: c.fence,
      leaseSeconds: ctx.config.billing.leaseSeconds,
    });
    if (renewed === null) {
      lostLease(ctx, book, log());
      return {};
    }
    c.leaseDeadline = renewed;
  }
  const item = { attemptId: p.attemptId, chargeId: c.id, fence: c.fence };
  const launch: Launch | undefined = book.launches
    ? await book.launches.add(item)
    : (await launchAttempts(ctx.database, [item]))[0];
  if (launch === undefined || launch === 'fenced') {
    lostLease(ctx, book, log());
    return {};
  }
  await ctx.faults?.hit('after-launch', { chargeId: c.id, reference: p.reference });
  // Read last, with nothing awaited between it and the request: a pause or cancel committed
  // since the launch read the mandate wins over the queued attempt.
  const held = launch === 'launched' ? book.holds?.heldAs(c.mandateId) : launch.held;
  if (held !== undefined) {
    await notSentHeld(ctx, p, book, held);
    return {};
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
    return {};
  }
  ctx.metrics?.gatewayLatency('authorize', result.latencyMs / 1000);
  await ctx.faults?.hit('after-authorize', { chargeId: c.id, reference: p.reference });
  if (result.outcome === 'unknown') {
    if (result.reachedServer === false) {
      // Refused connection, client closed for shutdown: the request never left this process.
      await defer(ctx, p, book, 'not_sent', `not sent: ${result.reason}`);
      return {};
    }
    counts.unknown++;
    ctx.metrics?.attempt('unknown', c.gateway);
    log().warn(
      { correlationId: result.correlationId, reason: result.reason },
      'authorization outcome unknown',
    );
    if (!(await commitUnknown(ctx.database, p, result))) counts.lostLeases++;
    return {};
  }
  // Worldpay's Account Updater (v7, when on): applied with the outcome, in its transaction.
  const updated = accountUpdateOf(ctx, p, result.updatedInstrument);
  if (updated.update !== undefined || updated.closing !== undefined) {
    log().info(
      { accountUpdaterMessage: updated.update?.message ?? updated.closing, outcome: result.outcome },
      'Account Updater answered',
    );
  }
  if (result.outcome === 'refused') {
    counts.refused++;
    ctx.metrics?.attempt('refused', c.gateway, result.code);
    // A card the updater says is closed (or whose holder must be asked) is not retried: the
    // mandate waits for new card details.
    const { decision, mandateStatus } =
      updated.closing !== undefined
        ? { decision: closingDecision(updated.closing), mandateStatus: 'needs_new_credential' as const }
        : await decideRefusal(ctx, c, { code: result.code, adviceCode: result.adviceCode ?? null }, p.asOf);
    log().info(
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
        accountUpdate: updated.update,
      },
      decision,
      mandateStatus,
    );
    if (!committed) {
      lostLease(ctx, book, log());
      return {};
    }
    count(counts, decision);
    return 'blockCard' in decision && decision.blockCard ? { cardBlocked: `${p.reference}'s refusal` } : {};
  }
  counts.authorized++;
  ctx.metrics?.attempt('authorized', c.gateway);
  const settle = planSettle(c, p.reference, result.links, result.paymentId);
  const erasePan = p.kind === 'migrate' && c.encryptedPan !== null;
  // An answer with an update commits on its own (a transaction with the credential's update);
  // every other one through the run's batch.
  const committed =
    updated.update !== undefined || updated.closing !== undefined
      ? await commitAuthorized(ctx.database, p, result, settle, { accountUpdate: updated })
      : book.outcomes
        ? await book.outcomes.commit(p, result, settle, { erasePan })
        : await commitAuthorized(ctx.database, p, result, settle, { erasePan });
  if (!committed) {
    lostLease(ctx, book, log());
    return {};
  }
  if (ctx.logger.isLevelEnabled('debug')) log().debug({ correlationId: result.correlationId }, 'authorized');
  await ctx.faults?.hit('after-outcome', { chargeId: c.id, reference: p.reference });
  const actionId = committed.settleActionId;
  if (settle && actionId !== null) {
    const settling = (async () => {
      const out = await sendSettle(ctx, {
        gateway: c.gateway,
        chargeId: c.id,
        fence: c.fence,
        attemptId: p.attemptId,
        actionId,
        plan: settle,
        paymentId: result.paymentId,
        links: result.links,
        batch: book.acceptances,
      });
      if (out === 'accepted') counts.settleRequested++;
      await ctx.faults?.hit('after-settle-request', { chargeId: c.id, reference: p.reference });
    })();
    // Its write-ahead row is committed: the next charge does not wait for its answer.
    if (book.settles) await book.settles.add(settling);
    else await settling;
  }
  return { next: result.nextRecurringLink };
}

/**
 * The mandate was paused or cancelled after this attempt was written ahead, before its request
 * left: nothing is sent. The attempt is `not_sent` (in no ledger, no retry delay); the charge
 * ends cancelled with a cancelled mandate, or waits as it was for a paused one to resume.
 */
async function notSentHeld(ctx: BillingContext, p: PlannedAttempt, book: RunTally, status: string) {
  const reason = `not sent: its mandate was ${status} before the request went out`;
  if (await commitDeferred(ctx.database, p, { attemptState: 'not_sent', reason })) {
    book.counts.skipped++;
    book.held.set(p.charge.id, p.charge.fence);
  } else book.counts.lostLeases++;
}

/** Another worker owns the charge now (the lease expired and was taken, or an operator acted). */
function lostLease(ctx: BillingContext, book: RunTally, log: BillingContext['logger']): void {
  book.counts.lostLeases++;
  log.warn('lease lost before the outcome was committed; another worker owns this charge now');
  ctx.metrics?.leaseTakeover();
}

/**
 * Put a written-ahead charge back to waiting, keep its lease for the rest of the run, count the
 * error. A request that never left is not counted as attempted.
 */
async function defer(
  ctx: BillingContext,
  p: PlannedAttempt,
  book: RunTally,
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
 *  - the gateway saying the reference was already used adopts what it has under it
 *    (`adoptUsedReference`): an earlier send of this very attempt that the database forgot;
 *  - the gateway turning the request itself away (any other 4xx that is not about our
 *    credentials or pace) stops the charge, as before: resending the same request cannot succeed;
 *  - everything else (our credentials or pace turned away, our own validation, configuration,
 *    a bug) defers the attempt: the charge waits as it was, the mandate is untouched, and the
 *    run finishes `completed_with_errors`.
 */
async function recordRejected(
  ctx: BillingContext,
  p: PlannedAttempt,
  err: unknown,
  book: RunTally,
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
      httpStatus: e?.status,
      correlationId: e?.correlationId,
    },
    'authorization request rejected',
  );
  const info = { httpStatus: e?.status, correlationId: e?.correlationId, latencyMs: e?.latencyMs };
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
  if (err.duplicateReference) {
    // Not an answer about the card: the gateway has this reference from a send this database
    // forgot (a restore, a lossy failover). What it knows of it is the outcome.
    const adopted = await adoptUsedReference(ctx, p);
    book.counts.adopted++;
    if (adopted === 'authorized') book.counts.authorized++;
    else if (adopted === 'refused') book.counts.refused++;
    else book.counts.unknown++;
    return;
  }
  // Not an error of the run (nothing waits to be tried again): the charge and its mandate are
  // stopped, with their events, as a refusal no retry can fix would stop them.
  const decision: RetryDecision = {
    action: 'stop',
    reason: `gateway rejected the request (${err.status}): ${message}`,
  };
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
    mandateStatusFor(decision),
  );
  if (committed) count(book.counts, decision);
  else book.counts.lostLeases++;
}
