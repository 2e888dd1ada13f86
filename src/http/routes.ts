import { z } from 'zod';
import type { BillingContext } from '../billing/context.ts';
import {
  cancelChange,
  listChanges,
  updateMandate,
  updateMandateSchema,
} from '../billing/mandates/changes.ts';
import { forecast } from '../billing/mandates/forecast.ts';
import {
  attachCredential,
  cancelMandate,
  createMandate,
  createMandateSchema,
  credentialInputSchema,
  listMandates,
  parseInput,
  pauseMandate,
  queueCharge,
  resumeMandate,
  showMandate,
} from '../billing/mandates/index.ts';
import { getCharge, listCharges, retryNow } from '../billing/operator/charges.ts';
import {
  amountInputSchema,
  noAmountInputSchema,
  type PaymentOp,
  paymentAction,
  paymentEvents,
} from '../billing/operator/payments.ts';
import { dailyReport, recoveryReport, summaryReport } from '../billing/reporting/reports.ts';
import { getRun, listRuns } from '../billing/reporting/runs.ts';
import { assertNotFuture } from '../billing/run/run.ts';
import type { Runner } from '../billing/run/runner.ts';
import { parseInstant } from '../domain/instant.ts';
import { chargeMachine, mandateMachine } from '../domain/lifecycle.ts';
import { ValidationError } from '../errors.ts';
import {
  createEndpoint,
  DELIVERY_STATES,
  endpointInputSchema,
  getEndpoint,
  listDeliveries,
  listEndpoints,
  removeEndpoint,
  resendDelivery,
  rotateSecret,
  testEndpoint,
} from '../events/endpoints.ts';
import { listEvents } from '../events/sequence.ts';
import { eventTypes } from '../events/types.ts';

export interface RouteRequest {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
}

export interface RouteResult {
  status: number;
  body: unknown;
}

/**
 * One admin API route: what the server registers and what the OpenAPI document describes,
 * from the same definition, so the two cannot drift apart.
 */
export interface RouteDef {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** fastify form: /v1/mandates/:id */
  url: string;
  summary: string;
  tag: string;
  body?: z.ZodType;
  query?: z.ZodType;
  /** Status of a successful answer. */
  status: number;
  /** The success answer's JSON Schema, where the document gives one. */
  response?: Record<string, unknown>;
  /** Named request-body examples (checked against the body schema by the tests). */
  examples?: Record<string, unknown>;
  handler(req: RouteRequest): Promise<unknown>;
}

const idParam = (name: string, v: string | undefined): number => {
  if (v === undefined || !/^\d{1,15}$/.test(v) || Number(v) < 1)
    throw new ValidationError(name, 'must be a positive integer id');
  return Number(v);
};

const int = z.coerce.number().int().positive();
/** Every value a filter can take, from the state tables: anything else is a 400 listing them. */
const oneOf = (values: readonly string[]) =>
  z.string().refine((v) => values.includes(v), { message: `must be one of ${values.join(', ')}` });
const mandateStatuses = Object.keys(mandateMachine.transitions);
const chargeStates = [...Object.keys(chargeMachine.transitions), 'dunning'];
const mandateQuery = z
  .object({
    status: oneOf(mandateStatuses).optional(),
    intent: z.enum(['subscription', 'instalment', 'unscheduled']).optional(),
    customer: z.string().min(1).max(128).optional(),
    gateway: z.enum(['worldpay', 'liquido']).optional(),
    limit: int.max(1000).optional(),
    after: int.optional(),
  })
  .strict();
const chargeQuery = z
  .object({
    state: oneOf(chargeStates).optional(),
    mandateId: int.optional(),
    /** The last refusal's code, as `rebill charges list --code`. */
    code: z
      .string()
      .regex(/^[A-Za-z0-9]{1,8}$/, 'must be a refusal code such as 51')
      .optional(),
    /** Due at or after (ISO 8601), as `rebill charges list --due-from`. */
    dueFrom: z.string().max(64).optional(),
    /** Due before (ISO 8601). */
    dueTo: z.string().max(64).optional(),
    limit: int.max(1000).optional(),
    after: int.optional(),
  })
  .strict();
