import { sql } from 'drizzle-orm';
import type { Database } from '../../src/db/client.ts';
import type { Chain } from './chains.ts';

/**
 * Seed `mandates` due subscriptions in bulk (a few statements, whatever N): one customer and
 * one link credential per chain, each pointing at its chain's first recurring link, and the
 * mandates spread over the credentials round-robin, all due at `dueAt`.
 */
export async function seedDueMandates(
  database: Database,
  opts: { mandates: number; chains: Chain[]; dueAt: Date; tag?: string },
): Promise<void> {
  const tag = opts.tag ?? 'bench';
  const n = opts.chains.length;
  await database.rows(
    sql`insert into customers (ref) select ${`${tag}-`}::text || g from generate_series(0, ${n - 1}::int) g`,
  );
  await database.rows(sql`insert into credentials (customer_id, instrument_type, fingerprint)
    select id, 'link', ref from customers where ref like ${`${tag}-%`}`);
  for (let from = 0; from < n; from += 2000) {
    const part = opts.chains.slice(from, from + 2000);
    const values = part.map((c, i) => sql`(${`${tag}-${from + i}`}, ${c.href})`);
    await database.rows(sql`insert into links (credential_id, source, rel, href)
      select cr.id, 'verification', 'payments:recurringAuthorize', v.href
        from (values ${sql.join(values, sql`, `)}) as v(fp, href) join credentials cr on cr.fingerprint = v.fp`);
  }
  // a row inserted by a CTE is invisible to the same statement's UPDATE: link credentials apart
  await database.rows(sql`update credentials c set current_link_id = l.id from links l
    where l.credential_id = c.id and c.fingerprint like ${`${tag}-%`}`);
  const due = opts.dueAt.toISOString();
  // chunks keep PGlite's single WASM heap small; PostgreSQL does not mind either way
  const chunk = database.kind === 'pglite' ? 20_000 : 250_000;
  for (let from = 0; from < opts.mandates; from += chunk) {
    const to = Math.min(opts.mandates, from + chunk) - 1;
    await database.rows(sql`insert into mandates (customer_id, credential_id, intent, amount, currency, entity,
        narrative, interval_unit, interval_count, timezone, anchor_at, start_at, next_due_at)
      select cr.customer_id, cr.id, 'subscription', 500 + g % 1000, 'GBP', 'default', 'Bench', 'month', 1, 'UTC',
             ${due}::timestamptz, ${due}::timestamptz, ${due}::timestamptz
        from generate_series(${from}::int, ${to}::int) g
        join credentials cr on cr.fingerprint = ${`${tag}-`}::text || (g % ${n}::int)::text`);
  }
  if (database.kind === 'postgres') await database.rows(sql`analyze`);
}
