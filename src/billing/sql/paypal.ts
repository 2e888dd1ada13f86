/**
 * The writes of PayPal payments (src/billing/paypal/): a payment tracked, Worldpay's answers
 * recorded (last event and links, append-only), refunds written ahead and then accepted or
 * failed. Each refund move is guarded by `paypalRefundMachine` (src/domain/lifecycle.ts) and
 * audited, and each write appends its `paypal_payment.*` event in the same transaction.
 */
import { sql } from 'drizzle-orm';
import type { Database, Executor, Tx } from '../../db/client.ts';
import { type PaypalRefundState, paypalRefundMachine } from '../../domain/lifecycle.ts';
import type { EventType } from '../../events/types.ts';
import type { Links } from '../../gateways/types.ts';
import { writeAudit } from './audit.ts';
import { mayBecome } from './transitions.ts';

/** Links Worldpay answered with, kept as given beside the ones before them. */
async function keepLinks(
  database: Database,
  on: Executor,
  paymentId: number,
  source: string,
  links: Links,
  refundId: number | null = null,
): Promise<void> {
  const entries = Object.entries(links);
  if (entries.length === 0) return;
  await database.rows(
    sql`insert into paypal_links (payment_id, refund_id, source, rel, href)
        select ${paymentId}, ${refundId}::bigint, ${source}, l.key, l.value
          from jsonb_each_text(${JSON.stringify(links)}::jsonb) l`,
    on,
  );
}

/**
 * One `paypal_payment.*` event, built from the rows as they are now in this transaction: the
 * payment, and the refund it is about.
 */
async function paypalEvent(
  database: Database,
  on: Executor,
  type: EventType,
  paymentId: number,
  refundId: number | null = null,
): Promise<void> {
  await database.rows(
    sql`insert into events (type, mandate_id, customer_ref, data)
        select ${type}, p.mandate_id, p.customer_ref,
               jsonb_build_object('paypalPayment', jsonb_build_object('id', p.id, 'eventsLink', p.events_href,
                 'amount', p.amount, 'currency', p.currency, 'customerRef', p.customer_ref,
                 'mandateId', p.mandate_id, 'lastEvent', p.last_event))
               || case when r.id is null then '{}'::jsonb else jsonb_build_object('refund', jsonb_build_object(
                 'id', r.id, 'kind', r.kind, 'reference', r.reference, 'amount', r.amount,
                 'currency', r.currency, 'state', r.state, 'error', r.error)) end
          from paypal_payments p left join paypal_refunds r on r.id = ${refundId}::bigint and r.payment_id = p.id
         where p.id = ${paymentId}`,
    on,
  );
}

/** A payment tracked by its events link, with Worldpay's first answer: audited and evented. */
export async function insertPaypalPayment(
  database: Database,
  p: {
    eventsHref: string;
    amount: number;
    currency: string;
    transactionReference: string | null;
    customerRef: string | null;
    mandateId: number | null;
    lastEvent: string;
    links: Links;
    checkedAt: Date;
  },
): Promise<number> {
  return database.db.transaction(async (tx) => {
    const rows = await database.rows<{ id: number }>(
      sql`insert into paypal_payments (events_href, amount, currency, transaction_reference, customer_ref, mandate_id, last_event, checked_at)
          values (${p.eventsHref}, ${p.amount}, ${p.currency}, ${p.transactionReference}, ${p.customerRef}, ${p.mandateId}, ${p.lastEvent}, ${p.checkedAt})
          on conflict do nothing returning id`,
      tx,
    );
    const id = rows[0]?.id;
    if (id === undefined) return 0;
    await keepLinks(database, tx, id, 'track', p.links);
    await writeAudit(tx, 'paypal_payment', id, null, p.lastEvent, 'tracked');
    await paypalEvent(database, tx, 'paypal_payment.tracked', id);
    return id;
  });
}

/** Refunds moved by what Worldpay said, with the state they reached. */
export interface ResolvedRefund {
  id: number;
  state: PaypalRefundState;
}

