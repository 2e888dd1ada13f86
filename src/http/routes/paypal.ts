import { z } from 'zod';
import type { BillingContext } from '../../billing/context.ts';
import {
  partialRefundInputSchema,
  refundInputSchema,
  refundPaypalPayment,
  showPaypalPayment,
  trackInputSchema,
  trackPaypalPayment,
} from '../../billing/paypal/payments.ts';
import { listPaypalPayments } from '../../billing/paypal/views.ts';
import { defineRoute, type RouteDef } from '../route.ts';
import { int } from './filters.ts';

const listQuery = z
  .object({ customerRef: z.string().min(1).max(200).optional(), mandateId: int.optional() })
  .strict();

/** PayPal payments tracked by their Worldpay events link (the CLI's `rebill paypal ...`, word for word). */
export function paypalRoutes(ctx: BillingContext): RouteDef[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/paypal-payments',
      tag: 'paypal',
      summary:
        'Track a PayPal payment by its action:events link on the configured Worldpay origin: asked at once, stored with its last event and links',
      body: trackInputSchema,
      bodyRequired: true,
      examples: {
        tracked: {
          eventsLink:
            'https://try.access.worldpay.com/payments/alternative/action/paypal/events/eyJrIjoiazNhYjYzMiJ9',
          amount: 5000,
          currency: 'GBP',
          customerRef: 'cus_1001',
        },
      },
      status: 201,
      handler: async ({ body }) => trackPaypalPayment(ctx, body),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/paypal-payments',
      tag: 'paypal',
      summary: 'List tracked PayPal payments, newest first, as stored (of one customer or mandate if asked)',
      query: listQuery,
      status: 200,
      handler: async ({ query }) => ({ items: await listPaypalPayments(ctx.database, query) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/paypal-payments/:id',
      tag: 'paypal',
      summary: 'Ask Worldpay and record the answer: the last event, what was refunded and what is left',
      status: 200,
      handler: async ({ params }) => showPaypalPayment(ctx, params.id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/paypal-payments/:id/refund',
      tag: 'paypal',
      summary:
        'Refund what is left (only while the last event, asked afresh, is sentForSettlement; refused before sending otherwise)',
      body: refundInputSchema,
      bodyFirst: true,
      examples: { whole: {} },
      status: 200,
      handler: async ({ params, body }) => refundPaypalPayment(ctx, params.id, 'refund', body),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/paypal-payments/:id/partial-refund',
      tag: 'paypal',
      summary:
        "Refund part of what is left, in the payment's currency (checked before sending; a reference of its own, sent once)",
      body: partialRefundInputSchema,
      bodyFirst: true,
      examples: { part: { amount: 1000, currency: 'GBP' } },
      status: 200,
      handler: async ({ params, body }) => refundPaypalPayment(ctx, params.id, 'partialRefund', body),
    }),
  ];
}
