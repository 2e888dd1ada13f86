import { ValidationError } from '../../errors.ts';
import type { BillingContext } from '../context.ts';
import type { RunCounts } from './tally.ts';

/** What a billing run is asked to do, and what it answers: the types the run's rooms share. */

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
  /** Called once, before the first charge is sent, with how many charges are due to go. */
  onTotal?: (due: number) => void;
  /** Stop claiming new work (graceful shutdown); work in flight finishes. */
  signal?: AbortSignal;
  /** An existing billing_runs row to fill in (the API creates it before starting). */
  runId?: number;
  /** Bill for an instant more than FUTURE_TOLERANCE_MS ahead of the wall clock (see assertNotFuture). */
  allowFuture?: boolean | undefined;
  /** How the caller named `asOf` (`--as-of` on the CLI), for the error that refuses it. */
  asOfField?: string;
  /**
   * A daemon tick: a run that found nothing to do leaves no row and emits no event, so a
   * minute-by-minute schedule does not bury the runs that did something.
   */
  forgetIfIdle?: boolean;
}

/** The most charges one run may be asked to take (PostgreSQL's `limit` is a 64-bit integer). */
export const MAX_RUN_LIMIT = 100_000_000;

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
    const flag = field.startsWith('--') ? '--allow-future' : 'allowFuture: true';
    throw new ValidationError(
      field,
      `${opts.asOf.toISOString()} is ${Math.round(ahead / 60_000)} minutes ahead of now: billing early charges customers early; pass ${flag} to mean it`,
    );
  }
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
    /** The mandate's customer, as every list shows it. */
    customerRef: string;
    /** null for a prorated one-off a scheduled change would create. */
    cycle: number | null;
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
  /** false: a run asked to `forgetIfIdle` found nothing to do; its row is gone. */
  recorded: boolean;
}
