/**
 * What an operator may do to a charge, by its state: the one table the server's checks
 * (`src/billing/operator/payments.ts`, `retryNow`) and the console's buttons both read, so the
 * console offers exactly what the server accepts. Each action's states are ones from which the
 * charge machine (`lifecycle.ts`) has the action's move: `test/domain/charge-actions.test.ts`.
 */
import type { ChargeState } from './lifecycle.ts';

export type ChargeAction =
  | 'retryNow'
  | 'settle'
  | 'partialSettle'
  | 'cancel'
  | 'refund'
  | 'partialRefund'
  | 'reversal';

/** The move each action asks of the charge machine. */
export const CHARGE_ACTION_MOVES: Readonly<Record<ChargeAction, ChargeState>> = {
  retryNow: 'retry_scheduled',
  settle: 'settling',
  partialSettle: 'settled',
  cancel: 'cancelled',
  refund: 'refunded',
  partialRefund: 'partially_refunded',
  reversal: 'refunded',
};

/** The charge states in which each action may be asked for. */
export const CHARGE_ACTION_STATES: Readonly<Record<ChargeAction, readonly ChargeState[]>> = {
  // Waiting, parked or refused: never while an attempt is in flight.
  retryNow: ['pending', 'retry_scheduled', 'needs_new_credential', 'stopped'],
  settle: ['authorized', 'settle_failed'],
  partialSettle: ['authorized', 'settling', 'settle_failed'],
  // Only an authorization: once settling, a payment is refunded instead.
  cancel: ['authorized'],
  refund: ['settling', 'settled', 'partially_refunded'],
  partialRefund: ['settling', 'settled', 'partially_refunded'],
  reversal: ['authorized', 'settling', 'settled'],
};

/**
 * The mandate statuses from which a charge may be retried: an active mandate, or a stopped one
 * (the retry revives it). A paused mandate is resumed first; one waiting for a new card gets
 * its card first (attaching it schedules the retry).
 */
export const RETRY_MANDATE_STATUSES: readonly string[] = ['active', 'stopped'];

/** A charge as the console and the server see it: its state, amount, and what was settled and refunded. */
export interface ChargeStanding {
  state: string;
  amount: number;
  settledAmount: number;
  refundedAmount: number;
}

/** The charge's mandate and card, where known: a retry needs both usable. */
export interface ChargeMandate {
  status: string;
  credentialStatus: string;
}

/**
 * The actions open to a charge now: its state allows them, and its amounts leave something to
 * do; given its mandate, a retry also needs the mandate open to retries and its card active.
 */
export function chargeActions(c: ChargeStanding, mandate?: ChargeMandate): ChargeAction[] {
  const left = c.settledAmount - c.refundedAmount;
  return (Object.keys(CHARGE_ACTION_STATES) as ChargeAction[]).filter((a) => {
    if (!CHARGE_ACTION_STATES[a].includes(c.state as ChargeState)) return false;
    if (a === 'settle' || a === 'cancel') return c.settledAmount === 0;
    if (a === 'partialSettle') return c.settledAmount < c.amount;
    if (a === 'refund' || a === 'partialRefund') return left > 0;
    if (a === 'reversal') return c.refundedAmount === 0;
    if (a === 'retryNow' && mandate)
      return RETRY_MANDATE_STATUSES.includes(mandate.status) && mandate.credentialStatus === 'active';
    return true;
  });
}
