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

export class GatewayError extends Error {
  override name = 'GatewayError';
  readonly httpStatus: number | undefined;
  readonly correlationId: string | undefined;
  latencyMs: number | undefined;

  constructor(message: string, details: ExchangeDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
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
  readonly code: string | undefined;

  constructor(
    message: string,
    details: ExchangeDetails & { reachedServer: boolean; code?: string | undefined },
  ) {
    super(message, details);
    this.reachedServer = details.reachedServer;
    this.code = details.code;
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
