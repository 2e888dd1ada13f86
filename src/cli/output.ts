import { ConfigError } from '../config.ts';
import { DataDirInUseError } from '../db/client.ts';
import { quoteSafely } from '../domain/card.ts';
import { parseInstant as parseStrictInstant } from '../domain/instant.ts';
import { RebillError } from '../errors.ts';

/** Exit codes that mean something to scripts. */
export const exitCodes = {
  ok: 0,
  failure: 1,
  invalid: 2,
  notFound: 3,
  conflict: 4,
  /** A run finished, but some charges errored (not sent, or turned away for a reason not the card's). */
  completedWithErrors: 5,
} as const;

export function exitCodeFor(err: unknown): number {
  if (err instanceof ConfigError) return exitCodes.invalid;
  if (err instanceof DataDirInUseError) return exitCodes.conflict;
  if (err instanceof RebillError) {
    if (err.code === 'validation_error') return exitCodes.invalid;
    if (err.code === 'not_found') return exitCodes.notFound;
    if (err.code === 'conflict') return exitCodes.conflict;
  }
  if (err instanceof Error && err.name === 'ValidationError') return exitCodes.invalid;
  return exitCodes.failure;
}

/** A plain text table: a header row, then rows, columns padded to their widest cell. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c)))),
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
      throw new RebillError(`${name}: expected an integer, got ${quoteSafely(v)}`, 'validation_error');
    return Number(v);
  };
}

export function idArg(name: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new RebillError(`${name}: expected a positive id, got ${quoteSafely(v)}`, 'validation_error');
  return Number(v);
}

/** Parse an ISO-8601 instant strictly (see domain/instant.ts); without an offset it is UTC. */
export function parseInstant(name: string, v: string): Date {
  return parseStrictInstant(name, v, 'UTC');
}