/** What Worldpay said of a payment: by the events query, or by its webhook. */
export interface PaypalAnswer {
  paymentId: number;
  rawEvent: string;
  outcome: 'refunded' | 'refundFailed' | null;
  links: Links;
  checkedAt: Date;
  source: 'query' | 'webhook';
  /** The refund the answer names (a webhook's `reference`); otherwise those in doubt. */
  refundId?: number | undefined;
}

/**
 * Worldpay's answer recorded: the last event and the links kept, and the refunds it settles.
 * `sentForRefund` / `refunded`: the refunds whose answer was lost happened (`requested` ->
 * `accepted`). `refundFailed`: those failed, or, with none in doubt, the latest accepted one
 * did. A webhook naming its refund by reference settles that one only. `sentForSettlement`
 * says nothing about a refund in doubt: it stays `requested` (Worldpay: query again later).
 */
export async function recordPaypalAnswer(
  database: Database,
  a: PaypalAnswer,
  on?: Tx,
): Promise<ResolvedRefund[]> {
  if (on === undefined) return database.db.transaction((tx) => recordPaypalAnswer(database, a, tx));
  const tx = on;
  const before = await database.rows<{ last_event: string }>(
    sql`update paypal_payments p set last_event = ${a.rawEvent}, checked_at = ${a.checkedAt}
          from (select last_event from paypal_payments where id = ${a.paymentId} for update) o
         where p.id = ${a.paymentId} returning o.last_event`,
    tx,
  );
  const from = before[0]?.last_event;
  if (from === undefined) return [];
  await keepLinks(database, tx, a.paymentId, a.source, a.links);
  const reason = `Worldpay ${a.source === 'query' ? 'events query' : 'webhook'}: ${a.rawEvent}`;
  if (from !== a.rawEvent)
    await writeAudit(tx, 'paypal_payment', a.paymentId, from, a.rawEvent, reason, 'system');
  if (a.outcome === null) return [];
  const to: PaypalRefundState = a.outcome === 'refunded' ? 'accepted' : 'failed';
  const latestAccepted = sql`r.id = (select max(id) from paypal_refunds where payment_id = ${a.paymentId} and state = 'accepted')`;
  let moved: number[];
  if (a.refundId !== undefined)
    moved = await moveRefunds(database, tx, a.paymentId, sql`r.id = ${a.refundId}`, to, reason);
  else {
    moved = await moveRefunds(database, tx, a.paymentId, sql`r.state = 'requested'`, to, reason);
    if (moved.length === 0 && to === 'failed')
      moved = await moveRefunds(database, tx, a.paymentId, latestAccepted, to, reason);
  }
  return moved.map((id) => ({ id, state: to }));
}

/**
 * A Worldpay webhook about a PayPal payment, kept once by its event id (beside the card
 * payments' events, with no attempt): false when it was already received.
 */
export async function keepPaypalWebhook(
  database: Database,
  tx: Tx,
  e: {
    eventId: string;
    type: string;
    transactionReference: string;
    payload: unknown;
    occurredAt?: Date | undefined;
  },
): Promise<boolean> {
  const rows = await database.rows<{ id: number }>(
    sql`insert into payment_events (event_id, source, last_event, transaction_reference, payload, occurred_at)
        values (${e.eventId}, 'webhook', ${e.type}, ${e.transactionReference}, ${JSON.stringify(e.payload)}::jsonb, ${e.occurredAt ?? null})
        on conflict (event_id) do nothing returning id`,
    tx,
  );
  return rows.length > 0;
}

