import type { Database } from '../../db/client.ts';
import type { MandateStatus } from '../../domain/lifecycle.ts';
import type { AuthorizeResult } from '../../gateways/types.ts';
import type { BillingContext } from '../context.ts';
import { chargeStateFor } from '../dunning/refusal.ts';
import type { RetryDecision } from '../dunning/retry-policy.ts';
import {
  commitDeferredOutcome,
  commitRefusedOutcome,
  commitUnknownOutcome,
  type OpenAttempt,
  type RefusalInfo,
  type RefusalTarget,
} from '../sql/attempt-outcomes.ts';
import { type AuthorizedOutcome, commitAuthorizedOutcomes } from '../sql/authorized-outcomes.ts';
import { applyCredentialUpdate } from '../sql/credential-updates.ts';
import { transitionMandate } from '../sql/transitions.ts';
import type { AccountUpdate } from './account-updater.ts';
import { batcher } from './batcher.ts';
import type { ClaimedCharge } from './claim.ts';

export type { RefusalInfo } from '../sql/attempt-outcomes.ts';
export { RECURRING_RELS } from '../sql/authorized-outcomes.ts';

/**
 * An attempt's outcome, committed: what the answer means for the charge (and, for a refusal,
 * the dunning decision's mandate and credential). The statements are under src/billing/sql/
 * (`authorized-outcomes.ts`, `attempt-outcomes.ts`); here is what they are given.
 */

/** An attempt whose write-ahead row is committed: from here on it may be sent. */
export interface PlannedAttempt {
  charge: ClaimedCharge;
  attemptId: number;
  attemptNo: number;
  reference: string;
  /** `mit`: a Card Payments v7 merchant-initiated transaction (no link chain). */
  kind: 'recurring' | 'migrate' | 'liquido' | 'mit';
  linkHref: string | null;
  asOf: Date;
  /** The charge's state while this attempt is open: `attempting`, or `unknown` once reconciled. */
  chargeState: 'attempting' | 'unknown';
}

export interface SettlePlan {
  kind: 'settle' | 'partialSettle';
  reference: string;
  amount: number;
  currency: string;
  linkHref: string;
}

/**
 * The links an authorization's commit keeps, as (relation, href) pairs: every link returned,
 * and the next recurring link under `payments:recurringAuthorize` when the gateway gave it
 * outside the links; `nextRel` is the relation the credential moves to (null: none came back).
 */
function linkEntries(r: Extract<AuthorizeResult, { outcome: 'authorized' }>) {
  const entries = Object.entries(r.links);
  if (r.nextRecurringLink && !entries.some(([, h]) => h === r.nextRecurringLink)) {
    entries.push(['payments:recurringAuthorize', r.nextRecurringLink]);
  }
  const nextRel = r.nextRecurringLink
    ? (entries.find(([, h]) => h === r.nextRecurringLink)?.[0] ?? null)
    : null;
  return { entries, nextRel };
}

/** The audit reason of an authorization's commit. */
export function authorizedReason(
  p: PlannedAttempt,
  nextRel: string | null,
  opts: { recovered?: boolean },
): string {
  if (!opts.recovered) return `attempt ${p.reference} authorized`;
  // A v7 credential has no link to keep: its charges never chain.
  const keeps = nextRel === null && p.kind !== 'mit';
  return `attempt ${p.reference} authorized (recovered by query)${keeps ? '; no new recurring link returned, credential keeps its link' : ''}`;
}

/**
 * An authorization's outcome as the commit statement binds it. `erasePan`: a migration of a
 * legacy card whose PAN is erased with the credential's move to its new link.
 */
export function authorizedOutcome(
  p: PlannedAttempt,
  r: Extract<AuthorizeResult, { outcome: 'authorized' }>,
  settle: SettlePlan | null,
  opts: { recovered?: boolean; erasePan?: boolean } = {},
): AuthorizedOutcome {
  const { entries, nextRel } = linkEntries(r);
  return {
    chargeId: p.charge.id,
    fence: p.charge.fence,
    attemptId: p.attemptId,
    credentialId: p.charge.credentialId,
    fromState: p.chargeState,
    kind: p.kind,
    source: p.kind === 'migrate' ? 'migrate' : opts.recovered ? 'recovery' : 'authorize',
    linkHref: p.linkHref,
    httpStatus: r.httpStatus ?? null,
    correlationId: r.correlationId ?? null,
    latencyMs: r.latencyMs,
    schemeReference: r.schemeReference ?? null,
    authCode: r.authorizationCode ?? null,
    paymentId: r.paymentId,
    links: entries,
    nextRel,
    auditReason: authorizedReason(p, nextRel, opts),
    settle,
    migrated: opts.erasePan ? { mandateId: p.charge.mandateId, reference: p.reference } : undefined,
  };
}

/**
 * Commit an authorization: a batch of one through the statement the send loop's batcher
 * commits many with (`commitAuthorizedOutcomes`), so there is one text of it. The fencing token
 * guards it: a worker whose lease was taken over writes nothing. Returns the settle action id
 * when one was written, or null; false when fenced out.
 */
