import { sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { NotFoundError } from '../../errors.ts';

/**
 * A mandate's activity, read from the audit trail: every move and change of the mandate, of its
 * charges, their attempts and payment actions, its scheduled changes and the credentials it
 * has been charged on, newest first, a keyset page at a time (`before`, the last id read).
 */
export interface ActivityItem {
  id: number;
  at: string;
  /** What moved: `mandate`, `charge`, `attempt`, `payment_action`, `mandate_change`, `credential`. */
  entity: string;
  entityId: number;
  from: string | null;
  to: string;
  reason: string | null;
  actor: string;
  runId: number | null;
  /** The before and after of a change that is not a state move (a mandate update). */
  detail: unknown;
}

interface ActivityRow {
  id: number;
  at: Date;
  entity_type: string;
  entity_id: number;
  from_state: string | null;
  to_state: string;
  reason: string | null;
  actor: string;
  run_id: number | null;
  detail: unknown;
}

export async function mandateActivity(
  database: Database,
  mandateId: number,
  opts: { limit?: number | undefined; before?: number | undefined } = {},
): Promise<{ items: ActivityItem[]; next: number | null }> {
  const found = await database.rows<{ id: number }>(sql`select id from mandates where id = ${mandateId}`);
  if (!found[0]) throw new NotFoundError('mandate', mandateId);
  const limit = opts.limit ?? 100;
  const rows = await database.rows<ActivityRow>(sql`
    with ch as (select id from charges where mandate_id = ${mandateId}),
    owned (entity_type, entity_id) as (
      select 'mandate', ${mandateId}::bigint
      union all select 'charge', id from ch
      union all select 'attempt', a.id from attempts a where a.charge_id in (select id from ch)
      union all select 'payment_action', p.id from payment_actions p where p.charge_id in (select id from ch)
      union all select 'mandate_change', c.id from mandate_changes c where c.mandate_id = ${mandateId}
      union select 'credential', credential_id from mandates where id = ${mandateId} and credential_id is not null
      union select 'credential', a.credential_id from attempts a where a.charge_id in (select id from ch)
    )
    select l.id, l.created_at as at, l.entity_type, l.entity_id, l.from_state, l.to_state, l.reason, l.actor, l.run_id, l.detail
      from audit_log l join owned o on o.entity_type = l.entity_type and o.entity_id = l.entity_id
     where ${opts.before === undefined ? sql`true` : sql`l.id < ${opts.before}`}
     order by l.id desc
     limit ${limit + 1}`);
  const page = rows.slice(0, limit);
  return {
    items: page.map((r) => ({
      id: r.id,
      at: r.at.toISOString(),
      entity: r.entity_type,
      entityId: r.entity_id,
      from: r.from_state,
      to: r.to_state,
      reason: r.reason,
      actor: r.actor,
      runId: r.run_id,
      detail: r.detail ?? null,
    })),
    next: rows.length > limit ? page.at(-1)!.id : null,
  };
}
