import { z } from 'zod';
import type { BillingContext } from '../../billing/context.ts';
import { dailyReport, recoveryReport, summaryReport } from '../../billing/reporting/reports.ts';
import { parseInstant } from '../../domain/instant.ts';
import { defineRoute, type RouteDef } from '../route.ts';
import { currency } from './filters.ts';

const reportQuery = z.object({ from: z.string().max(64), to: z.string().max(64), currency }).strict();
const recoveryQuery = reportQuery.omit({ currency: true });
const summaryQuery = reportQuery.extend({
  /** `false`: leave out forecastNext30Days (null), which walks every mandate's calendar. */
  forecast: z.enum(['true', 'false']).optional(),
});

/** What dunning recovers, and the window at a glance (definitions in src/billing/reporting/reports.ts). */
export function reportRoutes(ctx: BillingContext): RouteDef[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/reports/summary',
      tag: 'reports',
      summary:
        'Charged, settled, refunded and net (of the charges authorized in the window), first-attempt rate, refusals, recovered by retry, failed for good, open unknowns, mandates by status, the next 30 days',
      query: summaryQuery,
      status: 200,
      handler: async ({ query: q }) =>
        summaryReport(ctx, parseInstant('from', q.from), parseInstant('to', q.to), q.currency, {
          forecast: q.forecast !== 'false',
        }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/reports/recovery',
      tag: 'reports',
      summary:
        'Per first refusal code and advice code: refused, recovered, rate, amount, median days and attempts, how the rest ended; and the retry funnel',
      query: recoveryQuery,
      status: 200,
      handler: async ({ query: q }) =>
        recoveryReport(ctx, parseInstant('from', q.from), parseInstant('to', q.to)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/reports/daily',
      tag: 'reports',
      summary:
        'Per UTC day and currency: attempts authorized first time, refused, and recovered by a retry (at most 400 days)',
      query: reportQuery,
      status: 200,
      handler: async ({ query: q }) =>
        dailyReport(ctx, parseInstant('from', q.from), parseInstant('to', q.to), q.currency),
    }),
  ];
}
