import type { AuthorizeResult } from '../../gateways/types.ts';
import type { BillingContext } from '../context.ts';
import { type AuthorizedOutcome, commitAuthorizedOutcomes } from '../sql/authorized-outcomes.ts';
import { batcher } from './batcher.ts';
import { authorizedOutcome, type PlannedAttempt, type SettlePlan } from './outcome.ts';

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
