import { isDatabaseUnavailable } from '../../db/unavailable.ts';
import { errorMessage, UnavailableError } from '../../errors.ts';
import type { Metrics } from '../../metrics.ts';
import type { BillingContext } from '../context.ts';
import { assertMandateExists, createRun, type RunOptions, type RunReport, runBilling } from './run.ts';

/**
 * Starts billing runs for the daemon's ticks and the API's POST /v1/runs, and keeps track of
 * them so shutdown can tell them all to stop claiming and wait for what is in flight.
 */
export interface Runner {
  /** Create the run row, start it in the background, return its id. */
  start(opts: Omit<RunOptions, 'signal' | 'runId'>): Promise<number>;
  /** Run to the end (a daemon tick). */
  run(opts: Omit<RunOptions, 'signal'>): Promise<RunReport>;
  /** Runs in progress in this process. */
  active(): number;
  /** Stop claiming new work in every run; resolves when they finished or `timeoutMs` passed. */
  stop(timeoutMs: number): Promise<{ drained: boolean }>;
  readonly signal: AbortSignal;
}

export function createRunner(ctx: BillingContext, metrics?: Metrics): Runner {
  const abort = new AbortController();
  const inFlight = new Set<Promise<unknown>>();

  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    void p.then(
      () => inFlight.delete(p),
      () => inFlight.delete(p),
    );
    return p;
  };

  async function execute(opts: Omit<RunOptions, 'signal'>): Promise<RunReport> {
    const started = Date.now();
    try {
      const report = await runBilling(ctx, { ...opts, signal: abort.signal });
      metrics?.runFinished(opts.trigger, report.status, report.durationMs / 1000);
      return report;
    } catch (err) {
      const status = isDatabaseUnavailable(err) ? 'interrupted' : 'failed';
      metrics?.runFinished(opts.trigger, status, (Date.now() - started) / 1000);
      throw err;
    }
  }

  return {
    signal: abort.signal,
    async start(opts) {
      if (abort.signal.aborted) throw new UnavailableError('shutting down: no new runs are started');
      if (opts.mandateId !== undefined) await assertMandateExists(ctx, opts.mandateId);
      const runId = await createRun(ctx, opts);
      track(
        execute({ ...opts, runId }).catch((err) => {
          ctx.logger.error({ runId, err: errorMessage(err) }, 'billing run failed');
        }),
      );
      return runId;
    },
    run(opts) {
      return track(execute(opts));
    },
    active: () => inFlight.size,
    async stop(timeoutMs) {
      abort.abort();
      if (inFlight.size === 0) return { drained: true };
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      const drained = await Promise.race([
        Promise.allSettled([...inFlight]).then(() => true as const),
        timeout,
      ]);
      clearTimeout(timer);
      return { drained };
    },
  };
}