export async function commitAuthorized(
  database: Database,
  p: PlannedAttempt,
  r: Extract<AuthorizeResult, { outcome: 'authorized' }>,
  settle: SettlePlan | null,
  opts: { recovered?: boolean; erasePan?: boolean; accountUpdate?: AccountUpdate } = {},
): Promise<{ settleActionId: number | null } | false> {
  const outcome = authorizedOutcome(p, r, settle, opts);
  const au = opts.accountUpdate;
  const applied =
    au?.update === undefined && au?.closing === undefined
      ? await commitAuthorizedOutcomes(database, [outcome])
      : // The Account Updater's answer rides the outcome's commit: the credential's update, and a
        // card it says is finished moves the mandate to wait for a new one (its next charge
        // would only be refused).
        await database.db.transaction(async (tx) => {
          const done = await commitAuthorizedOutcomes(database, [outcome], tx);
          if (!done.has(p.charge.id)) return done;
          if (au.update !== undefined) await applyCredentialUpdate(database, tx, au.update);
          if (au.closing !== undefined)
            await transitionMandate(database, tx, {
              id: p.charge.mandateId,
              to: 'needs_new_credential',
              from: ['active'],
              reason: `Account Updater: ${au.closing}`,
            });
          return done;
        });
  const actionId = applied.get(p.charge.id);
  return actionId === undefined ? false : { settleActionId: actionId };
}

const open = (p: PlannedAttempt): OpenAttempt => ({
  chargeId: p.charge.id,
  fence: p.charge.fence,
  mandateId: p.charge.mandateId,
  attemptId: p.attemptId,
  attemptNo: p.attemptNo,
  reference: p.reference,
  kind: p.kind,
  linkHref: p.linkHref,
  chargeState: p.chargeState,
});

/** Record an unknown outcome: the attempt stays open and blocks the charge until reconciled. */
export function commitUnknown(
  database: Database,
  p: PlannedAttempt,
  info: {
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    latencyMs: number;
    reason: string;
  },
): Promise<boolean> {
  return commitUnknownOutcome(database, open(p), info);
}

/** What a refusal commit updates, fenced by the claim's token. */
export function refusalTarget(p: PlannedAttempt): RefusalTarget {
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
 * Commit a refusal (or an attempt that ended without a payment) with the dunning decision, in
 * one transaction: attempt, charge, and where the decision says so, mandate and credential.
 * Fenced out (the lease was taken over, or an operator moved the charge meanwhile): nothing is
 * written and the answer is false; the caller counts it and carries on.
 */
export function commitRefused(
  database: Database,
  p: RefusalTarget,
  info: RefusalInfo,
  decision: RetryDecision,
  mandateStatus: MandateStatus | null,
): Promise<boolean> {
  return commitRefusedOutcome(database, p, info, {
    chargeState: chargeStateFor(decision),
    action: decision.action,
    reason: decision.reason,
    retryAt: decision.action === 'retry' ? decision.retryAt : null,
    blocksCard: 'blockCard' in decision && decision.blockCard === true,
    mandateStatus,
  });
}

/**
 * An attempt that ended without reaching the issuer for a reason that is not the card's: it
 * never left the process (`not_sent`), or the gateway turned the request itself away for our
 * credentials, throttling, or a request it could not take (`error`). The charge goes back to
 * waiting as it was (pending for a first attempt, else retry_scheduled, its due time
 * unchanged), the mandate is untouched, and the run keeps the lease until it finishes, so the
 * charge is not picked up again in the same run but is in the next one.
 */
export function commitDeferred(
  database: Database,
  p: PlannedAttempt,
  info: {
    attemptState: 'error' | 'not_sent';
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    latencyMs?: number | undefined;
    reason: string;
    /** Only if the attempt was never launched (recovery's proof that it never left). */
    unlaunched?: boolean;
  },
): Promise<boolean> {
  return commitDeferredOutcome(database, open(p), info);
}

type Committed = { settleActionId: number | null } | false;

/**
 * The send loop's authorizations, group-committed (`batcher`) through the statement
 * `commitAuthorized` commits one with. Each sender still waits for its own charge's commit
 * before it sends the settle, so nothing is sent before the facts it depends on are committed.
 */
export function outcomeBatcher(ctx: BillingContext, opts: { maxItems?: number } = {}) {
  const b = batcher<AuthorizedOutcome, Committed>(
    ctx,
    'outcome',
    async (items) => {
      const applied = await commitAuthorizedOutcomes(ctx.database, items);
      return items.map((o) => {
        const actionId = applied.get(o.chargeId);
        return actionId === undefined ? false : { settleActionId: actionId };
      });
    },
    { maxItems: opts.maxItems ?? 64 },
  );
  return {
    /** Commit one authorization, as `commitAuthorized` would and with the same answer. */
    commit(
      p: PlannedAttempt,
      r: Extract<AuthorizeResult, { outcome: 'authorized' }>,
      settle: SettlePlan | null,
      single: { erasePan?: boolean } = {},
    ): Promise<Committed> {
      return b.add(authorizedOutcome(p, r, settle, single));
    },
    close: b.close,
  };
}
export type OutcomeBatcher = ReturnType<typeof outcomeBatcher>;
