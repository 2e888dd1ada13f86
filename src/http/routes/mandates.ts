import { z } from 'zod';
import type { BillingContext } from '../../billing/context.ts';
import { mandateActivity } from '../../billing/mandates/activity.ts';
import {
  cancelChange,
  listChanges,
  updateMandate,
  updateMandateSchema,
} from '../../billing/mandates/changes.ts';
import {
  attachCredential,
  cancelMandate,
  createMandate,
  createMandateSchema,
  credentialInputSchema,
  listMandates,
  pauseMandate,
  queueCharge,
  resumeMandate,
  showMandate,
  undoCancelAtPeriodEnd,
} from '../../billing/mandates/index.ts';
import { mandateMachine } from '../../domain/lifecycle.ts';
import { defineRoute, type RouteDef } from '../route.ts';
import { emptyBody, int, oneOf, searchText } from './filters.ts';

const mandateStatuses = Object.keys(mandateMachine.transitions);
const mandateQuery = z
  .object({
    status: oneOf(mandateStatuses).optional(),
    intent: z.enum(['subscription', 'instalment', 'unscheduled']).optional(),
    customerRef: searchText.optional(),
    /** The search: a mandate id, a transaction reference, or a customer ref prefix. */
    q: searchText.optional(),
    /** Deprecated spelling of customerRef, kept for one release. */
    customer: searchText.optional(),
    gateway: z.enum(['worldpay', 'liquido']).optional(),
    limit: int.max(1000).optional(),
    after: int.optional(),
  })
  .strict();
const cancelBody = z.object({ atPeriodEnd: z.boolean().optional() }).strict();
const activityQuery = z.object({ limit: int.max(1000).optional(), before: int.optional() }).strict();
const queueBody = z.object({ amount: z.number().int().positive().optional() }).strict();

