import { DAY, type DunningConfig, HOUR } from './config.ts';

/**
 * Per-credential retry ledger. The schemes count per card, so this spans ALL mandates and charges
 * that use the same stored credential; a new credential starts a new ledger.
 *
 * What counts as a reattempt (kept simple and explicit): every authorization attempt on the
 * credential EXCEPT the first attempt of each charge. Retries after refusals and retries after
 * gateway errors both count. The caller builds `reattempts` from its attempt rows with that rule.
 *
 * The ledger holds attempts already made (at or before the instant being checked); windows are
 * half-open, (at - 30 days, at], so an attempt exactly 30 days old no longer counts.
 */
export interface CardLedger {
  /** Reattempts on this credential across all mandates, at least the last 30 days. */
  readonly reattempts: readonly Date[];
  /** Refusals on this credential (first attempts included), at least the last 24 hours. */
  readonly declines: readonly Date[];
  /** Set after MAC 03/21 or a Visa category-1 code: no attempt ever again on this credential. */
  readonly blocked: { readonly reason: string; readonly at: Date } | null;
}

export type AttemptKind = 'first' | 'reattempt';

export const REATTEMPT_WINDOW_MS = 30 * DAY;
export const DECLINE_WINDOW_MS = 24 * HOUR;

export const emptyLedger = (): CardLedger => ({ reattempts: [], declines: [], blocked: null });

export type LedgerCheck = { ok: true } | { ok: false; reason: string; earliest?: Date };

/** Number of entries in (at - windowMs, at]. */
export function countInWindow(times: readonly Date[], at: Date, windowMs: number): number {
  const end = at.getTime();
  const start = end - windowMs;
  let n = 0;
  for (const t of times) {
    const ms = t.getTime();
    if (ms > start && ms <= end) n++;
  }
  return n;
}

/**
 * May an attempt be made on this credential at `at`? A first attempt of a charge is not a
 * reattempt, so only the block and the 24-hour declines apply to it.
 */
export function canAttempt(
  ledger: CardLedger,
  at: Date,
  config: DunningConfig,
  kind: AttemptKind = 'reattempt',
): LedgerCheck {
  if (ledger.blocked) {
    return {
      ok: false,
      reason: `credential blocked since ${ledger.blocked.at.toISOString()}: ${ledger.blocked.reason}`,
    };
  }
  const declines = countInWindow(ledger.declines, at, DECLINE_WINDOW_MS);
  if (declines >= config.maxDeclinesPer24h) {
    return {
      ok: false,
      reason: `${declines} declines on this card in 24 hours (limit ${config.maxDeclinesPer24h})`,
      earliest: earliestAllowed(ledger, at, config, kind)!,
    };
  }
  if (kind === 'reattempt') {
    const reattempts = countInWindow(ledger.reattempts, at, REATTEMPT_WINDOW_MS);
    if (reattempts >= config.maxReattemptsPer30Days) {
      return {
        ok: false,
        reason: `${reattempts} reattempts on this card in 30 days (limit ${config.maxReattemptsPer30Days})`,
        earliest: earliestAllowed(ledger, at, config, kind)!,
      };
    }
  }
  return { ok: true };
}

/**
 * The first instant >= `from` at which `canAttempt` passes; null if the credential is blocked
 * or the reattempt limit is 0. Each step moves past at least one ledger entry, so it terminates.
 */
export function earliestAllowed(
  ledger: CardLedger,
  from: Date,
  config: DunningConfig,
  kind: AttemptKind = 'reattempt',
): Date | null {
  if (ledger.blocked) return null;
  if (kind === 'reattempt' && config.maxReattemptsPer30Days <= 0) return null;
  const declines = sortedMs(ledger.declines);
  const reattempts = sortedMs(ledger.reattempts);
  let t = from.getTime();
  for (;;) {
    const next = Math.max(
      releaseTime(declines, t, DECLINE_WINDOW_MS, config.maxDeclinesPer24h),
      kind === 'reattempt'
        ? releaseTime(reattempts, t, REATTEMPT_WINDOW_MS, config.maxReattemptsPer30Days)
        : t,
    );
    if (!Number.isFinite(next)) return null;
    if (next <= t) return new Date(t);
    t = next;
  }
}

/** Earliest time >= t at which fewer than `limit` entries lie in (time - windowMs, time]. */
function releaseTime(sorted: readonly number[], t: number, windowMs: number, limit: number): number {
  if (limit <= 0) return Number.POSITIVE_INFINITY;
  const inWindow = sorted.filter((ms) => ms > t - windowMs && ms <= t);
  if (inWindow.length < limit) return t;
  // Drop the oldest (count - limit + 1) entries: the last of them leaves the window at +windowMs.
  return inWindow[inWindow.length - limit]! + windowMs;
}

function sortedMs(times: readonly Date[]): number[] {
  return times.map((d) => d.getTime()).sort((a, b) => a - b);
}
