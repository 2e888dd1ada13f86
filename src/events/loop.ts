import type { BillingContext } from '../billing/context.ts';
import { errorMessage } from '../errors.ts';
import { createDeliverer, type Deliverer } from './deliver.ts';
import { pruneEvents } from './sequence.ts';

export interface DeliveryLoop {
  /** Stop claiming; the pass in flight finishes (its deliveries are recorded). */
  stop(): Promise<void>;
  /** Run one pass now instead of waiting for the poll interval (tests). */
  kick(): void;
}

const HOUSEKEEPING_MS = 10 * 60_000;

/**
 * The daemon's delivery loop: a pass every REBILL_WEBHOOK_POLL_MS, and at once again while a
 * pass finds a full batch. Every ten minutes it also prunes events past the retention.
 * Replicas each run one; the claims keep them apart.
 */
export function startDeliveryLoop(
  ctx: BillingContext,
  metrics?: { delivery(result: string): void },
): DeliveryLoop {
  const cfg = ctx.config.events;
  const log = ctx.logger.child({ component: 'webhooks' });
  const deliverer: Deliverer = createDeliverer(ctx, metrics);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> | undefined;
  let lastHousekeeping = 0;
  const limit = 64;

  const pass = async () => {
    try {
      for (;;) {
        const s = await deliverer.deliverDue({ limit });
        if (stopped || s.claimed < limit) break;
      }
      if (Date.now() - lastHousekeeping > HOUSEKEEPING_MS) {
        lastHousekeeping = Date.now();
        const pruned = await pruneEvents(ctx.database, cfg.retentionDays);
        if (pruned > 0) log.info({ pruned, retentionDays: cfg.retentionDays }, 'pruned delivered events');
      }
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'webhook delivery pass failed; retrying next interval');
    }
  };
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(run, ms);
  };
  const run = () => {
    timer = undefined;
    current = pass().finally(() => {
      current = undefined;
      schedule(cfg.webhookPollMs);
    });
  };
  schedule(0);
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await current;
      await deliverer.close();
    },
    kick() {
      if (stopped || current) return;
      if (timer) clearTimeout(timer);
      run();
    },
  };
}
