/**
 * The disputes table's writes: a dispute opened on a charge, and moved to `charged_back`, each
 * guarded by `disputeMachine` (src/domain/lifecycle.ts) and audited in the same statement; the
 * `disputes_transition_guard` trigger (migration 0018) refuses any other move. Both are no-ops
 * on a repeat, so an event applied twice records nothing twice.
 */
import { sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import type { disputes } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import { type DisputeStatus, disputeMachine } from '../../domain/lifecycle.ts';
import { mayBecome } from './transitions.ts';

export type DisputeRow = RawRow<typeof disputes>;

export interface DisputeOpening {
  chargeId: number;
  status: DisputeStatus;
  amount: number;
  currency: string;
  reasonCode: string | null;
  reason: string | null;
  /** The event's timestamp: when Worldpay says the dispute happened. */
  at: Date;
  eventId: string;
  policy: string | null;
}

/** Open the charge's dispute; undefined when it already has one (that one is left as it is). */
export async function openDispute(
  database: Database,
  on: Executor,
  d: DisputeOpening,
): Promise<DisputeRow | undefined> {
  const chargedBack = d.status === 'charged_back';
  const rows = await database.rows<DisputeRow>(
    sql`with ins as (
          insert into disputes (charge_id, status, amount, currency, reason_code, reason, disputed_at,
                                charged_back_at, opened_by_event_id, charged_back_event_id, policy)
          values (${d.chargeId}, ${d.status}, ${d.amount}, ${d.currency}, ${d.reasonCode}, ${d.reason},
                  ${d.at.toISOString()}::timestamptz,
                  ${chargedBack ? d.at.toISOString() : null}::timestamptz, ${d.eventId},
                  ${chargedBack ? d.eventId : null}, ${d.policy})
          on conflict (charge_id) do nothing
          returning *
        ), aud as (
          insert into audit_log (entity_type, entity_id, from_state, to_state, reason, actor)
          select 'dispute', id, null, status, ${`worldpay event ${d.eventId}`}, 'system' from ins
        )
        select * from ins`,
    on,
  );
  return rows[0];
}

/**
 * An open dispute of the charge charged back; undefined when there is none open (none at all,
 * or charged back already). The event's amount, reason and code replace the opening's when given.
 */
export async function chargeBackDispute(
  database: Database,
  on: Executor,
  d: Omit<DisputeOpening, 'status' | 'amount' | 'currency'> & {
    amount: number | null;
    currency: string | null;
  },
): Promise<DisputeRow | undefined> {
  const rows = await database.rows<DisputeRow>(
    sql`with moved as (
          update disputes set status = 'charged_back', charged_back_at = ${d.at.toISOString()}::timestamptz,
                 charged_back_event_id = ${d.eventId},
                 amount = coalesce(${d.amount}::bigint, amount), currency = coalesce(${d.currency}, currency),
                 reason_code = coalesce(${d.reasonCode}, reason_code), reason = coalesce(${d.reason}, reason),
                 policy = ${d.policy}, updated_at = now()
           where charge_id = ${d.chargeId} and ${mayBecome(disputeMachine, 'status', 'charged_back')}
          returning *
        ), aud as (
          insert into audit_log (entity_type, entity_id, from_state, to_state, reason, actor)
          select 'dispute', id, 'information_requested', 'charged_back', ${`worldpay event ${d.eventId}`}, 'system'
            from moved
        )
        select * from moved`,
    on,
  );
  return rows[0];
}

/** The charges' disputes (any number of charges), oldest first. */
export async function disputesOf(
  database: Database,
  chargeIds: readonly number[],
  on?: Executor,
): Promise<DisputeRow[]> {
  if (chargeIds.length === 0) return [];
  return database.rows<DisputeRow>(
    sql`select * from disputes where charge_id in (${sql.join(
      chargeIds.map((id) => sql`${id}::bigint`),
      sql`, `,
    )}) order by id`,
    on,
  );
}
