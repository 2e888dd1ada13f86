import { z } from 'zod';
import type { BillingContext } from '../../billing/context.ts';
import {
  createEndpoint,
  DELIVERY_STATES,
  endpointInputSchema,
  endpointUpdateSchema,
  getEndpoint,
  listDeliveries,
  listEndpoints,
  removeEndpoint,
  resendDelivery,
  rotateSecret,
  testEndpoint,
  updateEndpoint,
} from '../../events/endpoints.ts';
import { getEvent, listEvents } from '../../events/sequence.ts';
import { eventTypes } from '../../events/types.ts';
import { defineRoute, type RouteDef } from '../route.ts';
import { emptyBody, int, oneOf } from './filters.ts';

const eventQuery = z
  .object({
    after: z.coerce.number().int().min(0).optional(),
    before: int.optional(),
    order: z.enum(['asc', 'desc']).optional(),
    type: oneOf(eventTypes).optional(),
    mandateId: int.optional(),
    limit: int.max(1000).optional(),
  })
  .strict();
const deliveryQuery = z
  .object({
    state: oneOf(DELIVERY_STATES).optional(),
    limit: int.max(1000).optional(),
    before: int.optional(),
  })
  .strict();

/** The outbox read by polling, and the webhook endpoints that receive it pushed. */
export function eventRoutes(ctx: BillingContext): RouteDef[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/events',
      tag: 'events',
      summary:
        'The event log with each payload, newest first; filters `type` and `mandateId`. Newest first, `next` is passed as `before` (older) and `previous` as `after` with `order=desc` (newer). `after` alone (a polling consumer, 0 for the start) reads oldest first, and then `next` is passed as `after`',
      query: eventQuery,
      status: 200,
      response: {
        type: 'object',
        required: ['items', 'next', 'previous'],
        properties: {
          items: { type: 'array', items: { $ref: '#/components/schemas/Event' } },
          next: {
            type: ['string', 'null'],
            description:
              'The cursor of the next page in this order, or null at the end: `before` when newest first, `after` when oldest first',
          },
          previous: {
            type: ['string', 'null'],
            description:
              'The cursor of the page before, or null at the start: `after` (with `order=desc`) when newest first, `before` when oldest first',
          },
        },
      },
      handler: async ({ query }) => listEvents(ctx.database, query),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/events/:id',
      tag: 'events',
      summary: 'One event with its payload',
      status: 200,
      response: { $ref: '#/components/schemas/Event' },
      handler: async ({ params }) => getEvent(ctx.database, params.id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/webhook-endpoints',
      tag: 'webhooks',
      summary: 'Add an endpoint; the answer carries its signing secret, shown this once',
      body: endpointInputSchema,
      bodyRequired: true,
      examples: {
        everything: { url: 'https://billing.example.com/rebill/events', events: ['*'] },
        dunning: {
          url: 'https://crm.example.com/hooks/rebill',
          events: ['charge.refused', 'charge.failed', 'mandate.needs_new_credential'],
          description: 'CRM: dunning e-mails',
        },
      },
      status: 201,
      handler: async ({ body }) => createEndpoint(ctx, body),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/webhook-endpoints',
      tag: 'webhooks',
      summary: 'Endpoints (without secrets)',
      status: 200,
      handler: async () => listEndpoints(ctx),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/webhook-endpoints/:id',
      tag: 'webhooks',
      summary: 'An endpoint (without its secret)',
      status: 200,
      handler: async ({ params }) => getEndpoint(ctx, params.id),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/v1/webhook-endpoints/:id',
      tag: 'webhooks',
      summary: 'Change the event types an endpoint receives (from the next event on), or its description',
      body: endpointUpdateSchema,
      bodyRequired: true,
      examples: {
        dunningOnly: { events: ['charge.refused', 'charge.failed', 'mandate.needs_new_credential'] },
        everything: { events: ['*'] },
      },
      status: 200,
      handler: async ({ params, body }) => updateEndpoint(ctx, params.id, body),
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/webhook-endpoints/:id',
      tag: 'webhooks',
      summary: 'Remove an endpoint; deliveries still waiting for it end as failed',
      status: 200,
      handler: async ({ params }) => removeEndpoint(ctx, params.id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/webhook-endpoints/:id/rotate-secret',
      tag: 'webhooks',
      summary: 'A new signing secret (in this answer); the old one signs beside it for 24 hours',
      body: emptyBody,
      bodyFirst: true,
      status: 200,
      handler: async ({ params }) => rotateSecret(ctx, params.id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/webhook-endpoints/:id/test',
      tag: 'webhooks',
      summary: 'Send a `ping` event to this endpoint',
      body: emptyBody,
      bodyFirst: true,
      status: 202,
      handler: async ({ params }) => testEndpoint(ctx, params.id),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/webhook-endpoints/:id/deliveries',
      tag: 'webhooks',
      summary: "An endpoint's deliveries, newest first: state, attempts, last status, error and response",
      query: deliveryQuery,
      status: 200,
      handler: async ({ params, query }) => listDeliveries(ctx, params.id, query),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/webhook-deliveries/:id/resend',
      tag: 'webhooks',
      summary: 'Deliver that event to that endpoint again, now',
      body: emptyBody,
      bodyFirst: true,
      status: 202,
      handler: async ({ params }) => resendDelivery(ctx, params.id),
    }),
  ];
}
