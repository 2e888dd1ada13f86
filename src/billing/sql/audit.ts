/**
 * The audit trail's rows that are not written inside a state move's own statement (those are
 * in `transitions.ts` and the commit statements beside it): creations, attachments, requests,
 * and the moves a batch statement makes for many rows at once.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Tx } from '../../db/client.ts';

/** One audit row, for writes that are not a state move of their own (creations, attachments). */
export function writeAudit(
  tx: Tx,
  type: string,
  id: number,
  from: string | null,
  to: string,
  reason: string,
  actor = 'operator',
  detail?: Record<string, unknown>,
) {
  return tx.execute(sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason, actor, detail)
    values (${type}, ${id}, ${from}, ${to}, ${reason}, ${actor}, ${detail === undefined ? null : JSON.stringify(detail)}::jsonb)`);
}

/**
 * The audit rows of rows just created by the same statement: `insert into audit_log ... select
 * ... from <cte>`, one per row of the CTE (its `id` column), for a CTE of that statement.
 */
export function auditCreatedRows(cte: string, type: string, to: string, reason: string, actor: string): SQL {
  if (!/^[a-z_]+$/.test(cte)) throw new TypeError(`not a CTE name: ${JSON.stringify(cte)}`);
  return sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason, actor)
          select ${type}, id, null, ${to}, ${reason}, ${actor} from ${sql.raw(cte)}`;
}

/** Charges a materialization created with credit taken off: each audited with its credit. */
export function auditCreditedCharges(tx: Tx, created: { mandateId: number; cycle: number }[]) {
  return tx.execute(sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason, detail)
            select 'charge', c.id, null, c.state, 'created; credit of ' || c.credit_applied || ' taken off',
                   jsonb_build_object('creditApplied', c.credit_applied)
              from charges c join (values ${sql.join(
                created.map((c) => sql`(${c.mandateId}::bigint, ${c.cycle}::int)`),
                sql`, `,
              )}) as v(mandate_id, cycle)
                on c.mandate_id = v.mandate_id and c.cycle = v.cycle`);
}

/** Mandates a materialization ended (schedule complete, or cancelled at period end), audited. */
export function auditEndedMandates(tx: Tx, ids: number[]) {
  return tx.execute(sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
          select 'mandate', id, 'active', status, case when status = 'cancelled' then 'cancelled at period end' else 'schedule complete' end
            from mandates where id in (${sql.join(
              ids.map((id) => sql`${id}`),
              sql`, `,
            )}) and status <> 'active'`);
}
