import { ConfigError } from '../config.ts';
import { RebillError, ValidationError } from '../errors.ts';

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** An error raised by the API layer itself (auth, idempotency, bad JSON), with its status. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const statusByCode: Record<string, number> = {
  validation_error: 400,
  not_found: 404,
  conflict: 409,
  gateway_rejected: 502,
  unavailable: 503,
};

const fastifyCodes: Record<number, string> = {
  413: 'body_too_large',
  415: 'unsupported_media_type',
};

/**
 * Map any error to a status and a JSON body. Only errors rebill raises on purpose carry their
 * message out; anything else is a 500 with a generic message, so driver errors, SQL or stack
 * details never reach a client.
 */
export function errorResponse(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof HttpError)
    return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  if (err instanceof ValidationError)
    return {
      status: 400,
      body: { error: { code: err.code, message: err.message, field: err.field } },
    };
  if (err instanceof ConfigError)
    return { status: 500, body: { error: { code: 'config', message: err.message } } };
  if (err instanceof RebillError) {
    const status = statusByCode[err.code];
    if (status) return { status, body: { error: { code: err.code, message: err.message } } };
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
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
}
