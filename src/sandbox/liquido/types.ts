// Shared types of the Liquido sandbox: what its control API accepts and what its ledger records.
import type { LiquidoPayment } from '../../gateways/liquido/wire.ts';

export type { LiquidoPayment };

export type LiquidoOp = 'token' | 'authorize' | 'capture' | 'cancel' | 'status';

/**
 * What the sandbox does with the next matching request:
 * - `authorize`: behave normally (a charge is AUTHORIZED unless its card says otherwise);
 * - `fail`: a charge comes back FAILED with `transferErrorMsg: message` (capture/cancel: 400);
 * - `pending`: a charge is recorded IN_PROGRESS (and stays so: capture/cancel answer 400);
 * - `error`: answer `status` without processing anything;
 * - `slow`: process, then wait `ms` before answering (a client timeout sees nothing);
 * - `lost`: process (the hold is recorded), then destroy the socket without answering.
 */
export type LiquidoOutcome =
  | { type: 'authorize' }
  | { type: 'fail'; message: string }
  | { type: 'pending' }
  | { type: 'error'; status: number }
  | { type: 'slow'; ms: number }
  | { type: 'lost' };

export interface LiquidoScriptMatch {
  idempotencyKey?: string;
  cardId?: string;
  any?: boolean;
  /** Which call the rule targets; default `authorize`. */
  op?: Exclude<LiquidoOp, 'token'>;
}

export interface LiquidoScriptRule {
  match: LiquidoScriptMatch;
  /** Used in order, one per matching request; the rule is dropped when they run out. */
  outcomes: LiquidoOutcome[];
}

export type LiquidoLedgerOutcome =
  | 'issued'
  | 'badCredentials'
  | 'unauthorized'
  | 'forbidden'
  | 'authorized'
  | 'failed'
  | 'inProgress'
  | 'settled'
  | 'cancelled'
  | 'replayed'
  | 'conflict'
  | 'invalidState'
  | 'rejected'
  | 'notFound'
  | 'found'
  | 'error';

export interface LiquidoLedgerEntry {
  seq: number;
  op: LiquidoOp;
  idempotencyKey?: string;
  amount?: number;
  currency?: string;
  outcome: LiquidoLedgerOutcome;
  httpStatus: number;
  /** Processed, but the answer was withheld on purpose (script `lost` or `slow`). */
  responseWithheld?: 'lost' | 'slow';
  at: string;
}

export interface LiquidoLedger {
  entries: LiquidoLedgerEntry[];
  /** Every payment (hold) the sandbox created, in its current state: one per idempotencyKey. */
  payments: LiquidoPayment[];
  tokensIssued: number;
}
