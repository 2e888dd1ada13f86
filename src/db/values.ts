import type { InferSelectModel, Table } from 'drizzle-orm';
/**
 * How both drivers read the types JavaScript has no single reading for (`createDatabase` gives
 * these to postgres.js and to PGlite alike, so a raw row has the same JS types on either):
 *
 * - int8: a number. Amounts are minor units and ids are sequences, far below 2^53; so is the
 *   outbox's `tx` (a transaction id with its epoch, 2^53 would take 2^21 wraparounds). A value
 *   past 2^53 is an error, not a silently rounded number.
 * - numeric (what `sum(int8)` and `avg` return): a number. No column is numeric; sums of
 *   amounts are whole minor units, and a whole one past 2^53 is an error too.
 * - timestamptz: a Date; timestamp (without time zone) as UTC, as drizzle reads it; 'infinity'
 *   and '-infinity' as the latest and earliest Date.
 * - date, interval, and the rest: as the driver gives them (no column uses them).
 */
export const INT8 = 20;
export const NUMERIC = 1700;
export const TIMESTAMP = 1114;
export const TIMESTAMPTZ = 1184;
export const TEXT_ARRAY = 1009;
export const INT4_ARRAY = 1007;
export const INT8_ARRAY = 1016;

/**
 * A one-dimensional array from PostgreSQL's text form (`{a,"b,c",NULL}`), each element read by
 * `element`: for postgres.js, which does not fetch array types (src/db/client.ts says why);
 * PGlite parses arrays itself. `webhook_endpoints.events` (text[]) is the one array column.
 */
export function parseArray<T>(text: string, element: (text: string) => T): (T | null)[] {
  if (!text.startsWith('{') || !text.endsWith('}'))
    throw new TypeError(`not an array literal: ${text.slice(0, 40)}`);
  const out: (T | null)[] = [];
  const body = text.slice(1, -1);
  let i = 0;
  while (i < body.length) {
    let value = '';
    if (body[i] === '"') {
      for (i++; i < body.length && body[i] !== '"'; i++) {
        if (body[i] === '\\') i++;
        value += body[i];
      }
      i++;
      out.push(element(value));
    } else {
      while (i < body.length && body[i] !== ',') value += body[i++];
      out.push(value === 'NULL' ? null : element(value));
    }
    if (body[i] === ',') i++;
  }
  return out;
}

/** The array types a raw row may hold, for postgres.js. */
export const pgArrayParsers: Record<number, (text: string) => unknown> = {
  [TEXT_ARRAY]: (text) => parseArray(text, (x) => x),
  [INT4_ARRAY]: (text) => parseArray(text, Number),
  [INT8_ARRAY]: (text) => parseArray(text, parseInt8),
};

export function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 ${text} is beyond 2^53: read it as text`);
  return n;
}

export function parseNumeric(text: string): number {
  const n = Number(text);
  if (Number.isInteger(n) && !Number.isSafeInteger(n))
    throw new RangeError(`numeric ${text} is beyond 2^53: read it as text`);
  return n;
}

const LATEST = 8.64e15;

/** PostgreSQL's ISO text form of a timestamp ("2026-01-01 00:00:00.123456+00"), as a Date. */
export function parseTimestamp(text: string, utc = false): Date {
  if (text === 'infinity') return new Date(LATEST);
  if (text === '-infinity') return new Date(-LATEST);
  const iso = text.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00');
  const d = new Date(utc ? `${iso}Z` : iso);
  if (Number.isNaN(d.getTime())) throw new TypeError(`unreadable timestamp ${text}`);
  return d;
}

export const pgParsers: Record<number, (text: string) => unknown> = {
  [INT8]: parseInt8,
  [NUMERIC]: parseNumeric,
  [TIMESTAMPTZ]: (text) => parseTimestamp(text),
  [TIMESTAMP]: (text) => parseTimestamp(text, true),
};

/**
 * Column readers from before both drivers agreed on types (they did not: postgres.js gave int8
 * and timestamptz as strings): what still uses them gets the value back unchanged. The code
 * reads rows by type (`rows<T>()`); the tests and the bench still read some rows through these.
 */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string') return Number(v);
  throw new TypeError(`expected a number, got ${typeof v}`);
}

export function date(v: unknown): Date {
  if (v instanceof Date) return v;
  if (typeof v === 'string') {
    // postgres text form "2026-01-01 00:00:00+00" is accepted by Date once the space is a T.
    const d = new Date(v.includes('T') ? v : v.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
    if (!Number.isNaN(d.getTime())) return d;
  }
  throw new TypeError(`expected a timestamp, got ${String(v)}`);
}

export function str(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

/**
 * A whole row of `table` as raw SQL reads it (`select *`, `returning *`): its columns under their
 * SQL names, with the types drizzle infers for them (which both drivers now return). The SQL name
 * is the property's in snake case, as the schema names its columns (audit_log's `at` is the one
 * exception, `created_at`: read it with a row type of its own).
 */
export type RawRow<T extends Table> = {
  [K in keyof InferSelectModel<T> & string as SnakeCase<K>]: InferSelectModel<T>[K];
};
type SnakeCase<S extends string> = S extends `${infer C}${infer Rest}`
  ? `${C extends Lowercase<C> ? C : `_${Lowercase<C>}`}${SnakeCase<Rest>}`
  : S;
