import { sql } from 'drizzle-orm';
import type { Database, Tx } from '../../db/client.ts';
import type { charges, paymentActions } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import type { ChargeState } from '../../domain/lifecycle.ts';
import { errorMessage } from '../../errors.ts';
import type { PaymentStatus } from '../../gateways/types.ts';
import { normalisePaymentStatus } from '../../gateways/worldpay/status.ts';
import type { BillingContext } from '../context.ts';
import { type DisputeRecorded, disputeDetails, recordDispute } from '../disputes/record.ts';
import { noteSettleEvent } from '../sql/payment-actions.ts';
import { transitionCharge } from '../sql/transitions.ts';
import { noteHold } from './holds.ts';
import {
  ACTIONS_PROVEN,
  commitActionAccepted,
  type PaymentRow,
  type PaymentSelectRow,
  paymentLinks,
  toPaymentRow,
} from './settle.ts';

export interface PaymentEventInput {
  eventId: string;
  transactionReference: string;
  type: string;
  occurredAt?: Date | undefined;
  payload: unknown;
}

export type PaymentEventOutcome =
  | { outcome: 'unknown_reference' }
  | { outcome: 'duplicate'; chargeId: number }
  | {
      outcome: 'applied' | 'recorded';
      chargeId: number;
      moved: string | null;
      /** A dispute event that opened or charged back the charge's dispute. */
      dispute?: DisputeRecorded | undefined;
    };

/**
 * A Worldpay event pushed to the webhook: find its attempt by reference, drop a redelivery
 * (deduped on eventId), resolve the actions it proves and apply the status, all in one
 * transaction, so a crash part-way leaves the event unrecorded and Worldpay's redelivery
 * applies it whole.
 */
export async function receivePaymentEvent(
  ctx: BillingContext,
  e: PaymentEventInput,
): Promise<PaymentEventOutcome> {
  const db = ctx.database;
  const out = await db.db.transaction(async (tx): Promise<PaymentEventOutcome> => {
    const rows = await db.rows<{ id: number; charge_id: number }>(
      sql`select a.id, a.charge_id from attempts a where a.transaction_reference = ${e.transactionReference}`,
      tx,
    );
    const attempt = rows[0];
    if (!attempt) return { outcome: 'unknown_reference' };
    const { id: attemptId, charge_id: chargeId } = attempt;
    const seen = await db.rows<{ id: number }>(
      sql`select id from payment_events where event_id = ${e.eventId}`,
      tx,
    );
    if (seen.length > 0) return { outcome: 'duplicate', chargeId };
    const status = normalisePaymentStatus(e.type);
    await resolvePendingActions(db, attemptId, status, tx);
    const moved = await applyPaymentStatus(
      db,
      {
        attemptId,
        status,
        rawStatus: e.type,
        source: 'webhook',
        eventId: e.eventId,
        transactionReference: e.transactionReference,
        payload: e.payload,
        occurredAt: e.occurredAt,
      },
      tx,
    );
    // A dispute is a fact about the charge, not a state of it: recorded beside it.
    const dispute =
      status === 'chargedBack' || status === 'informationRequested'
        ? await recordDispute(ctx, tx, {
            chargeId,
            kind: status,
            eventId: e.eventId,
            occurredAt: e.occurredAt ?? ctx.clock.now(),
            details: disputeDetails((e.payload as { eventDetails?: unknown } | null)?.eventDetails),
          })
        : undefined;
    return { outcome: moved || dispute ? 'applied' : 'recorded', chargeId, moved, dispute };
  });
  // This process's senders hear of the pauses now; others when the database notifies them.
  for (const id of out.outcome === 'applied' ? (out.dispute?.pausedMandateIds ?? []) : [])
    await noteHold(db, id, 'paused');
  return out;
}

/**
 * Settlement follow-up: a 202 means received, not done. Ask the gateway about charges still
 * `settling` and record where they ended (`settled` or `settle_failed`).
 */
export async function followSettlements(
  ctx: BillingContext,
  opts: { limit: number },
): Promise<{ settled: number; failed: number }> {
  const rows = await ctx.database.rows<PaymentSelectRow>(sql`
    select c.id, c.authorized_attempt_id, m.gateway, a.gateway_payment_id, a.transaction_reference
      from charges c join mandates m on m.id = c.mandate_id join attempts a on a.id = c.authorized_attempt_id
     where c.state = 'settling' and (c.lease_expires_at is null or c.lease_expires_at < now())
     order by c.updated_at limit ${opts.limit}`);
  let settled = 0;
  let failed = 0;
  for (const r of rows.map(toPaymentRow)) {
    try {
      const outcome = await followOne(ctx, r);
      if (outcome === 'settled') settled++;
      if (outcome === 'settle_failed') failed++;
    } catch (err) {
      ctx.logger.error({ chargeId: r.chargeId, err: errorMessage(err) }, 'settlement follow-up failed');
    }
  }
  return { settled, failed };
}

