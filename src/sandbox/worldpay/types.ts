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
  | 'reversal'
  /** A Card Payments v7 customer-initiated (first) payment. */
  | 'firstPayment';

/**
 * Ops a script rule can target: `authorize` matches recurring authorizations, migrations and v7
 * merchant-initiated transactions.
 */
export type ScriptOp = Exclude<SandboxOp, 'migrate' | 'firstPayment'>;

export type RefusalSpelling = 'v6' | 'v7';

/** The messages `updatedPaymentInstrument.accountUpdaterMessage` may carry (v7 OpenAPI enum). */
export const ACCOUNT_UPDATER_MESSAGES = [
  'The merchant is not registered in the update program',
  'The account number was changed',
  'The account was closed',
  'TThe expiration date was changed',
  'The issuing bank does not participate in the update program',
  'Contact the cardholder for updated information',
  'No match found',
  'No changes found',
] as const;

/** What a v7 answer's `updatedPaymentInstrument` says (Account Updater), scripted per outcome. */
export interface AccountUpdaterScript {
  message: (typeof ACCOUNT_UPDATER_MESSAGES)[number];
  expiryMonth?: number;
  expiryYear?: number;
  /** A new card number (only merchants set up for it receive it). */
  cardNumber?: string;
  /** A network token applied in place of the card. */
  networkToken?: { number: string; expiryMonth: number; expiryYear: number };
  lastFour?: string;
  cardBin?: string;
  cardBrand?: string;
}

export type Outcome =
  | { type: 'authorize'; accountUpdater?: AccountUpdaterScript }
  | {
      type: 'refuse';
      code: string;
      adviceCode?: string;
      description?: string;
      spelling?: RefusalSpelling;
      accountUpdater?: AccountUpdaterScript;
    }
  | { type: 'error'; status: number; errorName?: string; retryAfterSeconds?: number }
  // `next`, not `then`: an object with a `then` key looks like a promise to `await`. The HTTP
  // control API also accepts `then` (the name in the issue) and renames it.
  | { type: 'slow'; ms: number; next?: Outcome }
  | { type: 'lost' };

export interface ScriptMatch {
  chainId?: string;
  transactionReference?: string;
  /** v7: a full card number; also matches the token and network token its first payment made. */
  cardNumber?: string;
  /** v7: a `card/token` href. */
  tokenHref?: string;
  /** v7: a `card/networkToken` token number. */
  networkToken?: string;
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
  /** Card Payments v7 requests only: what a test checks of them (never a full card number). */
  api?: 'v7';
  /** The scheme reference the request sent, byte for byte (trailing spaces kept). */
  schemeReference?: string;
  customerAgreementType?: string;
  instrumentType?: string;
  lastFour?: string;
  expiryMonth?: number;
  expiryYear?: number;
  requestAccountUpdater?: boolean;
  /** The Account Updater message the answer carried. */
  accountUpdaterMessage?: string;
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
