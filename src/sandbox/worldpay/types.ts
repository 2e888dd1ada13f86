// Shared types of the Worldpay sandbox: what the control API accepts and what the ledger records.

/** Operations the sandbox records; `authorize` covers both recurring and migrateRecurring calls. */
export type SandboxOp =
  | 'authorize'
  | 'migrate'
  | 'settle'
  | 'partialSettle'
  | 'cancel'
  | 'refund'
  | 'partialRefund'
  | 'reversal';

/** Ops a script rule can target: `authorize` matches both recurring authorizations and migrations. */
export type ScriptOp = Exclude<SandboxOp, 'migrate'>;

export type RefusalSpelling = 'v6' | 'v7';

export type Outcome =
  | { type: 'authorize' }
  | { type: 'refuse'; code: string; adviceCode?: string; description?: string; spelling?: RefusalSpelling }
  | { type: 'error'; status: number; errorName?: string; retryAfterSeconds?: number }
  // `next`, not `then`: an object with a `then` key looks like a promise to `await`. The HTTP
  // control API also accepts `then` (the name in the issue) and renames it.
  | { type: 'slow'; ms: number; next?: Outcome }
  | { type: 'lost' };

export interface ScriptMatch {
  chainId?: string;
  transactionReference?: string;
  any?: boolean;
  op?: ScriptOp;
}

export interface ScriptRule {
  match: ScriptMatch;
  outcomes: Outcome[];
}

export type LedgerOutcome =
  | 'authorized'
  | 'refused'
  | 'accepted'
  | 'error'
  | 'duplicate'
  | 'invalidState'
  | 'rejected';

export interface LedgerEntry {
  seq: number;
  op: SandboxOp;
  transactionReference?: string;
  /** The partial settle/refund reference. */
  reference?: string;
  paymentId?: string;
  chainId?: string;
  /** Link data of the recurringAuthorize link the call used. */
  linkUsed?: string;
  stale?: boolean;
  amount?: number;
  currency?: string;
  outcome: LedgerOutcome;
  /** Refusal code when outcome is refused. */
  code?: string;
  httpStatus: number;
  /** The payment was committed but the response was dropped on purpose (script `lost`). */
  responseLost?: boolean;
  at: string;
}

export interface SandboxStats {
  requests: number;
  ops: Record<string, Record<string, number>>;
  staleLinkUses: number;
  duplicateReferences: number;
  throttled: number;
  webhooks: { delivered: number; failedAttempts: number; pending: number };
}

export interface WebhookOptions {
  url: string;
  secret: string;
  keyId?: string;
  /** First redelivery delay; doubles per attempt up to retryMaxMs. Worldpay waits 15 min, the sandbox 50 ms. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}