/** The most charges one run may be asked to take (PostgreSQL's `limit` is a 64-bit integer). */
const MAX_RUN_LIMIT = 100_000_000;
const runQuery = z.object({ limit: int.max(1000).optional(), before: int.optional() }).strict();
const runBody = z
  .object({
    asOf: z.string().optional(),
    dryRun: z.boolean().optional(),
    allowFuture: z.boolean().optional(),
    mandateId: z.number().int().positive().optional(),
    limit: z.number().int().positive().max(MAX_RUN_LIMIT).optional(),
  })
  .strict();
const cancelBody = z.object({ atPeriodEnd: z.boolean().optional() }).strict();
const queueBody = z.object({ amount: z.number().int().positive().optional() }).strict();
const emptyBody = z.object({}).strict();

const paymentRoutes: { path: string; kind: PaymentOp; body: z.ZodType; summary: string }[] = [
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

/** The admin API's business routes. Handlers only parse, call a service, and shape the answer. */
export function adminRoutes(ctx: BillingContext, runner: Runner): RouteDef[] {
  const db = ctx.database;
  const routes: RouteDef[] = [
    {
      method: 'POST',
      url: '/v1/runs',
      tag: 'runs',
      summary: 'Start a billing run in the background; poll GET /v1/runs/{id}',
      body: runBody,
      examples: { now: {}, dryRun: { asOf: '2027-06-01T09:00:00Z', dryRun: true } },
      status: 202,
      async handler(req) {
        const b = parseInput(runBody, req.body ?? {});
        const opts = {
          asOf: b.asOf ? parseInstant('asOf', b.asOf) : ctx.clock.now(),
          dryRun: b.dryRun ?? false,
          mandateId: b.mandateId,
          limit: b.limit,
          trigger: 'api' as const,
          allowFuture: b.allowFuture ?? false,
          followSettlements: true,
        };
        // Refused here with a 400, not later in the background run.
        assertNotFuture(ctx, opts);
        const id = await runner.start(opts);
        return { id, status: 'running' };
      },
    },
    {
      method: 'GET',
      url: '/v1/runs',
      tag: 'runs',
      summary: 'Billing runs, newest first (CLI, API and cron)',
      query: runQuery,
      status: 200,
      handler: async (req) => listRuns(ctx, parseInput(runQuery, req.query)),
    },
    {
      method: 'GET',
      url: '/v1/runs/:id',
      tag: 'runs',
      summary: 'A billing run: status, counts so far, timestamps',
      status: 200,
      handler: async (req) => getRun(ctx, idParam('id', req.params.id)),
    },
    {
      method: 'POST',
      url: '/v1/mandates',
      tag: 'mandates',
      summary: 'Create a mandate',
      body: createMandateSchema,
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
      },
      status: 201,
      handler: async (req) => createMandate(ctx, req.body),
    },
    {
      method: 'GET',
      url: '/v1/mandates',
      tag: 'mandates',
      summary: 'List mandates (filters, keyset pagination with `after`)',
      query: mandateQuery,
      status: 200,
      async handler(req) {
        const q = parseInput(mandateQuery, req.query);
        return listMandates(db, {
          status: q.status,
          intent: q.intent,
          customerRef: q.customer,
          gateway: q.gateway,
          limit: q.limit,
          after: q.after,
        });
      },
    },
    {
      method: 'GET',
      url: '/v1/mandates/:id',
      tag: 'mandates',
      summary: 'A mandate with its link chain and charges',
      status: 200,
      handler: async (req) => showMandate(db, idParam('id', req.params.id)),
    },
    {
      method: 'POST',
      url: '/v1/mandates/:id/pause',
      tag: 'mandates',
      summary: 'Pause a mandate',
      body: emptyBody,
      status: 200,
      async handler(req) {
        parseInput(emptyBody, req.body ?? {});
        return pauseMandate(ctx, idParam('id', req.params.id));
      },
    },
    {
      method: 'POST',
      url: '/v1/mandates/:id/resume',
      tag: 'mandates',
      summary: 'Resume a paused mandate (cycles missed while paused are skipped)',
      body: emptyBody,
      status: 200,
      async handler(req) {
        parseInput(emptyBody, req.body ?? {});
        return resumeMandate(ctx, idParam('id', req.params.id));
      },
    },
    {
      method: 'POST',
      url: '/v1/mandates/:id/cancel',
      tag: 'mandates',
      summary: 'Cancel a mandate now or at the end of the current period',
      body: cancelBody,
      examples: { now: {}, atPeriodEnd: { atPeriodEnd: true } },
      status: 200,
      async handler(req) {
        const b = parseInput(cancelBody, req.body ?? {});
        return cancelMandate(ctx, idParam('id', req.params.id), { atPeriodEnd: b.atPeriodEnd ?? false });
      },
    },
    {
      method: 'POST',
      url: '/v1/mandates/:id/credential',
      tag: 'mandates',
      summary: 'Attach a new credential (link, card, token, network token or Liquido card)',
      body: credentialInputSchema,
      examples: {
        link: { link: 'https://try.access.worldpay.com/payments/authorizations/recurring/eyJrIjoi' },
      },
      status: 200,
      handler: async (req) => attachCredential(ctx, idParam('id', req.params.id), req.body),
    },
    {
      method: 'POST',
      url: '/v1/mandates/:id/charges',
      tag: 'mandates',
      summary: 'Queue a charge on an unscheduled mandate, due at once',
      body: queueBody,
      examples: { mandateAmount: {}, otherAmount: { amount: 1250 } },
      status: 201,
      async handler(req) {
        const b = parseInput(queueBody, req.body ?? {});
        return queueCharge(ctx, idParam('id', req.params.id), { amount: b.amount });
      },
    },
    {
      method: 'GET',
      url: '/v1/charges',
      tag: 'charges',
      summary: 'List charges with their last refusal code, advice, decision and next attempt',
      query: chargeQuery,
      status: 200,
      async handler(req) {
        const { code, dueFrom, dueTo, ...q } = parseInput(chargeQuery, req.query);
        return listCharges(db, {
          ...q,
          refusalCode: code,
          dueFrom: dueFrom === undefined ? undefined : parseInstant('dueFrom', dueFrom),
          dueTo: dueTo === undefined ? undefined : parseInstant('dueTo', dueTo),
        });
      },
    },
    {
      method: 'GET',
      url: '/v1/charges/:id',
      tag: 'charges',
      summary: 'A charge with its payment actions and events',
      status: 200,
      handler: async (req) => getCharge(db, idParam('id', req.params.id)),
    },
    {
      method: 'GET',
      url: '/v1/charges/:id/events',
      tag: 'payments',
      summary: "Ask the gateway for the payment's latest status and apply it",
      status: 200,
      handler: async (req) => paymentEvents(ctx, idParam('id', req.params.id)),
    },
    {
      method: 'POST',
      url: '/v1/charges/:id/retry-now',
      tag: 'charges',
      summary:
        'Retry a charge in dunning now, if its scheme rules allow it (as `rebill charges retry-now`); answers the run report',
      body: emptyBody,
      status: 200,
      async handler(req) {
        parseInput(emptyBody, req.body ?? {});
        return retryNow(ctx, idParam('id', req.params.id));
      },
    },
  ];
  routes.push(...eventRoutes(ctx), ...changeRoutes(ctx), ...reportRoutes(ctx));
  for (const p of paymentRoutes) {
    routes.push({
      method: 'POST',
      url: `/v1/charges/:id/${p.path}`,
      tag: 'payments',
      summary: `${p.summary} (amount checks are done before the gateway is called)`,
      body: p.body,
      examples: p.body === amountInputSchema ? { part: { amount: 1000 } } : { whole: {} },
      status: 200,
      handler: async (req) => paymentAction(ctx, idParam('id', req.params.id), p.kind, req.body ?? {}),
    });
  }
  return routes;
}

