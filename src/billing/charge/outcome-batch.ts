import { errorMessage } from '../../errors.ts';
import type { AuthorizeResult } from '../../gateways/types.ts';
import type { BillingContext } from '../context.ts';
import { type AuthorizedOutcome, commitAuthorizedOutcomes } from '../sql/authorized-outcomes.ts';
import {
  authorizedReason,
  commitAuthorized,
  linksToKeep,
  type PlannedAttempt,
  type SettlePlan,
} from './outcome.ts';

type Committed = { settleActionId: number | null } | false;

interface Waiting {
  p: PlannedAttempt;
  r: Extract<AuthorizeResult, { outcome: 'authorized' }>;
  settle: SettlePlan | null;
  outcome: AuthorizedOutcome;
  resolve: (c: Committed) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for the send loop's authorizations: an outcome is committed at once when no
 * commit is running, and otherwise waits for the running one to finish and goes with every
 * other outcome that came back meanwhile, in one statement (`commitAuthorizedOutcomes`). No
 * timer and no added delay: a quiet run commits one at a time as before, a busy one shares
 * each statement's fixed cost between the charges that arrived during the last one.
 *
 * Each sender still waits for its own charge's commit before it sends the settle, so nothing
 * is sent before the facts it depends on are committed. When a batch statement fails (a guard
 * refusing one charge's move, a lost connection), its charges are committed one by one with
 * `commitAuthorized`, so one charge's error is that charge's alone.
 */
export function outcomeBatcher(ctx: BillingContext, opts: { maxItems?: number } = {}) {
  const maxItems = opts.maxItems ?? 64;
  let waiting: Waiting[] = [];
  let running: Promise<void> | null = null;

  const run = (batch: Waiting[]): Promise<void> =>
    commitAuthorizedOutcomes(
      ctx.database,
      batch.map((w) => w.outcome),
    ).then(
      (applied) => {
        for (const w of batch) {
          const actionId = applied.get(w.p.charge.id);
          w.resolve(actionId === undefined ? false : { settleActionId: actionId });
        }
      },
      async (err: unknown) => {
        ctx.logger.warn(
          { err: errorMessage(err), batch: batch.length },
          'outcome batch not committed; committing its charges one by one',
        );
        for (const w of batch) {
          await commitAuthorized(ctx.database, w.p, w.r, w.settle).then(w.resolve, w.reject);
        }
      },
    );

  const next = () => {
    if (running !== null || waiting.length === 0) return;
    const batch = waiting.slice(0, maxItems);
    waiting = waiting.slice(batch.length);
    running = run(batch).finally(() => {
      running = null;
      next();
    });
  };

  return {
    /**
     * Commit one authorization (as `commitAuthorized` would, and with the same answer). Only a
     * plain authorization goes in a batch; a migration that erases the card, or a response whose
     * links cannot be kept one per relation, is committed on its own.
     */
    commit(
      p: PlannedAttempt,
      r: Extract<AuthorizeResult, { outcome: 'authorized' }>,
      settle: SettlePlan | null,
      single: { erasePan?: boolean } = {},
    ): Promise<Committed> {
      const kept = linksToKeep(r);
      if (single.erasePan || kept === null) return commitAuthorized(ctx.database, p, r, settle, single);
      return new Promise<Committed>((resolve, reject) => {
        waiting.push({
          p,
          r,
          settle,
          resolve,
          reject,
          outcome: {
            chargeId: p.charge.id,
            fence: p.charge.fence,
            attemptId: p.attemptId,
            credentialId: p.charge.credentialId,
            fromState: p.chargeState,
            kind: p.kind,
            linkHref: p.linkHref,
            httpStatus: r.httpStatus ?? null,
            correlationId: r.correlationId ?? null,
            latencyMs: r.latencyMs,
            schemeReference: r.schemeReference ?? null,
            authCode: r.authorizationCode ?? null,
            paymentId: r.paymentId,
            links: kept.links,
            nextRel: kept.nextRel,
            auditReason: authorizedReason(p, kept.nextRel, {}),
            settle,
          },
        });
        next();
      });
    },
    /** Resolves when every outcome handed in so far is committed (or has failed). */
    async close(): Promise<void> {
      while (running !== null) await running;
    },
  };
}
export type OutcomeBatcher = ReturnType<typeof outcomeBatcher>;