/** Refunds of a payment (those `which` picks) moved to `to` where the table allows it; audited, evented. */
async function moveRefunds(
  database: Database,
  tx: Tx,
  paymentId: number,
  which: ReturnType<typeof sql>,
  to: 'accepted' | 'failed',
  reason: string,
): Promise<number[]> {
  const rows = await database.rows<{ id: number; from_state: string }>(
    sql`update paypal_refunds r set state = ${to}, completed_at = now(),
           error = case when ${to}::text = 'failed' then ${reason} else r.error end
          from paypal_refunds o
         where o.id = r.id and r.payment_id = ${paymentId} and ${which}
           and ${mayBecome(paypalRefundMachine, 'o.state', to)}
        returning r.id, o.state as from_state`,
    tx,
  );
  for (const r of rows) {
    await writeAudit(tx, 'paypal_refund', r.id, r.from_state, to, reason, 'system');
    await paypalEvent(
      database,
      tx,
      to === 'accepted' ? 'paypal_payment.refunded' : 'paypal_payment.refund_failed',
      paymentId,
      r.id,
    );
  }
  return rows.map((r) => r.id);
}

/**
 * A refund written ahead, in the caller's transaction (which holds the payment's row lock and
 * checked the rules): `requested`, with its reference, before anything is sent.
 */
export async function writeAheadPaypalRefund(
  database: Database,
  tx: Tx,
  r: {
    paymentId: number;
    kind: 'refund' | 'partialRefund';
    reference: string;
    amount: number;
    currency: string;
    linkHref: string;
  },
): Promise<number> {
  const rows = await database.rows<{ id: number }>(
    sql`insert into paypal_refunds (payment_id, kind, reference, amount, currency, link_href)
        values (${r.paymentId}, ${r.kind}, ${r.reference}, ${r.amount}, ${r.currency}, ${r.linkHref}) returning id`,
    tx,
  );
  const id = rows[0]!.id;
  await writeAudit(tx, 'paypal_refund', id, null, 'requested', `${r.kind} requested`);
  await paypalEvent(database, tx, 'paypal_payment.refund_requested', r.paymentId, id);
  return id;
}

/** Worldpay's 202 to a refund: accepted, with the links it carried. */
export async function acceptPaypalRefund(
  database: Database,
  r: {
    paymentId: number;
    refundId: number;
    kind: string;
    httpStatus: number | null;
    correlationId: string | null;
    links: Links;
  },
): Promise<boolean> {
  return database.db.transaction(async (tx) => {
    const rows = await database.rows<{ id: number }>(
      sql`update paypal_refunds set state = 'accepted', http_status = ${r.httpStatus},
             correlation_id = ${r.correlationId}, completed_at = now()
           where id = ${r.refundId} and ${mayBecome(paypalRefundMachine, 'state', 'accepted')} returning id`,
      tx,
    );
    if (rows.length === 0) return false;
    await keepLinks(database, tx, r.paymentId, r.kind, r.links, r.refundId);
    await writeAudit(
      tx,
      'paypal_refund',
      r.refundId,
      'requested',
      'accepted',
      `${r.kind} accepted by Worldpay`,
      'system',
    );
    await paypalEvent(database, tx, 'paypal_payment.refunded', r.paymentId, r.refundId);
    return true;
  });
}

/** Worldpay turned a refund down (or it could not be sent): failed, with why. */
export async function failPaypalRefund(
  database: Database,
  r: {
    paymentId: number;
    refundId: number;
    httpStatus: number | null;
    correlationId: string | null;
    error: string;
  },
): Promise<boolean> {
  return database.db.transaction(async (tx) => {
    const rows = await database.rows<{ id: number }>(
      sql`update paypal_refunds set state = 'failed', http_status = ${r.httpStatus},
             correlation_id = ${r.correlationId}, error = ${r.error}, completed_at = now()
           where id = ${r.refundId} and ${mayBecome(paypalRefundMachine, 'state', 'failed')} returning id`,
      tx,
    );
    if (rows.length === 0) return false;
    await writeAudit(tx, 'paypal_refund', r.refundId, 'requested', 'failed', r.error, 'system');
    await paypalEvent(database, tx, 'paypal_payment.refund_failed', r.paymentId, r.refundId);
    return true;
  });
}
