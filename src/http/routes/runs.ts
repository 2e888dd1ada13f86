import { z } from 'zod';
import type { BillingContext } from '../../billing/context.ts';
import { forecast } from '../../billing/mandates/forecast.ts';
import { getRun, listRuns } from '../../billing/reporting/runs.ts';
import { reconcileWithGateway } from '../../billing/run/reconcile.ts';
import { assertNotFuture, MAX_RUN_LIMIT } from '../../billing/run/run.ts';
import type { Runner } from '../../billing/run/runner.ts';
import { parseInstant } from '../../domain/instant.ts';
import { defineRoute, type RouteDef } from '../route.ts';
import { currency, int } from './filters.ts';

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
const reconciliationBody = z.object({ since: z.string().max(64) }).strict();
const forecastQuery = z
  .object({
    from: z.string().max(64),
    to: z.string().max(64),
    mandateId: int.optional(),
    currency,
    by: z.enum(['day', 'week', 'month']).optional(),
  })
  .strict();

/** Billing runs started, listed and read, and the forecast of the runs to come. */
export function runRoutes(ctx: BillingContext, runner: Runner): RouteDef[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/runs',
      tag: 'runs',
      summary: 'Start a billing run in the background; poll GET /v1/runs/{id}',
      body: runBody,
      examples: { now: {}, dryRun: { asOf: '2027-06-01T09:00:00Z', dryRun: true } },
      status: 202,
      async handler({ body: b }) {
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
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/runs',
      tag: 'runs',
      summary: 'Billing runs, newest first (CLI, API and cron)',
      query: runQuery,
      status: 200,
      handler: async ({ query }) => listRuns(ctx, query),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/runs/:id',
      tag: 'runs',
      summary: 'A billing run: status, counts so far, timestamps',
      status: 200,
      handler: async ({ params }) => getRun(ctx, params.id),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/reconciliations',
      tag: 'runs',
      summary:
        'After a restore or a lossy failover, before anything new is sent: ask the gateway about every reference rebill could have used since `since` and adopt what it has; answers what was adopted',
      body: reconciliationBody,
      bodyRequired: true,
      examples: { afterFailover: { since: '2027-06-01T08:00:00Z' } },
      status: 200,
      handler: async ({ body: b }) =>
        reconcileWithGateway(ctx, { since: parseInstant('since', b.since), asOf: ctx.clock.now() }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/forecast',
      tag: 'runs',
      summary:
        'Every charge the calendar will create in [from, to), with scheduled changes, credits and ends applied; totals per currency per bucket; retries already scheduled apart. Sends and writes nothing',
      query: forecastQuery,
      status: 200,
      handler: async ({ query: q }) =>
        forecast(ctx, {
          from: parseInstant('from', q.from),
          to: parseInstant('to', q.to),
          mandateId: q.mandateId,
          currency: q.currency,
          by: q.by ?? 'month',
        }),
    }),
  ];
}
