import { type Classification, classifyRefusal, type DunningCategory, type VisaCategory } from './codes.ts';
import type { DunningConfig, FinalAction, Intent } from './config.ts';
import {
  type AttemptKind,
  type CardLedger,
  countInWindow,
  earliestAllowed,
  REATTEMPT_WINDOW_MS,
} from './ledger.ts';

/**
 * The dunning decision: what happens after a refusal (or a gateway error reconciled as "did not
 * happen"), as a pure function of the refusal, the charge's retry history, the card ledger and
 * the policy. Every decision carries a sentence an operator can read.
 */

export type Refusal = { code: string | number; adviceCode?: string | number | null } | { gatewayError: true };

export interface DecideInput {
  readonly refusal: Refusal;
  readonly intent: Intent;
  /** When the refusal (or gateway error) happened; waits count from here. */
  readonly now: Date;
  readonly chargeId: number | string;
  /** The first refusal (or gateway error) of this charge; the schedule counts from here. */
  readonly firstRefusedAt: Date;
  /** Retries after refusals already made for this charge (schedule slots used). */
  readonly retriesSoFar: number;
  /** Consecutive gateway errors on this charge, this one included minus one (0 for the first). */
  readonly gatewayErrorsSoFar?: number;
  /** The credential's ledger, already including the attempt just refused. */
  readonly ledger: CardLedger;
  readonly config: DunningConfig;
}

interface DecisionBase {
  /** A sentence for operators, naming the code and what was decided. */
  readonly reason: string;
  readonly category: DunningCategory | 'gateway_error' | 'ledger';
  readonly code: string | null;
  readonly adviceCode: string | null;
  readonly visaCategory: VisaCategory | null;
  /** The refusal or advice code is not in the table: the safe default applied; report it. */
  readonly unknownCode: boolean;
  /** The caller must set `ledger.blocked` for this credential (Visa category 1, MAC 03/21...). */
  readonly blocksCredential: boolean;
}

export type Decision = DecisionBase &
  (
    | {
        readonly action: 'retry';
        readonly retryAt: Date;
        /** 1-based schedule slot this retry uses; null after a gateway error, which uses none. */
        readonly retry: number | null;
      }
    | { readonly action: 'needs_new_credential' }
    | { readonly action: 'stop' }
    | { readonly action: 'fail'; readonly finalAction: FinalAction }
  );

export function finalActionFor(intent: Intent, config: DunningConfig): FinalAction {
  return config.finalAction[intent];
}

export function decide(input: DecideInput): Decision {
  const { refusal, config, now } = input;
  if ('gatewayError' in refusal) return decideGatewayError(input);

  const c = classifyRefusal(refusal.code, refusal.adviceCode, config);
  const base = baseOf(c);
  if (c.category === 'stop') {
    return { ...base, action: 'stop', reason: `${c.reason}: mandate suspended, operator told` };
  }
  if (c.category === 'needs_new_credential') {
    return { ...base, action: 'needs_new_credential', reason: `${c.reason}: waiting for new card details` };
  }
  if (c.blocksCredential) {
    // Only reachable when a policy file made a never-retry code soft without lifting its block.
    return { ...base, action: 'stop', reason: `${c.reason}: never retry this card, mandate suspended` };
  }
  // Soft. A blocked credential (another mandate got MAC 03 on it) overrides any schedule.
  if (input.ledger.blocked) {
    return {
      ...base,
      action: 'stop',
      category: 'ledger',
      reason: `${c.reason}; but the credential is blocked (${input.ledger.blocked.reason}): no retry`,
    };
  }
  const total = config.scheduleMs.length;
  const k = input.retriesSoFar;
  const finalAction = finalActionFor(input.intent, config);
  if (k >= total) {
    return {
      ...base,
      action: 'fail',
      finalAction,
      reason: `${c.reason}: soft decline, all ${total} retries used; charge failed, ${input.intent} mandate: ${finalAction}`,
    };
  }
  const slot =
    input.firstRefusedAt.getTime() + config.scheduleMs[k]! + jitter(input.chargeId, k, config.jitterMs);
  const floor = now.getTime() + Math.max(c.minWaitMs, config.minRetryGapMs);
  return scheduleRetry(input, base, c.reason, 'soft decline', new Date(Math.max(slot, floor)), k + 1, total);
}

