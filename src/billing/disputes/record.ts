import { sql } from 'drizzle-orm';
import type { Tx } from '../../db/client.ts';
import { assertCurrency, assertMoney } from '../../domain/money.ts';
import { ValidationError } from '../../errors.ts';
import { appendEvent } from '../../events/append.ts';
import type { BillingContext } from '../context.ts';
import { chargeBackDispute, type DisputeRow, openDispute } from '../sql/disputes.ts';
import { takeOverWaitingCharges, transitionMandate } from '../sql/transitions.ts';
import { type DisputeView, toDisputeView } from './views.ts';

/** What a dispute event says beyond its type: the amount disputed, and reason and code if given. */
export interface DisputeDetails {
  amount: { value: number; currency: string } | null;
  reasonCode: string | null;
  reason: string | null;
}

/** The reason a chargeback's pause writes on each mandate; an operator's resume clears it. */
export const CHARGEBACK_REASON = 'chargeback';

const TEXT_LIMIT = 200;

/**
 * A dispute event's details from its `eventDetails`, checked before anything is written: a
 * malformed amount is refused naming its field. Worldpay's Events API gives `amount {value,
 * currencyCode}` (minor units); reason and code are not in its schema, so they are read when a
 * `reasonCode` / `reason` (or `code` / `description`) string comes along.
 */
export function disputeDetails(eventDetails: unknown): DisputeDetails {
  const d = (typeof eventDetails === 'object' && eventDetails !== null ? eventDetails : {}) as Record<
    string,
    unknown
  >;
  let amount: DisputeDetails['amount'] = null;
  if (d.amount !== undefined && d.amount !== null) {
    if (typeof d.amount !== 'object')
      throw new ValidationError('eventDetails.amount', 'must be an object {value, currencyCode}');
    const a = d.amount as Record<string, unknown>;
    assertCurrency(a.currencyCode, 'eventDetails.amount.currencyCode');
    assertMoney(a.value, a.currencyCode, 'eventDetails.amount.value');
    amount = { value: a.value, currency: a.currencyCode };
  }
  const text = (...keys: string[]): string | null => {
    for (const k of keys) {
      const v = d[k];
      if (typeof v === 'string' && v.trim() !== '') return v.trim().slice(0, TEXT_LIMIT);
      if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    }
    return null;
  };
  return { amount, reasonCode: text('reasonCode', 'code'), reason: text('reason', 'description') };
}

export interface DisputeEvent {
  chargeId: number;
  kind: 'informationRequested' | 'chargedBack';
  eventId: string;
  occurredAt: Date;
  details: DisputeDetails;
}

export interface DisputeRecorded {
  dispute: DisputeView;
  /** Mandates this chargeback paused (REBILL_CHARGEBACK_POLICY=pause); tell the senders after commit. */
  pausedMandateIds: number[];
}

/**
 * Record a dispute event on its charge in the webhook's transaction: `informationRequested`
 * opens the dispute (`charge.disputed`); `chargedBack` charges it back, opening it first if no
 * request came (`charge.charged_back`), and under the pause policy pauses every active mandate
 * charged to the same card (the same credential, or the customer's credential with the same
 * card fingerprint) through the mandate machine, reason `chargeback`, each with its
 * `mandate.paused`. Undefined when the event changes nothing (the dispute is already there or
 * already charged back): a redelivery, even under a new event id, records nothing twice.
 */
export async function recordDispute(
  ctx: BillingContext,
  tx: Tx,
  e: DisputeEvent,
): Promise<DisputeRecorded | undefined> {
  const db = ctx.database;
  const charge = (
    await db.rows<{ mandate_id: number; amount: number; settled_amount: number; currency: string }>(
      sql`select mandate_id, amount, settled_amount, currency from charges where id = ${e.chargeId}`,
      tx,
    )
  )[0];
  if (!charge) return undefined;
  const policy = ctx.config.webhook.chargebackPolicy;
  const fallback = {
    value: charge.settled_amount > 0 ? charge.settled_amount : charge.amount,
    currency: charge.currency,
  };
  const opening = {
    chargeId: e.chargeId,
    amount: (e.details.amount ?? fallback).value,
    currency: (e.details.amount ?? fallback).currency,
    reasonCode: e.details.reasonCode,
    reason: e.details.reason,
    at: e.occurredAt,
    eventId: e.eventId,
  };
  if (e.kind === 'informationRequested') {
    const row = await openDispute(db, tx, { ...opening, status: 'information_requested', policy: null });
    if (!row) return undefined;
    await appendEvent(db, tx, {
      type: 'charge.disputed',
      mandateId: charge.mandate_id,
      data: eventData(e.chargeId, row, []),
    });
    return { dispute: toDisputeView(row), pausedMandateIds: [] };
  }
  const row =
    (await chargeBackDispute(db, tx, {
      ...opening,
      amount: e.details.amount?.value ?? null,
      currency: e.details.amount?.currency ?? null,
      policy,
    })) ?? (await openDispute(db, tx, { ...opening, status: 'charged_back', policy }));
  if (!row) return undefined;
  const toPause = policy === 'pause' ? await mandatesOnTheCard(ctx, tx, charge.mandate_id) : [];
  await appendEvent(db, tx, {
    type: 'charge.charged_back',
    mandateId: charge.mandate_id,
    data: eventData(e.chargeId, row, toPause),
  });
  const paused: number[] = [];
  for (const id of toPause) {
    const moved = await transitionMandate(db, tx, {
      id,
      to: 'paused',
      from: ['active'],
      reason: CHARGEBACK_REASON,
      actor: 'system',
    });
    if (!moved.ok) continue;
    await takeOverWaitingCharges(db, tx, id, { reason: CHARGEBACK_REASON, actor: 'system' });
    paused.push(id);
  }
  return { dispute: toDisputeView(row), pausedMandateIds: paused };
}

/**
 * The active mandates charged to the card of this mandate, itself included: those on its
 * credential, and those on another credential of the same customer with the same card
 * fingerprint (a card stored twice, say once as a link chain and once imported). Locked, in id
 * order, so two chargebacks of one card pause in the same order.
 */
async function mandatesOnTheCard(ctx: BillingContext, tx: Tx, mandateId: number): Promise<number[]> {
  const rows = await ctx.database.rows<{ id: number }>(
    sql`select m.id from mandates m
          join credentials cr on cr.id = m.credential_id
          join mandates dm on dm.id = ${mandateId}
          join credentials dc on dc.id = dm.credential_id
         where m.status = 'active'
           and (m.credential_id = dm.credential_id
                or (cr.customer_id = dc.customer_id and dc.fingerprint is not null and cr.fingerprint = dc.fingerprint))
         order by m.id
         for update of m`,
    tx,
  );
  return rows.map((r) => r.id);
}

/** A dispute event's data: the charge as the API shows it, its dispute, and what was paused. */
function eventData(chargeId: number, row: DisputeRow, pausedMandateIds: number[]) {
  const extra = { dispute: toDisputeView(row), pausedMandateIds };
  return sql`rebill_charge_json(${chargeId}::bigint) || ${JSON.stringify(extra)}::jsonb`;
}
