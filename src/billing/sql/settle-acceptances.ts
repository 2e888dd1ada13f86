/**
 * Settle acceptances: the gateway's answers to the run's settle requests, committed together.
 *
 * Why batched: the settle's write-ahead row (`payment_actions`, state `requested`) is committed
 * with the authorization before the settle is sent, so what is left to record is only the
 * answer, and nothing is sent on the strength of it; a crash before this commit leaves the action
 * `requested`, which settlement resumption asks the gateway about. Committing up to 100 answers
 * in one statement (within 20 ms) took a charge from two transactions to one and the
 * 20,000-mandate bench from about 465 to about 780 charges/s (docs/benchmark.md).
 *
 * Why JSON: bound as one jsonb array, the text and its plan are the same whatever the batch
 * size (a prepared statement, parsed and planned once per connection).
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { num } from '../../db/values.ts';
import type { Links } from '../../gateways/types.ts';
import { chargeMayBecome } from './transitions.ts';

/** A settle the gateway accepted, whose commit may wait for the next batch. */
export interface Acceptance {
  actionId: number;
  chargeId: number;
  attemptId: number;
  /** The fencing token of the lease the run holds on the charge: the commit is fenced by it. */
  fence: number;
  kind: 'settle' | 'partialSettle';
  amount: number;
  httpStatus: number | null;
  correlationId: string | null;
  links: Links;
}

/**
 * Settle acceptances of many charges in one statement: each as `commitActionAccepted` does
 * for one (the action accepted, its links kept, the settled amount added, the charge moved to
 * `settling` where the table allows it, the lease released, both audited), fenced by each
 * charge's token and guarded by the action still being `requested`. Items are bound as one
 * JSON array, so the statement's text (and its plan) is the same whatever the batch size.
 * Returns how many were applied.
 */
export async function commitAcceptances(database: Database, items: Acceptance[]): Promise<number> {
  if (items.length === 0) return 0;
  const payload = JSON.stringify(
    items.map((a) => ({
      action_id: a.actionId,
      charge_id: a.chargeId,
      attempt_id: a.attemptId,
      fence: a.fence,
      kind: a.kind,
      amount: a.amount,
      http_status: a.httpStatus,
      correlation_id: a.correlationId,
      links: a.links,
    })),
  );
  const rows = await database.rows(
    sql`
    with v as (
      select * from jsonb_to_recordset(${payload}::jsonb) as v(action_id bigint, charge_id bigint,
        attempt_id bigint, fence bigint, kind text, amount bigint, http_status int, correlation_id text, links jsonb)
    ), ch as (
      update charges c set
        state = case when ${chargeMayBecome('settling', 'c', { orSame: true })} then 'settling' else c.state end,
        settled_amount = c.settled_amount + v.amount,
        lease_owner = null, lease_expires_at = null, updated_at = now()
       from v, charges o
       where c.id = v.charge_id and o.id = c.id and c.fence = v.fence
         and exists (select 1 from payment_actions pa where pa.id = v.action_id and pa.state = 'requested')
      returning c.id, o.state as from_state, c.state as to_state, v.action_id
    ), act as (
      update payment_actions pa set state = 'accepted', http_status = v.http_status,
             correlation_id = v.correlation_id, completed_at = now()
        from v join ch on ch.action_id = v.action_id
       where pa.id = v.action_id and pa.state = 'requested'
      returning pa.id
    ), lk as (
      insert into links (attempt_id, action_id, source, rel, href)
      select v.attempt_id, v.action_id, v.kind, l.key, l.value
        from v join act on act.id = v.action_id cross join lateral jsonb_each_text(v.links) l
    ), aud as (
      insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      select 'payment_action', act.id, 'requested', 'accepted', v.kind || ' accepted by the gateway'
        from act join v on v.action_id = act.id
      union all
      select 'charge', ch.id, ch.from_state, ch.to_state, v.kind || ' accepted by the gateway'
        from ch join v on v.action_id = ch.action_id join act on act.id = ch.action_id
       where ch.from_state <> ch.to_state
    )
    select (select count(*) from act)::int as ok`,
    undefined,
    { prepare: true },
  );
  return num(rows[0]?.ok ?? 0);
}
