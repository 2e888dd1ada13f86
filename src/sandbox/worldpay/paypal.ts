import { manageResolved } from './manage.js';
import { type PaymentState, remainingToRefund } from './paymentMachine.js';
import type { Payment } from './payments.js';
import { href, notFound, type SandboxReply } from './replies.js';
import type { SandboxStores } from './stores.js';

// PayPal payments through the APM API (seed 001, "manage PayPal payments"): queried and refunded
// by `action:` links only. The query offers `action:refund` and `action:partialRefund` only while
// the last event is `sentForSettlement`; a refund or partial refund asked in any other state is
// answered 409 and recorded in the ledger, so a test sees that something was sent. A partial
// refund that leaves something to refund leaves the payment `sentForSettlement` again (the page's
// "still sentForSettlement"), so a further one can follow; a refund of all that is left ends at
// `sentForRefund`. Lost answers come from the script book (`op: refund | partialRefund`).

const PAYPAL = '/payments/alternative/action/paypal/';

/** The PayPal last events a test may move a payment to (seed 001's list). */
export const PAYPAL_EVENTS: readonly PaymentState[] = [
  'authorized',
  'sentForSettlement',
  'sentForRefund',
  'refundFailed',
  'refused',
  'error',
  'captureFailed',
];

const curies = (base: string) => [{ name: 'action', href: `${base}/rels${PAYPAL}{rel}`, templated: true }];

/** The events query's answer: the last event older than the event lag, with the links it allows. */
export function paypalEvents(
  { payments }: SandboxStores,
  base: string,
  p: Payment | undefined,
): SandboxReply {
  const event = p?.paypal ? payments.visibleEvent(p) : undefined;
  if (!p || !event) return notFound();
  return { status: 200, body: { lastEvent: event.state, _links: paypalLinks(base, p) } };
}

/** The links a query answers with: the refunds only while the payment is `sentForSettlement`. */
export function paypalLinks(base: string, p: Payment): Record<string, unknown> {
  const links: Record<string, unknown> = {};
  if (p.state === 'sentForSettlement' && remainingToRefund(p) > 0) {
    links['action:refund'] = href(base, `${PAYPAL}refunds/full/${p.linkData}`);
    links['action:partialRefund'] = href(base, `${PAYPAL}refunds/partials/${p.linkData}`);
  }
  return { ...links, ...paypalEventsLink(base, p) };
}

/** What a refund's 202 carries: the link to query the payment. */
export function paypalEventsLink(base: string, p: Payment): Record<string, unknown> {
  return { 'action:events': href(base, `${PAYPAL}events/${p.linkData}`), curies: curies(base) };
}

/** A refund or partial refund POSTed to its `action:` link. */
export function paypalRefund(
  stores: SandboxStores,
  base: string,
  op: 'refund' | 'partialRefund',
  p: Payment | undefined,
  body: unknown,
): SandboxReply {
  if (!p?.paypal) return notFound();
  if (p.state !== 'sentForSettlement') {
    stores.ledger.record({
      op,
      transactionReference: p.transactionReference,
      paymentId: p.id,
      outcome: 'invalidState',
      httpStatus: 409,
    });
    return {
      status: 409,
      body: {
        errorName: 'actionNotAllowed',
        message: `A refund is only allowed while the last event is sentForSettlement, not ${p.state}.`,
      },
    };
  }
  const reply = manageResolved(stores, base, op, p, body, (paid) => paypalEventsLink(base, paid));
  if (reply.status === 202 && remainingToRefund(p) > 0) {
    p.state = 'sentForSettlement';
    p.events.push({ state: 'sentForSettlement', at: stores.now() });
  }
  return reply;
}

/** A PayPal payment the customer approved: `sentForSettlement` (default) or still `authorized`. */
export function openPaypal(
  stores: SandboxStores,
  base: string,
  input: {
    transactionReference?: string;
    entity?: string;
    amount?: number;
    currency?: string;
    lastEvent?: string;
  },
) {
  const p = stores.payments.openPaypal(input);
  if (input.lastEvent === 'authorized') {
    p.state = 'authorized';
    p.settledAmount = 0;
    p.events = [{ state: 'authorized', at: p.createdAt }];
  }
  return { paymentId: p.id, _links: paypalLinks(base, p) };
}

/**
 * A test moves a PayPal payment's last event (found by any of its links), as PayPal and
 * Worldpay would in time: to `sentForSettlement` it becomes refundable for its whole amount.
 */
export function movePaypal(
  stores: SandboxStores,
  base: string,
  link: string | undefined,
  lastEvent: string | undefined,
): SandboxReply {
  const p = link === undefined ? undefined : stores.payments.byLink(linkDataOf(link));
  if (!p?.paypal) return notFound();
  const event = PAYPAL_EVENTS.find((e) => e === lastEvent);
  if (event === undefined)
    return {
      status: 400,
      body: {
        errorName: 'invalidLastEvent',
        message: `lastEvent must be one of ${PAYPAL_EVENTS.join(', ')}`,
      },
    };
  if (event === 'sentForSettlement' && p.settledAmount === 0) p.settledAmount = p.authorizedAmount;
  p.state = event;
  stores.payments.emit(p, event, stores.now());
  return { status: 200, body: { paymentId: p.id, lastEvent: event, _links: paypalLinks(base, p) } };
}

/** The link data at the end of any PayPal action link. */
function linkDataOf(link: string): string {
  const at = link.indexOf(PAYPAL);
  const tail = at < 0 ? link : link.slice(at + PAYPAL.length);
  return tail.replace(/^(events|refunds\/full|refunds\/partials)\//, '');
}
