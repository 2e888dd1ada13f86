/**
 * The one interface every gateway adapter implements. Billing code speaks only this; each
 * adapter maps its native requests, statuses and errors in one place. Adapters never touch
 * the database.
 */

import type { ChargeAction } from '../domain/charge-actions.ts';

export type Intent = 'subscription' | 'instalment' | 'unscheduled';

export interface Money {
  /** Integer minor units. */
  amount: number;
  /** ISO-4217 alpha-3. */
  currency: string;
}

/** What the gateway is asked to charge. */
export type Instrument =
  /** Worldpay: POST to a stored `payments:recurringAuthorize` link. */
  | { type: 'link'; href: string }
  /** Worldpay migrateRecurring with a plain card. */
  | {
      type: 'card/plain';
      cardNumber: string;
      expiryMonth: number;
      expiryYear: number;
      cardHolderName?: string;
    }
  /** Worldpay migrateRecurring with a Worldpay token href. */
  | { type: 'card/token'; href: string }
  /** Worldpay migrateRecurring with an Apple Pay network token. */
  | {
      type: 'card/networkToken+applepay';
      dpan: string;
      expiryMonth: number;
      expiryYear: number;
      cardHolderName?: string;
    }
  /** Liquido: a vaulted card. */
  | { type: 'liquido/cardId'; cardId: string }
  /**
   * Worldpay Card Payments v7: a merchant-initiated transaction on a stored card, tied to the
   * customer's first payment by `AuthorizeRequest.schemeReference`.
   */
  | { type: 'mit'; card: MitCard };

/** The stored card a v7 merchant-initiated transaction is charged on. */
export type MitCard =
  | { type: 'card/token'; href: string }
  | {
      type: 'card/plain';
      cardNumber: string;
      expiryMonth: number;
      expiryYear: number;
      cardHolderName?: string | undefined;
    }
  | { type: 'card/networkToken'; tokenNumber: string; expiryMonth: number; expiryYear: number };

/**
 * What Worldpay's Account Updater answered about the card (v7 `updatedPaymentInstrument`).
 * `cardNumber` is secret: never logged, stored only encrypted.
 */
export interface UpdatedInstrument {
  /** `accountUpdaterMessage` as Worldpay wrote it (its own misspellings included). */
  message: string;
  expiryMonth?: number | undefined;
  expiryYear?: number | undefined;
  cardNumber?: string | undefined;
  cardBin?: string | undefined;
  lastFour?: string | undefined;
  cardBrand?: string | undefined;
  fundingType?: string | undefined;
  /** The payment went out on a network token instead of the card. */
  appliedNetworkToken?: boolean | undefined;
}

export interface AuthorizeRequest {
  /** Deterministic per (mandate, cycle, attempt): Worldpay transactionReference / Liquido idempotencyKey. */
  reference: string;
  instrument: Instrument;
  value: Money;
  entity: string;
  narrative: string;
  intent: Intent;
  /**
   * Scheme reference of the customer's first, customer-initiated transaction, when known: sent
   * byte for byte on every v7 merchant-initiated charge (`customerAgreement.schemeReference`).
   */
  schemeReference?: string | undefined;
  /** Customer reference, for gateways that want payer details. */
  customerRef?: string | undefined;
}

/** What every call reports about the exchange itself, for logs, metrics and the attempt row. */
export interface Exchange {
  httpStatus?: number | undefined;
  correlationId?: string | undefined;
  latencyMs: number;
}

/**
 * Links a payment returned, by relation name exactly as the gateway named it (CURIE form,
 * e.g. `payments:settle`, `action:refund`). Hrefs are opaque: follow them as they are.
 */
export type Links = Record<string, string>;

export type AuthorizeResult =
  | (Exchange & {
      outcome: 'authorized';
      /** Gateway identity of the payment (Worldpay: the events href; Liquido: the idempotencyKey). */
      paymentId: string;
      links: Links;
      /** The credential link to use for the next payment, when the response carried one. */
      nextRecurringLink?: string | undefined;
      schemeReference?: string | undefined;
      authorizationCode?: string | undefined;
      riskFactors?: unknown[] | undefined;
      /** v7 with the Account Updater: what it changed about the card. */
      updatedInstrument?: UpdatedInstrument | undefined;
    })
  | (Exchange & {
      outcome: 'refused';
      code: string;
      description?: string | undefined;
      adviceCode?: string | undefined;
      riskFactors?: unknown[] | undefined;
      updatedInstrument?: UpdatedInstrument | undefined;
    })
  | (Exchange & {
      /** Timeout, reset or 5xx: the gateway may or may not have acted. Never resend blindly. */
      outcome: 'unknown';
      reason: string;
      /** false: the request provably never left (refused connection, client closed). */
      reachedServer?: boolean;
    });

/** The operator's charge actions that are a request to the gateway (all but retrying). */
export type PaymentActionKind = Exclude<ChargeAction, 'retryNow'>;

export interface PaymentActionRequest {
  kind: PaymentActionKind;
  /** Links of the payment as last known (from the authorization, an earlier action or a query). */
  links: Links;
  /** Gateway identity of the payment (see AuthorizeResult.paymentId). */
  paymentId: string;
  /** Required for partial actions; may be ignored by full ones. */
  value?: Money | undefined;
  /** Unique reference of this action (partials). */
  reference: string;
}

export type PaymentActionResult =
  | (Exchange & { outcome: 'accepted'; links: Links; status?: PaymentStatus | undefined })
  | (Exchange & { outcome: 'unknown'; reason: string });

/** Normalised payment status across gateways. */
export type PaymentStatus =
  | 'authorized'
  | 'refused'
  | 'sentForSettlement'
  | 'settled'
  | 'settlementFailed'
  | 'sentForCancellation'
  | 'cancelled'
  | 'sentForRefund'
  | 'refunded'
  | 'refundFailed'
  | 'error'
  | 'expired'
  | 'inProgress'
  | 'failed'
  /** Worldpay stored the card as a token (a fact, no move). */
  | 'tokenCreated'
  /** The issuer took the money back: a dispute lost, recorded on the charge. */
  | 'chargedBack'
  /** The issuer asks about the payment for a dispute; the funds are held meanwhile. */
  | 'informationRequested'
  | 'other';

export type QueryResult =
  | (Exchange & { found: true; status: PaymentStatus; rawStatus: string; links: Links })
  /** Not known (yet): Worldpay events lag up to 15 minutes, so this is not "never happened". */
  | (Exchange & { found: false })
  | (Exchange & { found: 'unknown'; reason: string });

export interface Gateway {
  readonly name: 'worldpay' | 'liquido';
  authorize(req: AuthorizeRequest): Promise<AuthorizeResult>;
  action(req: PaymentActionRequest): Promise<PaymentActionResult>;
  /** Status of a known payment (Worldpay: GET payments:events). */
  query(payment: { paymentId: string; links: Links }): Promise<QueryResult>;
  /**
   * Recovery: status by the reference of an authorization whose outcome is unknown. `api`:
   * Worldpay's card API the authorization was sent through (its media type is asked in).
   */
  queryByReference(reference: string, entity: string, api?: 'v6' | 'v7'): Promise<QueryResult>;
  close(): Promise<void>;
}