function decideGatewayError(input: DecideInput): Decision {
  const { config, now } = input;
  const n = Math.max(0, input.gatewayErrorsSoFar ?? 0);
  const backoff = config.gatewayBackoffMs[Math.min(n, config.gatewayBackoffMs.length - 1)]!;
  // Jitter proportional to the backoff: 2h of jitter on a 5-minute backoff would defeat it.
  const spread = Math.min(config.jitterMs, Math.floor(backoff / 5));
  const at = new Date(now.getTime() + backoff + jitter(input.chargeId, 1000 + n, spread));
  const base: DecisionBase = {
    reason: '',
    category: 'gateway_error',
    code: null,
    adviceCode: null,
    visaCategory: null,
    unknownCode: false,
    blocksCredential: false,
  };
  if (input.ledger.blocked) {
    return {
      ...base,
      action: 'stop',
      reason: `gateway error; credential blocked (${input.ledger.blocked.reason})`,
    };
  }
  return scheduleRetry(
    input,
    base,
    `gateway error (${n + 1} in a row on this charge)`,
    'not a refusal',
    at,
    null,
    null,
  );
}

/** Push a candidate retry time past the ledger's limits, or fail the charge if that leaves the window. */
function scheduleRetry(
  input: DecideInput,
  base: DecisionBase,
  what: string,
  kindText: string,
  candidate: Date,
  retryNumber: number | null,
  total: number | null,
): Decision {
  const { config } = input;
  const finalAction = finalActionFor(input.intent, config);
  const allowed = earliestAllowed(input.ledger, candidate, config, 'reattempt');
  const deadline = input.firstRefusedAt.getTime() + config.retryWindowMs;
  if (allowed === null || allowed.getTime() > deadline) {
    const window = `the ${days(config.retryWindowMs)}-day retry window`;
    const why =
      allowed === null
        ? 'the card ledger allows no reattempt'
        : candidate.getTime() > deadline
          ? `the earliest allowed retry (${candidate.toISOString()}) is after ${window}`
          : `the card ledger allows the next reattempt only at ${allowed.toISOString()}, after ${window}`;
    return {
      ...base,
      action: 'fail',
      finalAction,
      reason: `${what}: ${kindText}, but ${why}; charge failed, ${input.intent} mandate: ${finalAction}`,
    };
  }
  const used = countInWindow(input.ledger.reattempts, allowed, REATTEMPT_WINDOW_MS) + 1;
  const moved = allowed.getTime() > candidate.getTime() ? ', moved later by the card ledger' : '';
  const which = retryNumber === null ? 'retry' : `retry ${retryNumber} of ${total}`;
  return {
    ...base,
    action: 'retry',
    retryAt: allowed,
    retry: retryNumber,
    reason: `${what}: ${kindText}, ${which} at ${allowed.toISOString()}${moved} (ledger ${used}/${config.maxReattemptsPer30Days} in 30 days)`,
  };
}

function baseOf(c: Classification): DecisionBase {
  return {
    reason: c.reason,
    category: c.category,
    code: c.code,
    adviceCode: c.adviceCode,
    visaCategory: c.visaCategory,
    unknownCode: c.unknownCode,
    blocksCredential: c.blocksCredential,
  };
}

const days = (ms: number) => Math.round((ms / 86_400_000) * 10) / 10;

/**
 * Deterministic jitter in [0, spreadMs): FNV-1a over "chargeId:slot", so a run is reproducible in
 * tests and a re-decision of the same retry lands on the same instant.
 */
