import type { z } from 'zod';
import type { BillingContext } from '../../billing/context.ts';
import {
  amountInputSchema,
  noAmountInputSchema,
  type PaymentOp,
  paymentAction,
  paymentEvents,
  recordedPaymentEvents,
} from '../../billing/operator/payments.ts';
import { defineRoute, type RouteDef } from '../route.ts';
import { emptyBody } from './filters.ts';

/** The payment actions: one route each, the body with an amount where the action takes part of one. */
const actions: { path: string; kind: PaymentOp; body: z.ZodType; summary: string }[] = [
  { path: 'settle', kind: 'settle', body: noAmountInputSchema, summary: 'Settle the full authorized amount' },
  {
    path: 'partial-settle',
    kind: 'partialSettle',
    body: amountInputSchema,
    summary: 'Settle part of the authorized amount',
  },
  {
    path: 'cancel',
    kind: 'cancel',
    body: noAmountInputSchema,
    summary: 'Cancel an authorization with nothing settled',
  },
  {
    path: 'refund',
    kind: 'refund',
    body: noAmountInputSchema,
    summary: 'Refund what is settled and not refunded yet',
  },
  {
    path: 'partial-refund',
    kind: 'partialRefund',
    body: amountInputSchema,
    summary: 'Refund part of the settled amount',
  },
  {
    path: 'reversal',
    kind: 'reversal',
    body: noAmountInputSchema,
    summary: 'Reverse the payment (cancel or refund, as the gateway decides)',
  },
];

/** A charge's payment at the gateway: its latest status asked for, and the actions on it. */
export function paymentRoutes(ctx: BillingContext): RouteDef[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/charges/:id/events',
      tag: 'charges',
      summary:
        "The payment's events as recorded (webhooks and queries), oldest first. Reads only: POST /v1/charges/{id}/query asks the gateway",
      status: 200,
      handler: async ({ params }) => recordedPaymentEvents(ctx, params.id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/charges/:id/query',
      tag: 'charges',
      summary:
        "Ask the gateway for the payment's latest status and apply it (as `rebill charges query`); answers what was found and applied",
      body: emptyBody,
      bodyFirst: true,
      status: 200,
      handler: async ({ params }) => paymentEvents(ctx, params.id),
    }),
    ...actions.map((p) =>
      defineRoute({
        method: 'POST',
        url: `/v1/charges/:id/${p.path}`,
        tag: 'charges',
        summary: `${p.summary} (amount checks are done before the gateway is called)`,
        body: p.body,
        examples: p.body === amountInputSchema ? { part: { amount: 1000 } } : { whole: {} },
        status: 200,
        handler: async ({ params, body }) => paymentAction(ctx, params.id, p.kind, body),
      }),
    ),
  ];
}
