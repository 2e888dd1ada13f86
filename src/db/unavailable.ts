import { DatabaseUnavailableError, RebillError } from '../errors.ts';

/** postgres.js's own connection codes, and the socket's while connecting or talking. */
const DRIVER_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

function unreachableCode(code: string): boolean {
  return DRIVER_CODES.has(code) || code.startsWith('08') || /^57P0[1-5]$/.test(code) || code === '53300';
}

/**
 * Whether an error says the database could not be reached, rather than that a statement was
 * wrong: what the API answers 503 for and what ends a run as `interrupted`.
 *
 * - postgres.js's own connection codes (the pool's socket closed, ended, destroyed, or the
 *   connect timed out);
 * - the socket's errors while connecting or talking (refused, reset, unreachable, a name that
 *   does not resolve);
 * - PostgreSQL's SQLSTATE class 08 (connection exception), 57P01-57P05 (administrator, crash
 *   or idle-session shutdown, the server still starting, the database dropped) and 53300 (no
 *   connection slot free).
 *
 * The error is read through its causes (drizzle wraps a failed query as "Failed query: ..."),
 * but never through one of rebill's own errors: a gateway's refused connection is the gateway's,
 * not the database's.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    if (e instanceof DatabaseUnavailableError) return true;
    if (e instanceof RebillError) return false;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && unreachableCode(code)) return true;
    e = e.cause;
  }
  return false;
}

/** The error as the API and the CLI report it: a DatabaseUnavailableError when it is one. */
export function asDatabaseUnavailable(err: unknown): unknown {
  if (err instanceof DatabaseUnavailableError || !isDatabaseUnavailable(err)) return err;
  return new DatabaseUnavailableError('the database cannot be reached: retry shortly', { cause: err });
}
