// The sandbox's payment state machine: one transition table, and the amounts that bound
// partial settlements and refunds. Pure: the caller owns time and storage.

export type PaymentState =
  | 'authorized'
  | 'refused'
  | 'sentForSettlement'
  | 'settled'
  | 'cancelled'
  | 'sentForRefund'
  // PayPal's last events besides the card ones (seed 001).
  | 'refundFailed'
  | 'error'
  | 'captureFailed';

export type ManageOp = 'settle' | 'partialSettle' | 'cancel' | 'refund' | 'partialRefund' | 'reversal';

export interface PaymentAmounts {
  state: PaymentState;
  authorizedAmount: number;
  /** Sum sent for settlement (full or partial). */
  settledAmount: number;
  /** Authorized amount given back by a cancel after partial settlements. */
  releasedAmount: number;
  refundedAmount: number;
}

/** Which states each action may start from; anything else answers 409 `actionNotAllowed`. */
const FROM: Record<ManageOp, ReadonlySet<PaymentState>> = {
  settle: new Set(['authorized']),
  partialSettle: new Set(['authorized', 'sentForSettlement', 'settled']),
  cancel: new Set(['authorized', 'sentForSettlement', 'settled']),
  refund: new Set(['sentForSettlement', 'settled', 'sentForRefund']),
  partialRefund: new Set(['sentForSettlement', 'settled', 'sentForRefund']),
  reversal: new Set(['authorized', 'sentForSettlement', 'settled']),
};

export function remainingToSettle(p: PaymentAmounts): number {
  return p.authorizedAmount - p.settledAmount - p.releasedAmount;
}

export function remainingToRefund(p: PaymentAmounts): number {
  return p.settledAmount - p.refundedAmount;
}

export type TransitionResult =
  | { ok: true; next: PaymentState; event: PaymentState | undefined }
  | { ok: false; reason: 'actionNotAllowed' | 'amountExceedsRemaining' };

/**
 * Applies an action to the amounts in place and says which state follows and which event
 * (if any) it emits. `reversalIsCancel`: the reversal is still inside the window in which
 * Worldpay turns it into a cancel rather than a refund.
 */
export function transition(
  p: PaymentAmounts,
  op: ManageOp,
  amount: number | undefined,
  reversalIsCancel: boolean,
): TransitionResult {
  if (!FROM[op].has(p.state)) return { ok: false, reason: 'actionNotAllowed' };
  switch (op) {
    case 'settle':
      p.settledAmount = p.authorizedAmount;
      return { ok: true, next: 'sentForSettlement', event: 'sentForSettlement' };
    case 'partialSettle': {
      const remaining = remainingToSettle(p);
      if (remaining <= 0) return { ok: false, reason: 'actionNotAllowed' };
      if (amount! > remaining) return { ok: false, reason: 'amountExceedsRemaining' };
      p.settledAmount += amount!;
      return { ok: true, next: 'sentForSettlement', event: 'sentForSettlement' };
    }
    case 'cancel':
      if (p.state === 'authorized') return { ok: true, next: 'cancelled', event: 'cancelled' };
      // After partial settlements a cancel only releases what is left to settle.
      if (remainingToSettle(p) <= 0) return { ok: false, reason: 'actionNotAllowed' };
      p.releasedAmount += remainingToSettle(p);
      return { ok: true, next: p.state, event: undefined };
    case 'refund': {
      if (remainingToRefund(p) <= 0) return { ok: false, reason: 'actionNotAllowed' };
      p.refundedAmount = p.settledAmount;
      return { ok: true, next: 'sentForRefund', event: 'sentForRefund' };
    }
    case 'partialRefund': {
      const remaining = remainingToRefund(p);
      if (remaining <= 0) return { ok: false, reason: 'actionNotAllowed' };
      if (amount! > remaining) return { ok: false, reason: 'amountExceedsRemaining' };
      p.refundedAmount += amount!;
      return { ok: true, next: 'sentForRefund', event: 'sentForRefund' };
    }
    case 'reversal':
      if (p.state === 'authorized' || reversalIsCancel)
        return { ok: true, next: 'cancelled', event: 'cancelled' };
      p.refundedAmount = p.settledAmount;
      return { ok: true, next: 'sentForRefund', event: 'sentForRefund' };
  }
}

/** The settlement house confirms: sentForSettlement -> settled (after settleAfterMs). */
export function settlementCompletes(p: PaymentAmounts): boolean {
  if (p.state !== 'sentForSettlement') return false;
  p.state = 'settled';
  return true;
}

export type ActionRel =
  | 'payments:cancel'
  | 'payments:settle'
  | 'payments:partialSettle'
  | 'payments:refund'
  | 'payments:partialRefund';

/** Next-action links the payment offers now, in the order the seeds list them. */
export function nextActions(p: PaymentAmounts): ActionRel[] {
  switch (p.state) {
    case 'authorized':
      return ['payments:cancel', 'payments:settle', 'payments:partialSettle'];
    case 'sentForSettlement':
    case 'settled': {
      const rels: ActionRel[] = [];
      if (remainingToRefund(p) > 0) rels.push('payments:refund', 'payments:partialRefund');
      if (remainingToSettle(p) > 0) rels.push('payments:partialSettle', 'payments:cancel');
      return rels;
    }
    case 'sentForRefund':
      return remainingToRefund(p) > 0 ? ['payments:partialRefund'] : [];
    default:
      return [];
  }
}

/** `lastEvent` spelling of the query API (query-a-payment OpenAPI enum). */
export const LAST_EVENT: Record<PaymentState, string> = {
  authorized: 'Authorized',
  refused: 'Refused',
  sentForSettlement: 'Sent for Settlement',
  settled: 'Settled',
  cancelled: 'Sent for Cancellation',
  sentForRefund: 'Sent for Refund',
  refundFailed: 'Refund failed',
  error: 'Error',
  captureFailed: 'captureFailed',
};

/** Event `type` spelling of the events webhook. */
export const WEBHOOK_TYPE: Record<PaymentState, string> = {
  authorized: 'authorized',
  refused: 'refused',
  sentForSettlement: 'sentForSettlement',
  settled: 'settled',
  cancelled: 'cancelled',
  sentForRefund: 'sentForRefund',
  refundFailed: 'refundFailed',
  error: 'error',
  captureFailed: 'settlementFailed',
};

export const ACTION_PATH: Record<ActionRel | 'payments:events' | 'payments:reversal', string> = {
  'payments:cancel': '/payments/authorizations/cancellations/',
  'payments:settle': '/payments/settlements/full/',
  'payments:partialSettle': '/payments/settlements/partials/',
  'payments:refund': '/payments/settlements/refunds/full/',
  'payments:partialRefund': '/payments/settlements/refunds/partials/',
  'payments:events': '/payments/events/',
  'payments:reversal': '/payments/sales/reversals/',
};