/** Mandates: created, listed, paused and resumed, cancelled, changed, given a credential or a charge. */
export function mandateRoutes(ctx: BillingContext): RouteDef[] {
  const db = ctx.database;
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/mandates',
      tag: 'mandates',
      summary: 'Create a mandate',
      body: createMandateSchema,
      bodyRequired: true,
      examples: {
        subscription: {
          customerRef: 'cust-1042',
          intent: 'subscription',
          amount: 2999,
          currency: 'GBP',
          narrative: 'Acme Pro monthly',
          interval: '1 month',
          start: '2027-06-01T09:00:00Z',
          credential: { link: 'https://try.access.worldpay.com/payments/authorizations/recurring/eyJrIjoi' },
        },
        instalment: {
          customerRef: 'cust-2077',
          intent: 'instalment',
          amount: 10000,
          currency: 'EUR',
          narrative: 'Sofa 1 of 6',
          interval: '1 month',
          instalments: 6,
          start: '2027-06-15',
          timezone: 'Europe/Paris',
          credential: { tokenHref: 'https://try.access.worldpay.com/tokens/MjEwMDAwMDAwMDAwMDAwMA' },
        },
        v7Card: {
          customerRef: 'cust-3120',
          intent: 'subscription',
          amount: 1999,
          currency: 'GBP',
          narrative: 'Acme Plus monthly',
          interval: '1 month',
          credential: {
            api: 'v7',
            schemeReference: 'MCCOLXT1C0104  ',
            card: {
              number: '4444333322221111',
              expiryMonth: 12,
              expiryYear: 2030,
              holderName: 'Ada Lovelace',
            },
          },
        },
      },
      status: 201,
      handler: async ({ body }) => createMandate(ctx, body),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/mandates',
      tag: 'mandates',
      summary:
        'List mandates (filters, keyset pagination with `after`). `customerRef` finds customer refs by prefix; `q` finds a mandate id or a transaction reference exactly, or a customer ref by prefix',
      query: mandateQuery,
      status: 200,
      handler: async ({ query: q }) =>
        listMandates(db, {
          status: q.status,
          intent: q.intent,
          customerRef: q.customerRef ?? q.customer,
          q: q.q,
          gateway: q.gateway,
          limit: q.limit,
          after: q.after,
        }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/mandates/:id',
      tag: 'mandates',
      summary: 'A mandate with its link chain and charges',
      status: 200,
      handler: async ({ params }) => showMandate(db, params.id),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/v1/mandates/:id',
      tag: 'mandates',
      summary:
        'Change amount, interval, billingAnchor, narrative, end, settleMode or settlePercent; effective next_cycle (default), now or an instant; proration none, charge or credit',
      body: updateMandateSchema,
      status: 200,
      examples: {
        priceRise: { amount: 3499 },
        upgradeNowProrated: { amount: 6000, effective: 'now', proration: 'charge' },
        scheduled: { interval: '3 months', effective: '2027-09-01T00:00:00Z' },
      },
      handler: async ({ params, body }) => updateMandate(ctx, params.id, body),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/mandates/:id/pause',
      tag: 'mandates',
      summary: 'Pause a mandate',
      body: emptyBody,
      bodyFirst: true,
      status: 200,
      handler: async ({ params }) => pauseMandate(ctx, params.id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/mandates/:id/resume',
      tag: 'mandates',
      summary: 'Resume a paused mandate (cycles missed while paused are skipped)',
      body: emptyBody,
      bodyFirst: true,
      status: 200,
      handler: async ({ params }) => resumeMandate(ctx, params.id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/mandates/:id/cancel',
      tag: 'mandates',
      summary: 'Cancel a mandate now or at the end of the current period',
      body: cancelBody,
      bodyFirst: true,
      examples: { now: {}, atPeriodEnd: { atPeriodEnd: true } },
      status: 200,
      handler: async ({ params, body }) =>
        cancelMandate(ctx, params.id, { atPeriodEnd: body.atPeriodEnd ?? false }),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/mandates/:id/undo-cancel',
      tag: 'mandates',
      summary: 'Undo a cancel scheduled for the end of the period: the mandate renews as before',
      body: emptyBody,
      bodyFirst: true,
      status: 200,
      handler: async ({ params }) => undoCancelAtPeriodEnd(ctx, params.id),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/mandates/:id/activity',
      tag: 'mandates',
      summary:
        "The mandate's activity from the audit trail, newest first: its own moves and changes, its charges', their payment actions' and its credentials'",
      query: activityQuery,
      status: 200,
      handler: async ({ params, query }) => mandateActivity(db, params.id, query),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/mandates/:id/credential',
      tag: 'mandates',
      summary:
        'Attach a new credential (v6 link, card, token or network token; v7 token, card or network token with its scheme reference; Liquido card)',
      body: credentialInputSchema,
      bodyRequired: true,
      bodyAt: 'credential',
      examples: {
        link: { link: 'https://try.access.worldpay.com/payments/authorizations/recurring/eyJrIjoi' },
        v7Token: {
          api: 'v7',
          schemeReference: 'MCCOLXT1C0104  ',
          tokenHref: 'https://try.access.worldpay.com/tokens/MjEwMDAwMDAwMDAwMDAwMA',
        },
        v7NetworkToken: {
          api: 'v7',
          schemeReference: 'MCCOLXT1C0104  ',
          networkToken: { number: '5555555555554444', expiryMonth: 7, expiryYear: 2030 },
        },
      },
      status: 200,
      handler: async ({ params, body }) => attachCredential(ctx, params.id, body),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/mandates/:id/charges',
      tag: 'mandates',
      summary: 'Queue a charge on an unscheduled mandate, due at once',
      body: queueBody,
      bodyFirst: true,
      examples: { mandateAmount: {}, otherAmount: { amount: 1250 } },
      status: 201,
      handler: async ({ params, body }) => queueCharge(ctx, params.id, { amount: body.amount }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/mandates/:id/changes',
      tag: 'mandates',
      summary: "A mandate's scheduled, applied and cancelled changes",
      status: 200,
      handler: async ({ params }) => listChanges(ctx, params.id),
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/mandates/:id/changes/:changeId',
      tag: 'mandates',
      summary: 'Cancel a scheduled change',
      status: 200,
      handler: async ({ params }) => cancelChange(ctx, params.id, params.changeId),
    }),
  ];
}
