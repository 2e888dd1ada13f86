import { sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import { NotFoundError } from '../../errors.ts';
import { normalisePaymentStatus } from '../../gateways/worldpay/index.ts';

/** What rebill knows of a PayPal payment: Worldpay's last event, what was refunded, what is left. */
export interface PaypalPaymentView {
  id: number;
  eventsLink: string;
  amount: number;
  currency: string;
  /** The checkout's transactionReference, if the merchant gave it (Worldpay's webhooks name the payment by it). */
  transactionReference: string | null;
  customerRef: string | null;
  mandateId: number | null;
  /** `lastEvent` as Worldpay spelt it in its latest answer. */
  lastEvent: string;
  /** Refunds Worldpay accepted. */
  refunded: number;
  /** Refunds sent whose answer is not known yet (counted as taken until it is). */
  pending: number;
  /** What a refund may still take: amount - refunded - pending. */
  left: number;
  /** Whether the last event allows a refund (`sentForSettlement`) and something is left. */
  refundable: boolean;
  checkedAt: string;
  trackedAt: string;
}

export interface PaypalRefundView {
  id: number;
  kind: 'refund' | 'partialRefund';
  reference: string;
  amount: number;
  currency: string;
  state: 'requested' | 'accepted' | 'failed';
  httpStatus: number | null;
  correlationId: string | null;
  error: string | null;
  createdAt: string;
  completedAt: string | null;
}

export interface PaypalPaymentDetail extends PaypalPaymentView {
  refunds: PaypalRefundView[];
  /** The newest link of each rel Worldpay answered with. */
  links: Record<string, string>;
}

/** Worldpay's `sentForSettlement`, however it is spelt: the one last event a refund may follow. */
export const isRefundableEvent = (raw: string): boolean =>
  normalisePaymentStatus(raw) === 'sentForSettlement';

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

const VIEW = sql`select p.id, p.events_href, p.amount, p.currency, p.transaction_reference, p.customer_ref, p.mandate_id, p.last_event,
    p.checked_at, p.created_at,
    coalesce(sum(r.amount) filter (where r.state = 'accepted'), 0)::bigint as refunded,
    coalesce(sum(r.amount) filter (where r.state = 'requested'), 0)::bigint as pending
  from paypal_payments p left join paypal_refunds r on r.payment_id = p.id`;

interface ViewRow {
  id: number;
  events_href: string;
  amount: number;
  currency: string;
  transaction_reference: string | null;
  customer_ref: string | null;
  mandate_id: number | null;
  last_event: string;
  checked_at: Date;
  created_at: Date;
  refunded: number;
  pending: number;
}

function view(r: ViewRow): PaypalPaymentView {
  const left = r.amount - r.refunded - r.pending;
  return {
    id: r.id,
    eventsLink: r.events_href,
    amount: r.amount,
    currency: r.currency,
    transactionReference: r.transaction_reference,
    customerRef: r.customer_ref,
    mandateId: r.mandate_id,
    lastEvent: r.last_event,
    refunded: r.refunded,
    pending: r.pending,
    left,
    refundable: isRefundableEvent(r.last_event) && left > 0,
    checkedAt: r.checked_at.toISOString(),
    trackedAt: r.created_at.toISOString(),
  };
}

/** PayPal payments, newest first, of one customer or mandate if asked. */
export async function listPaypalPayments(
  database: Database,
  filter: { customerRef?: string | undefined; mandateId?: number | undefined } = {},
): Promise<PaypalPaymentView[]> {
  const rows = await database.rows<ViewRow>(
    sql`${VIEW} where (${filter.customerRef ?? null}::text is null or p.customer_ref = ${filter.customerRef ?? null})
          and (${filter.mandateId ?? null}::bigint is null or p.mandate_id = ${filter.mandateId ?? null})
        group by p.id order by p.id desc`,
  );
  return rows.map(view);
}

/** One PayPal payment with its refunds and current links, as stored (nothing asked of Worldpay). */
export async function getPaypalPayment(
  database: Database,
  id: number,
  on?: Executor,
): Promise<PaypalPaymentDetail> {
  const rows = await database.rows<ViewRow>(sql`${VIEW} where p.id = ${id} group by p.id`, on);
  const row = rows[0];
  if (!row) throw new NotFoundError('PayPal payment', id);
  const refunds = await database.rows<{
    id: number;
    kind: 'refund' | 'partialRefund';
    reference: string;
    amount: number;
    currency: string;
    state: 'requested' | 'accepted' | 'failed';
    http_status: number | null;
    correlation_id: string | null;
    error: string | null;
    created_at: Date;
    completed_at: Date | null;
  }>(sql`select * from paypal_refunds where payment_id = ${id} order by id`, on);
  return {
    ...view(row),
    refunds: refunds.map((r) => ({
      id: r.id,
      kind: r.kind,
      reference: r.reference,
      amount: r.amount,
      currency: r.currency,
      state: r.state,
      httpStatus: r.http_status,
      correlationId: r.correlation_id,
      error: r.error,
      createdAt: r.created_at.toISOString(),
      completedAt: iso(r.completed_at),
    })),
    links: await paypalLinksOf(database, id, on),
  };
}

/** The newest href of each rel Worldpay gave for the payment (the tracked events link first of all). */
export async function paypalLinksOf(
  database: Database,
  id: number,
  on?: Executor,
): Promise<Record<string, string>> {
  const rows = await database.rows<{ rel: string; href: string }>(
    sql`select distinct on (rel) rel, href from paypal_links where payment_id = ${id} order by rel, id desc`,
    on,
  );
  return Object.fromEntries(rows.map((r) => [r.rel, r.href]));
}