async function followOne(ctx: BillingContext, r: PaymentRow): Promise<string | null | undefined> {
  const { attemptId } = r;
  const links = await paymentLinks(ctx.database, attemptId);
  const q = await ctx.gateway(r.gateway).query({ paymentId: r.paymentId, links });
  if (q.found !== true) return;
  const outcome = await applyPaymentStatus(ctx.database, {
    attemptId,
    status: q.status,
    rawStatus: q.rawStatus,
    source: 'query',
    transactionReference: r.transactionReference,
  });
  return outcome;
}

/**
 * Apply a payment's latest status (from the events query or a webhook) to its charge.
 * Tolerates repeats and out-of-order delivery: it only moves a charge forward.
 */
export async function applyPaymentStatus(
  database: Database,
  e: {
    attemptId: number;
    status: PaymentStatus;
    rawStatus: string;
    source: 'query' | 'webhook';
    eventId?: string | undefined;
    transactionReference?: string | null;
    payload?: unknown;
    occurredAt?: Date | undefined;
  },
  /** An open transaction to work in (the webhook's), else one of its own. */
  on?: Tx,
): Promise<string | null> {
  const inTx = <T>(work: (tx: Tx) => Promise<T>): Promise<T> =>
    on ? work(on) : database.db.transaction(work);
  return inTx(async (tx) => {
    if (e.eventId !== undefined) {
      const ins = await database.rows<{ id: number }>(
        sql`insert into payment_events (attempt_id, event_id, source, last_event, transaction_reference, payload, occurred_at)
            values (${e.attemptId}, ${e.eventId}, ${e.source}, ${e.rawStatus}, ${e.transactionReference ?? null},
                    ${e.payload === undefined ? null : JSON.stringify(e.payload)}::jsonb, ${e.occurredAt?.toISOString() ?? null}::timestamptz)
            on conflict (event_id) do nothing returning id`,
        tx,
      );
      if (ins.length === 0) return null; // a redelivery: already applied
    } else {
      await tx.execute(sql`insert into payment_events (attempt_id, source, last_event, transaction_reference)
        values (${e.attemptId}, ${e.source}, ${e.rawStatus}, ${e.transactionReference ?? null})`);
    }
    const charge = await database.rows<
      Pick<RawRow<typeof charges>, 'id' | 'state' | 'settled_amount' | 'refunded_amount'>
    >(
      sql`select id, state, settled_amount, refunded_amount from charges where authorized_attempt_id = ${e.attemptId} for update`,
      tx,
    );
    const c = charge[0];
    const to = c ? statusTarget(e.status, c.settled_amount, c.refunded_amount) : null;
    let moved: ChargeState | null = null;
    if (c && to !== null && c.state !== to) {
      const r = await transitionCharge(database, tx, {
        id: c.id,
        to,
        reason: `payment ${e.rawStatus} (${e.source})`,
      });
      if (r.ok) moved = to;
    }
    if (e.status === 'settled' || e.status === 'settlementFailed') {
      await noteSettleEvent(database, tx, e.attemptId, e.rawStatus);
    }
    return moved;
  });
}

/**
 * The charge state a payment status reports, or null when it reports none (in progress, an
 * authorization we already know). A refund the gateway reports is full unless rebill itself
 * recorded refunding less than was settled.
 */
function statusTarget(status: PaymentStatus, settled: number, refunded: number): ChargeState | null {
  switch (status) {
    case 'settled':
      return 'settled';
    case 'settlementFailed':
      return 'settle_failed';
    case 'cancelled':
      return 'cancelled';
    case 'sentForRefund':
    case 'refunded':
      return refunded > 0 && refunded < settled ? 'partially_refunded' : 'refunded';
    default:
      return null;
  }
}

/**
 * Resolve the operator's actions an unknown answer left `requested`, by what the payment's
 * status proves the gateway accepted (the events query, the follow-up and the webhook alike).
 */
export async function resolvePendingActions(
  database: Database,
  attemptId: number,
  status: string,
  on?: Tx,
): Promise<void> {
  const kinds = ACTIONS_PROVEN[status];
  if (!kinds) return;
  const pending = await database.rows<
    Pick<RawRow<typeof paymentActions>, 'id' | 'charge_id' | 'kind' | 'amount'>
  >(
    sql`select pa.id, pa.charge_id, pa.kind, pa.amount from payment_actions pa
    where pa.attempt_id = ${attemptId} and pa.state = 'requested' and pa.kind in (${sql.join(
      kinds.map((k) => sql`${k}`),
      sql`, `,
    )})`,
    on,
  );
  for (const p of pending) {
    await commitActionAccepted(
      database,
      {
        actionId: p.id,
        chargeId: p.charge_id,
        kind: p.kind,
        amount: p.amount,
      },
      { outcome: 'accepted', links: {}, latencyMs: 0 },
      { releaseLease: false, on },
    );
  }
}
