import { quoteSafely } from '../domain/card.ts';
import { parseInstant as parseStrictInstant } from '../domain/instant.ts';
import { exitCodes, InvalidRequestError, RebillError } from '../errors.ts';

export { exitCodes };

/** The exit code an error ends the CLI with: its kind's, or 1 for anything rebill did not raise. */
export function exitCodeFor(err: unknown): number {
  return err instanceof RebillError ? err.exitCode : exitCodes.failure;
}

/** An instant as the API writes it (`2026-12-01T09:00:00.000Z`), with its milliseconds. */
const ISO_WITH_MS = /(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z/g;

/**
 * Human output's instants to the second (`2026-12-01T09:00:00Z`): the milliseconds the API and
 * `--json` keep are noise to a reader. Applied to every instant in the text.
 */
export const humanTimes = (text: string): string => text.replace(ISO_WITH_MS, '$1Z');

/** A plain text table: a header row, then rows, columns padded to their widest cell; instants to the second. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : humanTimes(String(c))))),
  ];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return `${[line(cells[0]!), line(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(line)].join('\n')}\n`;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** What an integer flag or argument accepts: the range the API accepts for the same field. */
export interface IntRange {
  min: number;
  max: number;
  /** How the refusal names it ("a positive id"). */
  what: string;
}

const SAFE = Number.MAX_SAFE_INTEGER;
export const POSITIVE: IntRange = { min: 1, max: SAFE, what: 'a positive integer' };
export const ID: IntRange = { min: 1, max: SAFE, what: 'a positive id' };
/** A cursor: an id, or 0 for the start. */
export const CURSOR: IntRange = { min: 0, max: SAFE, what: 'an id, or 0' };
export const PAGE_SIZE: IntRange = { min: 1, max: 1000, what: 'an integer from 1 to 1000' };

/**
 * The one parser of every numeric flag and argument: an integer in the range, or an
 * InvalidRequestError (exit 2) naming the flag, so nothing out of range reaches the database.
 */
export function parseInteger(name: string, v: string, range: IntRange = POSITIVE): number {
  const n = /^-?\d{1,16}$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max)
    throw new InvalidRequestError(`${name}: expected ${range.what}, got ${quoteSafely(v)}`);
  return n;
}

/** An integer option's parser for commander (see parseInteger). */
export function intOption(name: string, range: IntRange = POSITIVE) {
  return (v: string): number => parseInteger(name, v, range);
}

export function idArg(name: string, v: string): number {
  return parseInteger(name, v, ID);
}

/** Parse an ISO-8601 instant strictly (see domain/instant.ts); without an offset it is UTC. */
export function parseInstant(name: string, v: string): Date {
  return parseStrictInstant(name, v, 'UTC');
}