const eventQuery = z
  .object({
    after: z.coerce.number().int().min(0).optional(),
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
function eventRoutes(ctx: BillingContext): RouteDef[] {
  const endpointId = (req: RouteRequest) => idParam('id', req.params.id);
  return [
    {
      method: 'GET',
      url: '/v1/events',
      tag: 'events',
      summary:
        'Events in id order after a cursor (`after`, the last id read); `next` is the cursor of the next page',
      query: eventQuery,
      status: 200,
      response: {
        type: 'object',
        required: ['items', 'next'],
        properties: {
          items: { type: 'array', items: { $ref: '#/components/schemas/Event' } },
          next: { type: ['string', 'null'], description: 'The cursor of the next page, or null at the end' },
        },
      },
      handler: async (req) => listEvents(ctx.database, parseInput(eventQuery, req.query)),
    },
    {
      method: 'POST',
      url: '/v1/webhook-endpoints',
      tag: 'webhooks',
      summary: 'Add an endpoint; the answer carries its signing secret, shown this once',
      body: endpointInputSchema,
      examples: {
        everything: { url: 'https://billing.example.com/rebill/events', events: ['*'] },
        dunning: {
          url: 'https://crm.example.com/hooks/rebill',
          events: ['charge.refused', 'charge.failed', 'mandate.needs_new_credential'],
          description: 'CRM: dunning e-mails',
        },
      },
      status: 201,
      handler: async (req) => createEndpoint(ctx, req.body),
    },
    {
      method: 'GET',
      url: '/v1/webhook-endpoints',
      tag: 'webhooks',
      summary: 'Endpoints (without secrets)',
      status: 200,
      handler: async () => listEndpoints(ctx),
    },
    {
      method: 'GET',
      url: '/v1/webhook-endpoints/:id',
      tag: 'webhooks',
      summary: 'An endpoint (without its secret)',
      status: 200,
      handler: async (req) => getEndpoint(ctx, endpointId(req)),
    },
    {
      method: 'DELETE',
      url: '/v1/webhook-endpoints/:id',
      tag: 'webhooks',
      summary: 'Remove an endpoint; deliveries still waiting for it end as failed',
      status: 200,
      handler: async (req) => removeEndpoint(ctx, endpointId(req)),
    },
    {
      method: 'POST',
      url: '/v1/webhook-endpoints/:id/rotate-secret',
      tag: 'webhooks',
      summary: 'A new signing secret (in this answer); the old one signs beside it for 24 hours',
      body: emptyBody,
      status: 200,
      handler: async (req) => {
        parseInput(emptyBody, req.body ?? {});
        return rotateSecret(ctx, endpointId(req));
      },
    },
    {
      method: 'POST',
      url: '/v1/webhook-endpoints/:id/test',
      tag: 'webhooks',
      summary: 'Send a `ping` event to this endpoint',
      body: emptyBody,
      status: 202,
      handler: async (req) => {
        parseInput(emptyBody, req.body ?? {});
        return testEndpoint(ctx, endpointId(req));
      },
    },
    {
      method: 'GET',
      url: '/v1/webhook-endpoints/:id/deliveries',
      tag: 'webhooks',
      summary: "An endpoint's deliveries, newest first: state, attempts, last status, error and response",
      query: deliveryQuery,
      status: 200,
      handler: async (req) => listDeliveries(ctx, endpointId(req), parseInput(deliveryQuery, req.query)),
    },
    {
      method: 'POST',
      url: '/v1/webhook-deliveries/:id/resend',
      tag: 'webhooks',
      summary: 'Deliver that event to that endpoint again, now',
      body: emptyBody,
      status: 202,
      handler: async (req) => {
        parseInput(emptyBody, req.body ?? {});
        return resendDelivery(ctx, idParam('id', req.params.id));
      },
    },
  ];
}

const forecastQuery = z
  .object({
    from: z.string().max(64),
    to: z.string().max(64),
    mandateId: int.optional(),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code')
      .optional(),
    by: z.enum(['day', 'week', 'month']).optional(),
  })
  .strict();

/** Changing a mandate, its scheduled changes, and the forecast that applies them. */
function changeRoutes(ctx: BillingContext): RouteDef[] {
  return [
    {
      method: 'PATCH',
      url: '/v1/mandates/:id',
      tag: 'mandates',
      summary:
        'Change amount, interval, billingAnchor, narrative, end or settleMode; effective next_cycle (default), now or an instant; proration none, charge or credit',
      body: updateMandateSchema,
      status: 200,
      examples: {
        priceRise: { amount: 3499 },
        upgradeNowProrated: { amount: 6000, effective: 'now', proration: 'charge' },
        scheduled: { interval: '3 months', effective: '2027-09-01T00:00:00Z' },
      },
      handler: async (req) => updateMandate(ctx, idParam('id', req.params.id), req.body ?? {}),
    },
    {
      method: 'GET',
      url: '/v1/mandates/:id/changes',
      tag: 'mandates',
      summary: "A mandate's scheduled, applied and cancelled changes",
      status: 200,
      handler: async (req) => listChanges(ctx, idParam('id', req.params.id)),
    },
    {
      method: 'DELETE',
      url: '/v1/mandates/:id/changes/:changeId',
      tag: 'mandates',
      summary: 'Cancel a scheduled change',
      status: 200,
      handler: async (req) =>
        cancelChange(ctx, idParam('id', req.params.id), idParam('changeId', req.params.changeId)),
    },
    {
      method: 'GET',
      url: '/v1/forecast',
      tag: 'runs',
      summary:
        'Every charge the calendar will create in [from, to), with scheduled changes, credits and ends applied; totals per currency per bucket; retries already scheduled apart. Sends and writes nothing',
      query: forecastQuery,
      status: 200,
      async handler(req) {
        const q = parseInput(forecastQuery, req.query);
        return forecast(ctx, {
          from: parseInstant('from', q.from),
          to: parseInstant('to', q.to),
          mandateId: q.mandateId,
          currency: q.currency,
          by: q.by ?? 'month',
        });
      },
    },
  ];
}

const reportQuery = z
  .object({
    from: z.string().max(64),
    to: z.string().max(64),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code')
      .optional(),
  })
  .strict();

const summaryQuery = reportQuery.extend({
  /** `false`: leave out forecastNext30Days (null), which walks every mandate's calendar. */
  forecast: z.enum(['true', 'false']).optional(),
});

/** What dunning recovers, and the window at a glance (definitions in src/billing/reports.ts). */
export function reportRoutes(ctx: BillingContext): RouteDef[] {
  return [
    {
      method: 'GET',
      url: '/v1/reports/summary',
      tag: 'reports',
      summary:
        'Charged, settled, first-attempt rate, refusals, recovered by retry, failed for good, open unknowns, mandates by status, the next 30 days',
      query: summaryQuery,
      status: 200,
      async handler(req) {
        const q = parseInput(summaryQuery, req.query);
        return summaryReport(ctx, parseInstant('from', q.from), parseInstant('to', q.to), q.currency, {
          forecast: q.forecast !== 'false',
        });
      },
    },
    {
      method: 'GET',
      url: '/v1/reports/recovery',
      tag: 'reports',
      summary:
        'Per first refusal code and advice code: refused, recovered, rate, amount, median days and attempts, how the rest ended; and the retry funnel',
      query: reportQuery.omit({ currency: true }),
      status: 200,
      async handler(req) {
        const q = parseInput(reportQuery.omit({ currency: true }), req.query);
        return recoveryReport(ctx, parseInstant('from', q.from), parseInstant('to', q.to));
      },
    },
    {
      method: 'GET',
      url: '/v1/reports/daily',
      tag: 'reports',
      summary:
        'Per UTC day and currency: attempts authorized first time, refused, and recovered by a retry (at most 400 days)',
      query: reportQuery,
      status: 200,
      async handler(req) {
        const q = parseInput(reportQuery, req.query);
        return dailyReport(ctx, parseInstant('from', q.from), parseInstant('to', q.to), q.currency);
      },
    },
  ];
}
