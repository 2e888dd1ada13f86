import { errorMessage } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { type Acceptance, commitAcceptances } from '../sql/payment-actions.ts';
import { batcher } from './batcher.ts';

/**
 * The run's settle acceptances, group-committed (`batcher`) through the statement
 * `commitActionAccepted` commits one with. Write-ahead is not weakened: the settle's action row
 * (`requested`) was committed with the authorization before the settle was sent; what waits
 * here is only its answer, which a crash loses to `resumeSettlements` (it asks the gateway
 * before sending anything again). Nothing waits on an acceptance's commit: `add` hands it in
 * and returns. `close()` commits what is left; the run releases its leases only after that.
 */
export function acceptanceBatcher(
  ctx: BillingContext,
  opts: { maxItems?: number; onError?: (message: string) => void } = {},
) {
  const b = batcher<Acceptance, boolean>(
    ctx,
    'settle acceptance',
    async (items) => {
      const applied = await commitAcceptances(ctx.database, items);
      return items.map((a) => applied.has(a.actionId));
    },
    { maxItems: opts.maxItems ?? 100 },
  );
  return {
    add(a: Acceptance): void {
      b.add(a).then(
        (applied) => {
          if (!applied)
            ctx.logger.warn(
              { actionId: a.actionId, chargeId: a.chargeId },
              'settle acceptance not applied: its charge was taken over meanwhile',
            );
        },
        (err: unknown) => {
          // Left `requested`: the next run's settlement resumption asks the gateway and applies it.
          ctx.logger.error(
            { err: errorMessage(err), actionId: a.actionId },
            'settle acceptance not committed',
          );
          opts.onError?.(`settle acceptance not committed: ${errorMessage(err)}`);
        },
      );
    },
    close: b.close,
  };
}
export type AcceptanceBatcher = ReturnType<typeof acceptanceBatcher>;
