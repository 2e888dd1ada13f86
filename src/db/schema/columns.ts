import { sql } from 'drizzle-orm';
import { bigint, bigserial, check, timestamp } from 'drizzle-orm/pg-core';
import { type Machine, states } from '../../domain/lifecycle.ts';

/**
 * One schema for PostgreSQL and PGlite. Money is integer minor units (bigint, read as a JS
 * number: amounts are far below 2^53) beside an ISO-4217 code; every instant is timestamptz.
 */
export const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
export const id = () => bigserial('id', { mode: 'number' }).primaryKey();
export const ref = (name: string) => bigint(name, { mode: 'number' });
export const money = (name: string) => bigint(name, { mode: 'number' });
export const created = () => ts('created_at').notNull().defaultNow();

/** A CHECK that a state column holds one of its machine's states (the list comes from the table). */
export const oneOf = (name: string, column: string, m: Machine<string>) =>
  check(
    name,
    sql.raw(
      `"${column}" in (${states(m)
        .map((s) => `'${s}'`)
        .join(', ')})`,
    ),
  );
