/**
 * The `credentials.status` writes, guarded by the credential machine (`credentialMachine` in
 * src/domain/lifecycle.ts; the `credentials_transition_guard` trigger refuses anything else).
 */
import { sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import { credentialMachine } from '../../domain/lifecycle.ts';
import { mayBecome } from './transitions.ts';

/** Take a credential's row for the rest of the transaction (before anything else it writes). */
export async function lockCredential(database: Database, on: Executor, id: number): Promise<void> {
  await database.rows(sql`select id from credentials where id = ${id} for update`, on);
}

/** Block a card (the issuer said it will never pay), audited; returns the ids blocked (none if it already was). */
export async function blockCredential(
  database: Database,
  on: Executor,
  id: number,
  reason: string,
): Promise<number[]> {
  const rows = await database.rows<{ id: number }>(
    sql`with b as (
        update credentials o set status = 'blocked', status_reason = ${reason}, updated_at = now()
         where id = ${id} and ${mayBecome(credentialMachine, 'o.status', 'blocked')} returning id),
      aud as (
        insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
        select 'credential', id, 'active', 'blocked', ${reason} from b)
      select id from b`,
    on,
  );
  return rows.map((r) => r.id);
}

/**
 * Where a credential stands now, as a run reads it before sending a group of its charges that
 * was claimed after an earlier group of the same run: the link that group ended on, and whether
 * it blocked the card (the claim read both before that group was sent).
 */
export async function credentialNow(
  database: Database,
  id: number,
): Promise<{ status: string; linkHref: string | null }> {
  const rows = await database.rows<{ status: string; href: string | null }>(
    sql`select cr.status, l.href from credentials cr left join links l on l.id = cr.current_link_id where cr.id = ${id}`,
  );
  const r = rows[0];
  if (!r) throw new Error(`credential ${id} is gone`);
  return { status: r.status, linkHref: r.href };
}