export function jitter(chargeId: number | string, slot: number, spreadMs: number): number {
  if (spreadMs <= 0) return 0;
  let h = 0x811c9dc5;
  for (const ch of `${chargeId}:${slot}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Avalanche so consecutive ids do not land next to each other.
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  const ms = Math.floor((h / 0x1_0000_0000) * spreadMs);
  // Whole seconds read better in reasons and logs; sub-second spreads keep their milliseconds.
  return spreadMs >= 1000 ? ms - (ms % 1000) : ms;
}

/** A card is valid through the last millisecond of its expiry month (UTC). Two-digit years mean 20xx. */
export function isExpired(expiryMonth: number, expiryYear: number, at: Date): boolean {
  const year = expiryYear < 100 ? 2000 + expiryYear : expiryYear;
  // Date.UTC(year, month) with a 1-based month is the first instant of the FOLLOWING month.
  return at.getTime() >= Date.UTC(year, expiryMonth, 1);
}

export interface BeforeSendInput {
  /** Stored expiry of the credential, if known. */
  readonly expiry?: { readonly month: number; readonly year: number } | null;
  readonly now: Date;
  readonly kind: AttemptKind;
  readonly intent: Intent;
  readonly ledger: CardLedger;
  readonly config: DunningConfig;
  /** For reattempts: the charge's first refusal, to know whether a deferral leaves the retry window. */
  readonly firstRefusedAt?: Date | null;
}

export type BeforeSendDecision =
  | { readonly action: 'send'; readonly reason: string }
  | { readonly action: 'needs_new_credential'; readonly reason: string }
  | { readonly action: 'stop'; readonly reason: string }
  | { readonly action: 'defer'; readonly until: Date; readonly reason: string }
  | { readonly action: 'fail'; readonly finalAction: FinalAction; readonly reason: string };

/**
 * Checked just before any authorization is sent (first attempt or retry), because several charges
 * share a credential and the ledger may have filled since a retry was planned: known-expired
 * cards are not sent, a blocked credential stops, an exhausted ledger defers (or fails a retry
 * whose window is over).
 */
export function decideBeforeSend(input: BeforeSendInput): BeforeSendDecision {
  const { now, ledger, config } = input;
  if (input.expiry && isExpired(input.expiry.month, input.expiry.year, now)) {
    const mm = String(input.expiry.month).padStart(2, '0');
    return {
      action: 'needs_new_credential',
      reason: `stored expiry ${mm}/${input.expiry.year} is in the past: not sent, waiting for new card details`,
    };
  }
  if (ledger.blocked) {
    return {
      action: 'stop',
      reason: `credential blocked since ${ledger.blocked.at.toISOString()}: ${ledger.blocked.reason}`,
    };
  }
  const allowed = earliestAllowed(ledger, now, config, input.kind);
  if (allowed === null) {
    return failOrStop(input, 'the card ledger allows no reattempt');
  }
  if (allowed.getTime() <= now.getTime()) return { action: 'send', reason: 'ledger allows the attempt' };
  const deadline =
    input.kind === 'reattempt' && input.firstRefusedAt
      ? input.firstRefusedAt.getTime() + config.retryWindowMs
      : null;
  if (deadline !== null && allowed.getTime() > deadline) {
    return failOrStop(input, `the card ledger allows the next reattempt only after the retry window`);
  }
  return {
    action: 'defer',
    until: allowed,
    reason: `card ledger limit reached (${countInWindow(ledger.reattempts, now, REATTEMPT_WINDOW_MS)} reattempts in 30 days, ${countInWindow(ledger.declines, now, 24 * 3_600_000)} declines in 24 hours): deferred to ${allowed.toISOString()}`,
  };
}

function failOrStop(input: BeforeSendInput, why: string): BeforeSendDecision {
  const finalAction = finalActionFor(input.intent, input.config);
  return {
    action: 'fail',
    finalAction,
    reason: `${why}; charge failed, ${input.intent} mandate: ${finalAction}`,
  };
}
