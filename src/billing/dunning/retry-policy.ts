import type { Intent } from '../../gateways/types.ts';

/** What the charge loop asks the dunning policy after a refusal or a failed exchange. */
export interface RetryInput {
  refusal: { code: string; adviceCode?: string | null } | { gatewayError: true };
  intent: Intent;
  now: Date;
  chargeId: number;
  firstRefusedAt: Date;
  /** Retries this charge already made after refusals. */
  retriesSoFar: number;
  /** Attempts of this charge that ended in a gateway error found not to have happened. */
  gatewayErrorsSoFar: number;
  /** Authorization attempts on the credential (all mandates), newest window; refusals among them. */
  ledger: CardHistory;
}

/** One authorization attempt on a credential, as the retry ledger sees it. */
export interface CardAttempt {
  at: Date;
  chargeId: number;
  first: boolean;
  state: string;
}

export interface CardHistory {
  attempts: CardAttempt[];
  blocked: { reason: string; at: Date } | null;
}

export type RetryDecision =
  | { action: 'retry'; retryAt: Date; reason: string; category?: string; unknownCode?: boolean }
  | {
      action: 'needs_new_credential';
      reason: string;
      category?: string;
      unknownCode?: boolean;
      blockCard?: boolean;
    }
  | { action: 'stop'; reason: string; category?: string; unknownCode?: boolean; blockCard?: boolean }
  | { action: 'fail'; reason: string; category?: string; unknownCode?: boolean; finalAction?: string };

export type SendCheck = { ok: true } | { ok: false; decision: RetryDecision; earliest?: Date };

export interface RetryPolicy {
  decide(input: RetryInput): RetryDecision;
  /** Before a retry goes out: card expiry and the per-card ledger. */
  beforeSend(input: {
    now: Date;
    expiryMonth: number | null;
    expiryYear: number | null;
    ledger: CardHistory;
    isRetry: boolean;
    intent: Intent;
    firstRefusedAt: Date | null;
  }): SendCheck;
}
