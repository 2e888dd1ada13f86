import { RebillError } from '../errors.ts';

/**
 * Errors a gateway client raises. Billing code branches on the class, never on the message:
 * a RequestRejectedError is safe to fix and retry, a TimeoutError or a ConnectionError that
 * may have reached the server means the outcome is unknown, a ContractError means the
 * gateway answered something the client cannot read (treat a charge as unknown too).
 */

export interface ExchangeDetails {
  httpStatus?: number | undefined;
  correlationId?: string | undefined;
  latencyMs?: number | undefined;
  cause?: unknown;
}

export class GatewayError extends RebillError {
  override name = 'GatewayError';
  readonly httpStatus: number | undefined;
  readonly correlationId: string | undefined;
  latencyMs: number | undefined;

  constructor(message: string, details: ExchangeDetails = {}, code = 'gateway_error') {
    super(message, code, details.cause === undefined ? undefined : { cause: details.cause });
    this.httpStatus = details.httpStatus;
    this.correlationId = details.correlationId;
    this.latencyMs = details.latencyMs;
  }
}

/**
 * The connection failed. `reachedServer` is false only when the request provably never left
 * (refused, DNS, connect timeout): only then is resending anything safe.
 */
export class ConnectionError extends GatewayError {
  override name = 'ConnectionError';
  readonly reachedServer: boolean;
  /** The socket-level code (ECONNREFUSED, UND_ERR_SOCKET...), when there is one. */
  readonly socketCode: string | undefined;

  constructor(
    message: string,
    details: ExchangeDetails & { reachedServer: boolean; code?: string | undefined },
  ) {
    super(message, details, 'gateway_transport');
    this.reachedServer = details.reachedServer;
    this.socketCode = details.code;
  }
}

/** The client was closed (shutdown) before this request could go out: it was never sent. */
export class ClientClosedError extends ConnectionError {
  override name = 'ClientClosedError';
  constructor(message = 'http client is closed') {
    super(message, { reachedServer: false, code: 'CLIENT_CLOSED' });
  }
}

/** No (complete) answer in time. `phase: 'connect'` never reached the server. */
export class TimeoutError extends GatewayError {
  override name = 'TimeoutError';
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

/** A 4xx: the gateway refused the request itself (nothing was processed); fix it and retry. */
export class RequestRejectedError extends GatewayError {
  /**
   * Our credentials (401/403) or our pace (429) were turned away, not the request: the same
   * request will go through once that is fixed. Nothing here is about the card.
   */
  get aboutUs(): boolean {
    return this.status === 401 || this.status === 403 || this.status === 408 || this.status === 429;
  }

  override name = 'RequestRejectedError';
  readonly status: number;
  readonly errorName: string | undefined;
  readonly validationErrors: ValidationErrorDetail[];

  constructor(
    message: string,
    details: ExchangeDetails & {
      status: number;
      errorName?: string | undefined;
      validationErrors?: ValidationErrorDetail[] | undefined;
    },
  ) {
    super(message, { ...details, httpStatus: details.status });
    this.status = details.status;
    this.errorName = details.errorName;
    this.validationErrors = details.validationErrors ?? [];
  }
}

/** The gateway answered, but not in the shape the contract promises. */
export class ContractError extends GatewayError {
  override name = 'ContractError';
}
