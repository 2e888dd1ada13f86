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

/** Parse an integer option, naming it when it is not one. */
export function intOption(name: string) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v))
      throw new InvalidRequestError(`${name}: expected an integer, got ${quoteSafely(v)}`);
    return Number(v);
  };
}

export function idArg(name: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new InvalidRequestError(`${name}: expected a positive id, got ${quoteSafely(v)}`);
  return Number(v);
}

/** Parse an ISO-8601 instant strictly (see domain/instant.ts); without an offset it is UTC. */
export function parseInstant(name: string, v: string): Date {
  return parseStrictInstant(name, v, 'UTC');
}
