/**
 * The exit codes of the CLI that mean something to scripts (README, "CLI"). An error's kind
 * carries its own (`exitCode`); the CLI reads it from the error.
 */
export const exitCodes = {
  ok: 0,
  failure: 1,
  invalid: 2,
  notFound: 3,
  conflict: 4,
  /** A run finished, but some charges errored (not sent, or turned away for a reason not the card's). */
  completedWithErrors: 5,
} as const;

/** What a class of error says about itself, read from the class (its statics). */
export interface ErrorKind {
  /** The class's own name, also the error's `name` (stripe-node's `type`). */
  readonly type: string;
  /** The status the admin API answers with. */
  readonly httpStatus: number;
  /** The CLI's exit status. */
  readonly exitCode: number;
  /** The stable code of the API's error body. */
  readonly code: string;
  /** Whether the message may go out to an API client; if not, the API says only "internal error". */
  readonly exposed: boolean;
}

/**
 * The one root of the errors rebill raises on purpose. Each class is a kind (as stripe-node's
 * StripeInvalidRequestError...): it carries, as statics read through the instance, the HTTP
 * status the API answers with, the CLI's exit code, the API body's stable `code` and a `type`
 * named after the class, so the API and the CLI read them off the error instead of mapping
 * code strings. Billing branches on the class, never on a message or a status number. The
 * root itself is the "internal" kind: a 500 whose message stays inside, exit code 1. The
 * gateway clients' errors (`src/gateways/errors.ts`) hang from the same root.
 */
export class RebillError extends Error {
  static readonly type: string = 'RebillError';
  static readonly httpStatus: number = 500;
  static readonly exitCode: number = exitCodes.failure;
  static readonly code: string = 'error';
  static readonly exposed: boolean = false;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.type;
  }

  /** The class this error is an instance of: its kind. */
  get kind(): ErrorKind {
    return this.constructor as typeof RebillError;
  }

  get type(): string {
    return this.kind.type;
  }

  get httpStatus(): number {
    return this.kind.httpStatus;
  }

  get exitCode(): number {
    return this.kind.exitCode;
  }

  get code(): string {
    return this.kind.code;
  }

  get exposed(): boolean {
    return this.kind.exposed;
  }
}

/**
 * Bad input: a flag, a header or a file checked as a whole, whose message names it (stripe-node's
 * StripeInvalidRequestError). An input with a field name is a ValidationError.
 */
export class InvalidRequestError extends RebillError {
  static override readonly type: string = 'InvalidRequestError';
  static override readonly httpStatus: number = 400;
  static override readonly exitCode: number = exitCodes.invalid;
  static override readonly code: string = 'validation_error';
  static override readonly exposed: boolean = true;
}

/** Bad input in a named field: an argument, a body field, an import row (`field` in the API's body). */
export class ValidationError extends InvalidRequestError {
  static override readonly type: string = 'ValidationError';

  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** A thing asked for by id that does not exist. */
export class NotFoundError extends RebillError {
  static override readonly type: string = 'NotFoundError';
  static override readonly httpStatus: number = 404;
  static override readonly exitCode: number = exitCodes.notFound;
  static override readonly code: string = 'not_found';
  static override readonly exposed: boolean = true;

  /** `what id not found`, or with `id` null the message as given. */
  constructor(what: string, id: string | number | null) {
    super(id === null ? what : `${what} ${id} not found`);
  }
}

/** A request that is well-formed but not allowed in the current state (amount limits, states). */
export class ConflictError extends RebillError {
  static override readonly type: string = 'ConflictError';
  static override readonly httpStatus: number = 409;
  static override readonly exitCode: number = exitCodes.conflict;
  static override readonly code: string = 'conflict';
  static override readonly exposed: boolean = true;
}

/** rebill cannot take the work now (shutting down); the same request later will do. */
export class UnavailableError extends RebillError {
  static override readonly type: string = 'UnavailableError';
  static override readonly httpStatus: number = 503;
  static override readonly code: string = 'unavailable';
  static override readonly exposed: boolean = true;
}

/**
 * The database cannot be reached: the connection was refused, closed or timed out, or the server
 * is shutting down or starting. A transaction cut short rolls back (one whose commit was under
 * way may have landed: a client retries with its Idempotency-Key). The API answers 503 with
 * `Retry-After`.
 */
export class DatabaseUnavailableError extends UnavailableError {
  static override readonly type: string = 'DatabaseUnavailableError';
  static override readonly code: string = 'database_unavailable';
  /** What the API's Retry-After says: about one connect timeout and a reconnect. */
  static readonly retryAfterSeconds = 5;
}

/** The API was called without credentials (or with a session that has ended). */
export class UnauthorizedError extends RebillError {
  static override readonly type: string = 'UnauthorizedError';
  static override readonly httpStatus: number = 401;
  static override readonly code: string = 'unauthorized';
  static override readonly exposed: boolean = true;
}

/** The API was called with credentials that are not good for it. */
export class ForbiddenError extends RebillError {
  static override readonly type: string = 'ForbiddenError';
  static override readonly httpStatus: number = 403;
  static override readonly code: string = 'forbidden';
  static override readonly exposed: boolean = true;
}

/**
 * The gateway turned down what an operator asked of a payment (settle, refund...): the action
 * is recorded as failed and the API answers 502 with the gateway's reason. The gateway's own
 * error is the `cause`.
 */
export class GatewayRejectedError extends RebillError {
  static override readonly type: string = 'GatewayRejectedError';
  static override readonly httpStatus: number = 502;
  static override readonly code: string = 'gateway_rejected';
  static override readonly exposed: boolean = true;
}

/**
 * An error's message as it may be logged, stored on a run or printed: its first line only,
 * and for a failed database statement the driver's code and reason with the head of the
 * statement, never its parameters (which can hold card data, fingerprints, names).
 */
export function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const first = err.message.split('\n')[0] ?? '';
  if (!first.startsWith('Failed query:')) return first;
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  const code = typeof cause?.code === 'string' ? ` ${cause.code}` : '';
  const reason =
    (typeof cause?.message === 'string' ? cause.message.split('\n')[0] : undefined) ?? 'the statement failed';
  const statement = first.slice('Failed query:'.length).trim().replace(/\s+/g, ' ').slice(0, 60);
  return `database error${code}: ${maskDigitRuns(reason)} (in "${statement}...")`;
}

/** Any run of 12 or more digits cut to its last four: a driver's reason may quote a value. */
function maskDigitRuns(text: string): string {
  return text.replace(
    /\d(?:[ -]?\d){11,}/g,
    (run) => `[digits ending ${run.replace(/[ -]/g, '').slice(-4)}]`,
  );
}
