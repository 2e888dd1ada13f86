/**
 * Raw SQL results differ by driver: postgres.js returns int8 as string and (through drizzle)
 * timestamptz as string, PGlite returns bigint and Date. Hot-path queries read columns
 * through these helpers instead of trusting either.
 */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string') return Number(v);
  throw new TypeError(`expected a number, got ${typeof v}`);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
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

export function dateOrNull(v: unknown): Date | null {
  return v === null || v === undefined ? null : date(v);
}

export function str(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}
