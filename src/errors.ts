/**
 * The one root of the errors rebill raises on purpose. Each has a stable `code` for exit
 * statuses and API bodies, and billing branches on the class, never on a message or a status
 * number. The gateway clients' errors (`src/gateways/errors.ts`) hang from the same root.
 */
export class RebillError extends Error {
  override name = 'RebillError';
  constructor(
    message: string,
    readonly code: string = 'error',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Bad input: an argument, a body field, an import row. Names the field. */
export class ValidationError extends RebillError {
  override name = 'ValidationError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`, 'validation_error');
  }
}

export class NotFoundError extends RebillError {
  override name = 'NotFoundError';
  constructor(what: string, id: string | number) {
    super(`${what} ${id} not found`, 'not_found');
  }
}

/** A request that is well-formed but not allowed in the current state (amount limits, states). */
export class ConflictError extends RebillError {
  override name = 'ConflictError';
  constructor(message: string) {
    super(message, 'conflict');
  }
}
