import { RebillError } from '../errors.ts';

/**
 * Errors a gateway client raises. Billing code branches on the class, never on the message:
 * a RequestRejectedError is safe to fix and retry, a TimeoutError or a ConnectionError that
 * may have reached the server means the outcome is unknown, a ContractError means the
 * gateway answered something the client cannot read (treat a charge as unknown too).
 *
 * Two statuses, two names: `status` is what the gateway answered (undefined when it did not
 * answer), `httpStatus` (from the root) is what rebill's own API answers when such an error
 * reaches it: a 500 whose message stays inside, as for any error of the internal kind.
 */

/** What is known of the exchange an error came from; `httpStatus` is the gateway's answer. */
export interface ExchangeDetails {
  httpStatus?: number | undefined;
  correlationId?: string | undefined;
  latencyMs?: number | undefined;
  cause?: unknown;
}

export class GatewayError extends RebillError {
  static override readonly type: string = 'GatewayError';
  static override readonly code: string = 'gateway_error';

  /** The HTTP status the gateway answered, when it answered. */
  readonly status: number | undefined;
  readonly correlationId: string | undefined;
  latencyMs: number | undefined;

  constructor(message: string, details: ExchangeDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.httpStatus;
    this.correlationId = details.correlationId;
    this.latencyMs = details.latencyMs;
  }

  /**
   * The error a gateway's error answer is (as stripe-node's StripeError.generate picks a class
   * from the answer): our credentials turned away (`credentialStatuses`, 401 and 403 unless the
   * gateway says otherwise) are `classes.credentials`, any other 4xx is `classes.rejected`
   * (nothing was processed: fix and retry), anything else that is not a success is
   * `classes.other` (ContractError unless given). `message` may depend on which it is.
   */
  static generate(
    answer: GatewayAnswer,
    message: string | ((kind: GatewayAnswerKind) => string),
    classes: GatewayErrorClasses = {},
  ): GatewayError {
    const kind = answerKind(answer.status, classes.credentialStatuses ?? [401, 403]);
    const text = typeof message === 'string' ? message : message(kind);
    const { status, errorName, validationErrors, ...exchange } = answer;
    if (kind === 'other')
      return new (classes.other ?? ContractError)(text, { ...exchange, httpStatus: status });
    const rejected = classes.rejected ?? RequestRejectedError;
    const Class = kind === 'credentials' ? (classes.credentials ?? rejected) : rejected;
    return new Class(text, { ...exchange, status, errorName, validationErrors });
  }
}

/** A gateway's answer that is not a success, as its client read it. */
export interface GatewayAnswer extends Omit<ExchangeDetails, 'httpStatus'> {
  /** The HTTP status the gateway answered. */
  status: number;
  /** The gateway's name for the error, from its body (Worldpay `errorName`, Liquido `error`). */
  errorName?: string | undefined;
  validationErrors?: ValidationErrorDetail[] | undefined;
}

/** What an error answer is about: our credentials, the request itself, or neither (not a 4xx). */
export type GatewayAnswerKind = 'credentials' | 'rejected' | 'other';

type RejectedDetails = ExchangeDetails & {
  status: number;
  errorName?: string | undefined;
  validationErrors?: ValidationErrorDetail[] | undefined;
};

/** The classes a gateway's client answers with, where it has its own. */
export interface GatewayErrorClasses {
  /** A 4xx: default RequestRejectedError. */
  rejected?: new (
    message: string,
    details: RejectedDetails,
  ) => RequestRejectedError;
  /** Our credentials turned away: default `rejected`. */
  credentials?: new (
    message: string,
    details: RejectedDetails,
  ) => RequestRejectedError;
  /** The statuses that mean our credentials: default 401 and 403. */
  credentialStatuses?: readonly number[];
  /** Not a success and not a 4xx: default ContractError. */
  other?: new (
    message: string,
    details: ExchangeDetails,
  ) => GatewayError;
}

function answerKind(status: number, credentialStatuses: readonly number[]): GatewayAnswerKind {
  if (credentialStatuses.includes(status)) return 'credentials';
  return status >= 400 && status < 500 ? 'rejected' : 'other';
}

/**
 * The connection failed. `reachedServer` is false only when the request provably never left
 * (refused, DNS, connect timeout): only then is resending anything safe.
 */
export class ConnectionError extends GatewayError {
  static override readonly type: string = 'ConnectionError';
  static override readonly code: string = 'gateway_transport';
  readonly reachedServer: boolean;
  /** The socket-level code (ECONNREFUSED, UND_ERR_SOCKET...), when there is one. */
  readonly socketCode: string | undefined;

  constructor(
    message: string,
    details: ExchangeDetails & { reachedServer: boolean; code?: string | undefined },
  ) {
    super(message, details);
    this.reachedServer = details.reachedServer;
    this.socketCode = details.code;
  }
}

/** The client was closed (shutdown) before this request could go out: it was never sent. */
export class ClientClosedError extends ConnectionError {
  static override readonly type: string = 'ClientClosedError';
  constructor(message = 'http client is closed') {
    super(message, { reachedServer: false, code: 'CLIENT_CLOSED' });
  }
}

/** No (complete) answer in time. `phase: 'connect'` never reached the server. */
export class TimeoutError extends GatewayError {
  static override readonly type: string = 'TimeoutError';
  readonly phase: 'connect' | 'response';

  constructor(message: string, details: ExchangeDetails & { phase: 'connect' | 'response' }) {
    super(message, details);
    this.phase = details.phase;
  }

  get reachedServer(): boolean {
    return this.phase !== 'connect';
  }
}

export interface ValidationErrorDetail {
  errorName?: string | undefined;
  message?: string | undefined;
  jsonPath?: string | undefined;
}

const DUPLICATE_REFERENCE_ERRORS: ReadonlySet<string> = new Set([
  'transactionReferenceIsADuplicate',
  'duplicateTransactionReference',
  'duplicateReference',
]);

/** A 4xx: the gateway refused the request itself (nothing was processed); fix it and retry. */
export class RequestRejectedError extends GatewayError {
  static override readonly type: string = 'RequestRejectedError';

  /**
   * Our credentials (401/403) or our pace (429) were turned away, not the request: the same
   * request will go through once that is fixed. Nothing here is about the card.
   */
  get aboutUs(): boolean {
    return this.status === 401 || this.status === 403 || this.status === 408 || this.status === 429;
  }

  /**
   * The gateway says the request's reference was already used: it holds a payment (or an
   * action) under that reference, which is never an answer about the card. Worldpay's APM API
   * names it `transactionReferenceIsADuplicate` (the card API's own spelling is unpublished, so
   * the older `duplicateTransactionReference` is read too); partial actions say
   * `duplicateReference`.
   */
  get duplicateReference(): boolean {
    return this.errorName !== undefined && DUPLICATE_REFERENCE_ERRORS.has(this.errorName);
  }

  /** The gateway answered, so there is a status. */
  declare readonly status: number;
  readonly errorName: string | undefined;
  readonly validationErrors: ValidationErrorDetail[];

  constructor(message: string, details: RejectedDetails) {
    super(message, { ...details, httpStatus: details.status });
    this.errorName = details.errorName;
    this.validationErrors = details.validationErrors ?? [];
  }
}

/** The gateway answered, but not in the shape the contract promises. */
export class ContractError extends GatewayError {
  static override readonly type: string = 'ContractError';
}
