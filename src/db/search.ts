import { type SQL, sql } from 'drizzle-orm';
import { ValidationError } from '../errors.ts';

/**
 * The lists' one search rule, for mandates and charges alike (`q=` on the API, `--search` on
 * the CLI): the text matches
 * - the row's id exactly (digits only),
 * - a transaction reference exactly (an attempt's, or a settle's or refund's), or
 * - a customer ref by prefix (`ada` finds `ada` and `ada-1`; case-sensitive, `%` and `_` are
 *   plain characters).
 *
 * Every branch is read through an index: the row's primary key, the unique references, and
 * `customers_ref_prefix_idx` (text_pattern_ops) for the prefix.
 */
export const SEARCH_MAX = 200;

/** A LIKE pattern that matches the text as a prefix, its own `%`, `_` and `\` taken literally. */
export function likePrefix(text: string): string {
  return `${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The id a search text names, when it is one (1 to 15 digits, at least 1). */
export function searchId(text: string): number | null {
  if (!/^\d{1,15}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 ? n : null;
}

/** Refuses an empty or overlong search or customer ref, naming the field. */
export function checkSearchText(field: string, text: string): void {
  if (text.length === 0) throw new ValidationError(field, 'must not be empty');
  if (text.length > SEARCH_MAX) throw new ValidationError(field, `must be at most ${SEARCH_MAX} characters`);
}

/** The ids of the customers whose ref starts with `prefix`: a range scan of the prefix index. */
export const customersByPrefix = (prefix: string): SQL =>
  sql`select cu.id from customers cu where cu.ref like ${likePrefix(prefix)}`;
