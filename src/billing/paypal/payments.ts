import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { formatMoney, guardMoney } from '../../domain/money.ts';
import {
  ConflictError,
  exitCodes,
  GatewayRejectedError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../../errors.ts';
import { GatewayError } from '../../gateways/errors.ts';
import type { Links, PaymentActionResult, QueryResult } from '../../gateways/types.ts';
import type { WorldpayGateway } from '../../gateways/worldpay/index.ts';
import { normalisePaymentStatus } from '../../gateways/worldpay/index.ts';
import { actionReference } from '../charge/references.ts';
import type { BillingContext } from '../context.ts';
import { parseInput } from '../mandates/index.ts';
import {
  acceptPaypalRefund,
  failPaypalRefund,
  insertPaypalPayment,
  type ResolvedRefund,
  recordPaypalAnswer,
  writeAheadPaypalRefund,
} from '../sql/paypal.ts';
import { getPaypalPayment, isRefundableEvent, type PaypalPaymentDetail, paypalLinksOf } from './views.ts';

/**
 * PayPal payments an operator manages (Worldpay's "manage PayPal payments" page, seed 001).
 * rebill does not create them (the customer approves at PayPal, at the merchant's checkout): a
 * merchant hands one over by its `action:events` link. From then on each refund is checked
 * against Worldpay's last event, asked afresh, and against what is left; written ahead with a
 * deterministic reference; and sent once. An answer lost in transit leaves the refund
 * `requested`: the next `show` or refund asks the events link first and records what happened.
 */

/** A refund the rules refuse before anything is sent: 409, exit code 2. */
export class RefundNotAllowedError extends ConflictError {
  static override readonly type: string = 'RefundNotAllowedError';
  static override readonly exitCode: number = exitCodes.invalid;
  static override readonly code: string = 'refund_not_allowed';
}

const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code');

export const trackInputSchema = z
  .object({
    eventsLink: z.string().min(1).max(2000),
    amount: z.number().int().positive(),
    currency,
    /** The checkout's transactionReference: lets Worldpay's webhooks about the payment find it. */
    transactionReference: z
      .string()
      .regex(
        /^[A-Za-z0-9\-_/!@#$%()*=.:;?[\]{}~+]{1,64}$/,
        'must be 1-64 characters Worldpay allows in a transactionReference',
      )
      .optional(),
    customerRef: z.string().min(1).max(200).optional(),
    mandateId: z.number().int().positive().optional(),
  })
  .strict();
export type TrackInput = z.input<typeof trackInputSchema>;

export const partialRefundInputSchema = z
  .object({ amount: z.number().int().positive(), currency: currency.optional() })
  .strict();
export const refundInputSchema = z.object({}).strict();

export interface PaypalRefundOutcome {
  refundId: number;
  kind: 'refund' | 'partialRefund';
  reference: string;
  amount: number;
  currency: string;
  /** `unknown`: the answer was lost; the next show or refund asks Worldpay before anything is resent. */
  outcome: 'accepted' | 'unknown';
  payment: PaypalPaymentDetail;
}

/** What asking Worldpay gave: the answer recorded, or why there was none. */
export type PaypalAsked =
  | { asked: true; lastEvent: string; resolved: ResolvedRefund[] }
  | { asked: false; reason: string };

function paypalGateway(ctx: BillingContext): WorldpayGateway {
  const gw = ctx.gateway('worldpay') as Partial<WorldpayGateway>;
  if (typeof gw.paypalEvents !== 'function')
    throw new Error('the worldpay gateway does not manage PayPal payments');
  return gw as WorldpayGateway;
}

/** The events query, with a 4xx answer or a link the client refuses turned into a reason. */
async function query(
  ctx: BillingContext,
  href: string,
): Promise<QueryResult | { found: 'error'; reason: string }> {
  try {
    const q = await paypalGateway(ctx).paypalEvents(href);
    ctx.metrics?.gatewayLatency('paypal.events', q.latencyMs / 1000);
    return q;
  } catch (err) {
    if (err instanceof GatewayError || err instanceof ValidationError)
      return { found: 'error', reason: err.message };
    throw err;
  }
}

function notAnswered(q: QueryResult | { found: 'error'; reason: string }): string {
  if (q.found === false)
    return 'Worldpay does not know the payment yet (404; events can lag up to 15 minutes)';
  if (q.found === 'unknown' || q.found === 'error') return `Worldpay could not be asked: ${q.reason}`;
  return '';
}

/** What a last event says about the refunds in doubt. */
export function refundOutcome(raw: string): 'refunded' | 'refundFailed' | null {
  const s = normalisePaymentStatus(raw);
  if (s === 'sentForRefund' || s === 'refunded') return 'refunded';
  if (s === 'refundFailed') return 'refundFailed';
  return null;
}

/** Ask Worldpay where the payment is, by its newest events link, and record the answer. */
export async function askPaypal(ctx: BillingContext, id: number): Promise<PaypalAsked> {
  const rows = await ctx.database.rows<{ events_href: string }>(
    sql`select events_href from paypal_payments where id = ${id}`,
  );
  if (!rows[0]) throw new NotFoundError('PayPal payment', id);
  const links = await paypalLinksOf(ctx.database, id);
  const q = await query(ctx, links['action:events'] ?? rows[0].events_href);
  if (q.found !== true) return { asked: false, reason: notAnswered(q) };
  const resolved = await recordPaypalAnswer(ctx.database, {
    paymentId: id,
    rawEvent: q.rawStatus,
    outcome: refundOutcome(q.rawStatus),
    links: q.links,
    checkedAt: ctx.clock.now(),
    source: 'query',
  });
  return { asked: true, lastEvent: q.rawStatus, resolved };
}

/**
 * Track a PayPal payment: its events link on the configured Worldpay origin, asked at once, and
 * stored with its last event and links. The amount is the merchant's word (the query has none).
 */
export async function trackPaypalPayment(ctx: BillingContext, raw: unknown): Promise<PaypalPaymentDetail> {
  const input = parseInput(trackInputSchema, raw);
  assertEventsLink(ctx, input.eventsLink);
  guardMoney(input.amount, input.currency, ctx.config.billing.maxAmount);
  let customerRef = input.customerRef ?? null;
  if (input.mandateId !== undefined) {
    const m = await ctx.database.rows<{ ref: string }>(
      sql`select cu.ref from mandates m join customers cu on cu.id = m.customer_id where m.id = ${input.mandateId}`,
    );
    if (!m[0]) throw new ValidationError('mandateId', `no mandate ${input.mandateId}`);
    if (customerRef !== null && customerRef !== m[0].ref)
      throw new ValidationError('customerRef', `mandate ${input.mandateId} belongs to customer ${m[0].ref}`);
    customerRef = m[0].ref;
  }
  const known = await ctx.database.rows<{ payment_id: number }>(
    sql`select id as payment_id from paypal_payments where events_href = ${input.eventsLink}
           or transaction_reference = ${input.transactionReference ?? null}
        union all select payment_id from paypal_links where rel = 'action:events' and href = ${input.eventsLink} limit 1`,
  );
  if (known[0])
    throw new ConflictError(`eventsLink: already tracked as PayPal payment ${known[0].payment_id}`);
  const q = await query(ctx, input.eventsLink);
  if (q.found !== true) throw new UnavailableError(`${notAnswered(q)}; nothing was stored, try again`);
  const id = await insertPaypalPayment(ctx.database, {
    eventsHref: input.eventsLink,
    amount: input.amount,
    currency: input.currency,
    transactionReference: input.transactionReference ?? null,
    customerRef,
    mandateId: input.mandateId ?? null,
    lastEvent: q.rawStatus,
    links: q.links,
    checkedAt: ctx.clock.now(),
  });
  if (id === 0) throw new ConflictError('already tracked as a PayPal payment');
  return getPaypalPayment(ctx.database, id);
}

/** As card links must: an absolute https link on the configured Worldpay origin (our credentials go with it). */
function assertEventsLink(ctx: BillingContext, href: string): void {
  const base = new URL(ctx.config.worldpay.url);
  let u: URL;
  try {
    u = new URL(href);
  } catch {
    throw new ValidationError('eventsLink', 'must be an absolute URL');
  }
  if (u.origin !== base.origin)
    throw new ValidationError(
      'eventsLink',
      `must be a link on the configured Worldpay origin ${base.origin}`,
    );
}

/** `show`: ask Worldpay, record the answer, and give the payment with what was refunded and what is left. */
export async function showPaypalPayment(
  ctx: BillingContext,
  id: number,
): Promise<PaypalPaymentDetail & { asked: PaypalAsked }> {
  const asked = await askPaypal(ctx, id);
  return { ...(await getPaypalPayment(ctx.database, id)), asked };
}

interface WrittenAhead {
  refundId: number;
  reference: string;
  amount: number;
  currency: string;
  href: string;
}

/**
 * The rules, under the payment's row lock, then the refund written ahead: the last event (just
 * asked) is `sentForSettlement`; a partial refund is in the payment's currency and at most what
 * is left after every earlier refund, accepted or in doubt; a full refund waits until no
 * earlier one is in doubt (it would take whatever Worldpay still holds).
 */
async function writeAhead(
  ctx: BillingContext,
  id: number,
  kind: 'refund' | 'partialRefund',
  input: { amount?: number | undefined; currency?: string | undefined },
): Promise<WrittenAhead> {
  return ctx.database.db.transaction(async (tx) => {
    await ctx.database.rows(sql`select id from paypal_payments where id = ${id} for update`, tx);
    const p = await getPaypalPayment(ctx.database, id, tx);
    if (input.currency !== undefined && input.currency !== p.currency)
      throw new ValidationError(
        'currency',
        `PayPal payment ${id} is in ${p.currency}, not ${input.currency}`,
      );
    if (!isRefundableEvent(p.lastEvent))
      throw new RefundNotAllowedError(
        `PayPal payment ${id}: its latest event is ${p.lastEvent}; a refund needs sentForSettlement (nothing was sent)`,
      );
    const inDoubt = p.refunds.filter((r) => r.state === 'requested');
    if (kind === 'refund' && inDoubt.length > 0)
      throw new RefundNotAllowedError(
        `PayPal payment ${id}: refund ${inDoubt[0]!.reference} has no answer yet; \`rebill paypal show ${id}\` asks Worldpay (nothing was sent)`,
      );
    const amount = kind === 'refund' ? p.left : (input.amount ?? 0);
    if (kind === 'partialRefund') {
      guardMoney(amount, p.currency, ctx.config.billing.maxAmount);
    }
    if (p.left <= 0)
      throw new RefundNotAllowedError(`PayPal payment ${id}: nothing is left to refund (nothing was sent)`);
    const money = (n: number) => formatMoney(n, p.currency);
    if (amount > p.left)
      throw new RefundNotAllowedError(
        `PayPal payment ${id}: refunding ${money(amount)} would exceed what is left, ${money(p.left)} of ${money(p.amount)} (${money(p.refunded)} refunded, ${money(p.pending)} in doubt; nothing was sent)`,
      );
    const rel = kind === 'refund' ? 'action:refund' : 'action:partialRefund';
    const href = p.links[rel];
    if (href === undefined)
      throw new RefundNotAllowedError(
        `PayPal payment ${id}: Worldpay gave no ${rel} link (nothing was sent)`,
      );
    const n = p.refunds.filter((r) => r.kind === kind).length + 1;
    const reference = actionReference(`${ctx.config.billing.referencePrefix}-PP${id}`, kind, n).slice(0, 128);
    const refundId = await writeAheadPaypalRefund(ctx.database, tx, {
      paymentId: id,
      kind,
      reference,
      amount,
      currency: p.currency,
      linkHref: href,
    });
    return { refundId, reference, amount, currency: p.currency, href };
  });
}

/**
 * Refund what is left (`refund`) or part of it (`partialRefund`): Worldpay asked first (which
 * also settles a refund whose answer was lost), the rules checked, the refund written ahead,
 * then sent once.
 */
export async function refundPaypalPayment(
  ctx: BillingContext,
  id: number,
  kind: 'refund' | 'partialRefund',
  raw: unknown = {},
): Promise<PaypalRefundOutcome> {
  const input =
    kind === 'partialRefund'
      ? parseInput(partialRefundInputSchema, raw ?? {})
      : parseInput(refundInputSchema, raw ?? {});
  const asked = await askPaypal(ctx, id);
  if (!asked.asked)
    throw new RefundNotAllowedError(
      `PayPal payment ${id}: its latest event could not be asked afresh (${asked.reason}); nothing was sent`,
    );
  const a = await writeAhead(ctx, id, kind, input);
  const log = ctx.logger.child({ paypalPaymentId: id, refundId: a.refundId, reference: a.reference });
  const gw = paypalGateway(ctx);
  let result: PaymentActionResult;
  try {
    result =
      kind === 'refund'
        ? await gw.paypalRefund(a.href)
        : await gw.paypalPartialRefund(a.href, { amount: a.amount, currency: a.currency }, a.reference);
  } catch (err) {
    const answer = err instanceof GatewayError ? err : undefined;
    const message = err instanceof Error ? err.message : String(err);
    log.warn({ correlationId: answer?.correlationId, err: message }, `PayPal ${kind} rejected`);
    await failPaypalRefund(ctx.database, {
      paymentId: id,
      refundId: a.refundId,
      httpStatus: answer?.status ?? null,
      correlationId: answer?.correlationId ?? null,
      error: `${kind} rejected: ${message}`,
    });
    throw new GatewayRejectedError(`PayPal payment ${id}: ${kind} rejected by Worldpay: ${message}`, {
      cause: err,
    });
  }
  ctx.metrics?.gatewayLatency(`paypal.${kind}`, result.latencyMs / 1000);
  if (result.outcome === 'unknown') {
    log.warn(
      { correlationId: result.correlationId, reason: result.reason },
      `PayPal ${kind} outcome unknown`,
    );
  } else {
    log.info({ correlationId: result.correlationId }, `PayPal ${kind} accepted`);
    await acceptPaypalRefund(ctx.database, {
      paymentId: id,
      refundId: a.refundId,
      kind,
      httpStatus: result.httpStatus ?? null,
      correlationId: result.correlationId ?? null,
      links: result.links as Links,
    });
  }
  return {
    refundId: a.refundId,
    kind,
    reference: a.reference,
    amount: a.amount,
    currency: a.currency,
    outcome: result.outcome,
    payment: await getPaypalPayment(ctx.database, id),
  };
}
