import { asDatabaseUnavailable } from '../db/unavailable.ts';
import {
  ConflictError,
  DatabaseUnavailableError,
  ForbiddenError,
  RebillError,
  ValidationError,
} from '../errors.ts';

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** A console request that changes something without the session's CSRF token. */
export class CsrfError extends ForbiddenError {
  static override readonly type: string = 'CsrfError';
  static override readonly code: string = 'csrf';
}

/** Too many failed authentications from one client: it waits out the minute (Retry-After). */
export class TooManyFailedAuthenticationsError extends RebillError {
  static override readonly type: string = 'TooManyFailedAuthenticationsError';
  static override readonly httpStatus: number = 429;
  static override readonly code: string = 'too_many_failed_authentications';
  static override readonly exposed: boolean = true;
}

/** An Idempotency-Key already used for a different request. */
export class IdempotencyMismatchError extends ConflictError {
  static override readonly type: string = 'IdempotencyMismatchError';
  static override readonly httpStatus: number = 422;
  static override readonly code: string = 'idempotency_mismatch';
}

/** An Idempotency-Key whose first request is still running. */
export class IdempotencyInProgressError extends ConflictError {
  static override readonly type: string = 'IdempotencyInProgressError';
  static override readonly code: string = 'idempotency_in_progress';
}

const fastifyCodes: Record<number, string> = {
  413: 'body_too_large',
  415: 'unsupported_media_type',
};

/** An error answer: its status, its body and the headers it needs (Retry-After). */
export interface ErrorAnswer {
  status: number;
  body: ErrorBody;
  headers?: Record<string, string>;
}

/**
 * Map any error to a status and a JSON body. An error rebill raises on purpose answers its
 * own status and code (`httpStatus`, `code`), with its message when its kind is exposed; a
 * database that cannot be reached is a 503 `database_unavailable` with Retry-After; anything
 * else is a 500 with a generic message, so driver errors, SQL or stack details never reach a
 * client.
 */
export function errorResponse(thrown: unknown): ErrorAnswer {
  const err = asDatabaseUnavailable(thrown);
  if (err instanceof DatabaseUnavailableError)
    return {
      status: err.httpStatus,
      body: { error: { code: err.code, message: err.message } },
      headers: { 'retry-after': String(DatabaseUnavailableError.retryAfterSeconds) },
    };
  if (err instanceof RebillError) {
    if (!err.exposed) return internalError();
    const field = err instanceof ValidationError ? err.field : undefined;
    return {
      status: err.httpStatus,
      body: {
        error:
          field === undefined
            ? { code: err.code, message: err.message }
            : { code: err.code, message: err.message, field },
      },
    };
  }
  // fastify's own client errors (bad JSON, body too large, unsupported media type).
  // Their codes (FST_ERR_...) are fastify's internals: the envelope carries our own.
  const e = err as { statusCode?: number; code?: string; message?: string };
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code = fastifyCodes[e.statusCode] ?? 'validation_error';
    return {
      status: e.statusCode,
      body: {
        error: {
          code,
          message: e.message ?? 'bad request',
          field: code === 'unsupported_media_type' ? 'content-type' : 'body',
        },
      },
    };
  }
  return internalError();
}

function internalError(): ErrorAnswer {
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
}
