import { errorMessage } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import { type Acceptance, commitAcceptances } from '../sql/settle-acceptances.ts';

/**
 * The run's settle acceptances, committed together: at most `maxItems` at a time, and no later
 * than `maxDelayMs` after the first one waiting. Write-ahead is not weakened: the settle's
 * action row (`requested`) was committed with the authorization before the settle was sent;
 * what waits here is only its answer, which a crash loses to `resumeSettlements` (it asks the
 * gateway before sending anything again). `close()` commits what is left; the run releases its
 * leases only after that.
 */
export function acceptanceBatcher(
  ctx: BillingContext,
  opts: { maxItems?: number; maxDelayMs?: number; onError?: (message: string) => void } = {},
) {
  const maxItems = opts.maxItems ?? 100;
  const maxDelayMs = opts.maxDelayMs ?? 20;
  let waiting: Acceptance[] = [];
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();

  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (waiting.length === 0) return;
    const batch = waiting;
    waiting = [];
    const p = commitAcceptances(ctx.database, batch)
      .then((applied) => {
        if (applied < batch.length)
          ctx.logger.warn(
            { applied, batch: batch.length },
            'settle acceptances not applied: their charges were taken over meanwhile',
          );
      })
      .catch((err: unknown) => {
        // Left `requested`: the next run's settlement resumption asks the gateway and applies them.
        ctx.logger.error({ err: errorMessage(err), batch: batch.length }, 'settle acceptances not committed');
        opts.onError?.(`settle acceptances not committed: ${errorMessage(err)}`);
      })
      .finally(() => {
        inFlight.delete(p);
      });
    inFlight.add(p);
  };

  return {
    add(a: Acceptance): void {
      waiting.push(a);
      if (waiting.length >= maxItems) flush();
      else timer ??= setTimeout(flush, maxDelayMs);
    },
    async close(): Promise<void> {
      flush();
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
  };
}
export type AcceptanceBatcher = ReturnType<typeof acceptanceBatcher>;
