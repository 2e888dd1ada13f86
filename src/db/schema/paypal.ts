import { index, integer, pgTable, text } from 'drizzle-orm/pg-core';
import { paypalRefundMachine } from '../../domain/lifecycle.ts';
import { created, id, money, oneOf, ref, ts } from './columns.ts';
import { mandates } from './mandates.ts';

/**
 * PayPal payments through Worldpay's APM API: taken at the merchant's checkout (the customer
 * approves at PayPal), handed to rebill by their `action:events` link, then queried and
 * refunded by the links Worldpay answers with.
 */

/** A PayPal payment rebill tracks: what the merchant said it was for, and Worldpay's last word on it. */
export const paypalPayments = pgTable(
  'paypal_payments',
  {
    id: id(),
    /** The `action:events` link the payment was tracked by (its identity; later answers may carry newer ones). */
    eventsHref: text('events_href').notNull().unique(),
    /** The query does not return the amount: the merchant gives it. */
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    /** The checkout's transactionReference, when the merchant gives it: how Worldpay's webhooks name the payment. */
    transactionReference: text('transaction_reference').unique(),
    customerRef: text('customer_ref'),
    mandateId: ref('mandate_id').references(() => mandates.id),
    /** `lastEvent` as Worldpay spelt it in its latest answer. */
    lastEvent: text('last_event').notNull(),
    checkedAt: ts('checked_at').notNull(),
    createdAt: created(),
  },
  (t) => [
    index('paypal_payments_customer_idx').on(t.customerRef),
    index('paypal_payments_mandate_idx').on(t.mandateId),
  ],
);
export type PaypalPayment = typeof paypalPayments.$inferSelect;

/** Every link Worldpay answered with about a PayPal payment, kept as given (append-only). */
export const paypalLinks = pgTable(
  'paypal_links',
  {
    id: id(),
    paymentId: ref('payment_id')
      .notNull()
      .references(() => paypalPayments.id),
    /** The refund whose answer carried the link, if one did. */
    refundId: ref('refund_id'),
    /** `track`, `query`, `refund`, `partialRefund`. */
    source: text('source').notNull(),
    rel: text('rel').notNull(),
    href: text('href').notNull(),
    createdAt: created(),
  },
  (t) => [index('paypal_links_payment_idx').on(t.paymentId)],
);

/** A refund or partial refund: written ahead (`requested`) before the POST, with its own reference. */
export const paypalRefunds = pgTable(
  'paypal_refunds',
  {
    id: id(),
    paymentId: ref('payment_id')
      .notNull()
      .references(() => paypalPayments.id),
    /** `refund` or `partialRefund`. */
    kind: text('kind').notNull(),
    reference: text('reference').notNull().unique(),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    state: text('state').notNull().default('requested'),
    linkHref: text('link_href').notNull(),
    httpStatus: integer('http_status'),
    correlationId: text('correlation_id'),
    error: text('error'),
    createdAt: created(),
    completedAt: ts('completed_at'),
  },
  (t) => [
    index('paypal_refunds_payment_idx').on(t.paymentId),
    oneOf('paypal_refunds_state_check', 'state', paypalRefundMachine),
  ],
);
export type PaypalRefund = typeof paypalRefunds.$inferSelect;
