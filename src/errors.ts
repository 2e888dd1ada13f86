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
