/**
 * The `payment_actions` writes (settle, refund, cancel, reversal): written ahead, then accepted
 * or failed by the gateway's answer, each move guarded by the action machine (`actionMachine`
 * in src/domain/lifecycle.ts) and the charge's by the charge machine.
 *
 * `commitAcceptances` is the one commit of an accepted action: `commitActionAccepted`
 * (charge/settle.ts) is a batch of one, the send loop's batcher commits the run's settles many
 * at a time. Why batched: the settle's write-ahead row (`requested`) is committed with the
 * authorization before the settle is sent, so what is left to record is only the answer, and
 * nothing is sent on the strength of it; a crash before this commit leaves the action
 * `requested`, which settlement resumption asks the gateway about. Committing many answers in
 * one statement took a charge from two transactions to one (docs/benchmark.md). Why JSON and
 * not a VALUES list: see src/billing/sql/authorized-outcomes.ts.
 */
import { sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import { actionMachine, type ChargeState } from '../../domain/lifecycle.ts';
import type { Links } from '../../gateways/types.ts';
import { mayBecome, movesTo, releaseLease, transitionCharge } from './transitions.ts';

/** `pa.state` may become `to`, by the action table. */
const actionMay = (to: 'accepted' | 'failed', column = 'pa.state') => mayBecome(actionMachine, column, to);

/** An action the gateway accepted. */
export interface Acceptance {
  actionId: number;
  chargeId: number;
  /** The fencing token of the lease the caller holds on the charge, or null: the action's own `requested` state guards. */
  fence: number | null;
  kind: string;
  amount: number | null;
  httpStatus: number | null;
  correlationId: string | null;
  links: Links;
  /** Clear the charge's lease with the commit (the holder is done with it). */
  releaseLease: boolean;
}

/**
 * Where an accepted action takes its charge, from the charge as it is (`o`): settles to
 * `settling`, a cancel to `cancelled`, a reversal cancels an authorization and refunds a
 * settlement, a refund is `refunded` when all that is settled is then refunded, else
 * `partially_refunded`. The charge moves only where its table allows it from where it is now.
 */
const TARGET = sql`(case v.kind
        when 'settle' then 'settling' when 'partialSettle' then 'settling'
        when 'cancel' then 'cancelled'
        when 'reversal' then case when o.state = 'authorized' then 'cancelled' else 'refunded' end
        when 'refund' then case when o.refunded_amount + coalesce(v.amount, 0) >= o.settled_amount then 'refunded' else 'partially_refunded' end
        when 'partialRefund' then case when o.refunded_amount + coalesce(v.amount, 0) >= o.settled_amount then 'refunded' else 'partially_refunded' end
      end)`;
const TARGETS: ChargeState[] = ['settling', 'cancelled', 'refunded', 'partially_refunded'];

/**
 * Accepted actions of many charges in one statement: each action accepted and its links kept,
 * the settled or refunded amount added to its charge, the charge moved where the table allows
 * it (an answer that arrives after the charge moved on, a webhook said settled first, still
 * records the action and amounts), the lease released where asked, both moves audited. Fenced
 * by each charge's token where one is given, and guarded by the action still being
 * `requested`. Returns the ids of the actions applied.
 */
export async function commitAcceptances(
  database: Database,
  items: Acceptance[],
  on?: Executor,
): Promise<Set<number>> {
  if (items.length === 0) return new Set();
  const payload = JSON.stringify(
    items.map((a) => ({
      action_id: a.actionId,
      charge_id: a.chargeId,
      fence: a.fence,
      kind: a.kind,
      amount: a.amount,
      http_status: a.httpStatus,
      correlation_id: a.correlationId,
      links: a.links,
      release: a.releaseLease,
    })),
  );
  const rows = await database.rows<{ id: number }>(
    sql`
    with v as (
      select * from jsonb_to_recordset(${payload}::jsonb) as v(action_id bigint, charge_id bigint,
        fence bigint, kind text, amount bigint, http_status int, correlation_id text, links jsonb,
        release boolean)
    ), ch as (
      update charges c set
        state = case when ${movesTo(sql`t.target`, TARGETS, 'o')} then t.target else o.state end,
        settled_amount = c.settled_amount + case when v.kind in ('settle', 'partialSettle') then coalesce(v.amount, 0) else 0 end,
        refunded_amount = c.refunded_amount + case when v.kind in ('refund', 'partialRefund') then coalesce(v.amount, 0) else 0 end,
        lease_owner = case when v.release then null else c.lease_owner end,
        lease_expires_at = case when v.release then null else c.lease_expires_at end,
        updated_at = now()
       from v join charges o on o.id = v.charge_id cross join lateral (select ${TARGET} as target) t
       where c.id = v.charge_id and (v.fence is null or c.fence = v.fence)
         and exists (select 1 from payment_actions pa where pa.id = v.action_id and ${actionMay('accepted')})
      returning c.id, o.state as from_state, c.state as to_state, v.action_id
    ), act as (
      update payment_actions pa set state = 'accepted', http_status = v.http_status,
             correlation_id = v.correlation_id, links = v.links, completed_at = now()
        from v join ch on ch.action_id = v.action_id
       where pa.id = v.action_id and ${actionMay('accepted')}
      returning pa.id
    ), aud as (
      insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      select 'payment_action', act.id, 'requested', 'accepted', v.kind || ' accepted by the gateway'
        from act join v on v.action_id = act.id
      union all
      select 'charge', ch.id, ch.from_state, ch.to_state, v.kind || ' accepted by the gateway'
        from ch join v on v.action_id = ch.action_id join act on act.id = ch.action_id
       where ch.from_state <> ch.to_state
    )
    select id from act`,
    on,
    { prepare: true },
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * An action the gateway turned down (or that could not be sent): the action fails, the charge
 * takes `chargeState` where the table allows it, and the lease is released, all only while the
 * caller's fence still holds.
 */
export async function commitActionFailed(
  database: Database,
  a: { actionId: number; chargeId: number; fence: number },
  info: {
    httpStatus?: number | undefined;
    correlationId?: string | undefined;
    error: string;
    chargeState?: ChargeState;
  },
): Promise<boolean> {
  return database.db.transaction(async (tx) => {
    const act = await database.rows<{ id: number }>(
      sql`with f as (
          update payment_actions pa set state = 'failed', http_status = ${info.httpStatus ?? null},
                 correlation_id = ${info.correlationId ?? null}, error = ${info.error}, completed_at = now()
           where id = ${a.actionId} and ${actionMay('failed')}
             and exists (select 1 from charges where id = ${a.chargeId} and fence = ${a.fence}) returning id
        ), aud as (
          insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
          select 'payment_action', id, 'requested', 'failed', ${info.error} from f
        )
        select id from f`,
      tx,
    );
    if (act.length === 0) return false;
    if (info.chargeState) {
      const moved = await transitionCharge(database, tx, {
        id: a.chargeId,
        to: info.chargeState,
        fence: a.fence,
        release: true,
        reason: info.error,
      });
      if (moved.ok) return true;
    }
    await releaseLease(database, { chargeId: a.chargeId, fence: a.fence }, info.error, tx);
    return true;
  });
}

/** A settle written ahead by settlement resumption (or found already written); returns its id. */
export async function writeAheadSettle(
  database: Database,
  s: {
    chargeId: number;
    attemptId: number;
    kind: string;
    reference: string;
    amount: number;
    currency: string;
    linkHref: string;
  },
): Promise<number> {
  const ins = await database.rows<{ id: number }>(sql`
        insert into payment_actions (charge_id, attempt_id, kind, reference, amount, currency, link_href)
        values (${s.chargeId}, ${s.attemptId}, ${s.kind}, ${s.reference}, ${s.amount}, ${s.currency}, ${s.linkHref})
        on conflict (reference) do update set state = payment_actions.state returning id`);
  return ins[0]!.id;
}

/** The payment event last seen about a payment's accepted settles. */
export async function noteSettleEvent(
  database: Database,
  on: Executor,
  attemptId: number,
  rawStatus: string,
): Promise<void> {
  await database.rows(
    sql`update payment_actions set last_event = ${rawStatus}
        where attempt_id = ${attemptId} and kind in ('settle', 'partialSettle') and state = 'accepted'`,
    on,
  );
}
