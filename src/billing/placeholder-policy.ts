import type { RetryPolicy } from './retry-policy.ts';

/** One retry a day later, then fail. Stands in until the dunning policy is wired. */
export const placeholderPolicy: RetryPolicy = {
  decide: (i) =>
    i.retriesSoFar < 1
      ? { action: 'retry', retryAt: new Date(i.now.getTime() + 86_400_000), reason: 'retry once after a day' }
      : { action: 'fail', reason: 'out of retries' },
  beforeSend: () => ({ ok: true }),
};
