import { sql } from 'drizzle-orm';
import type { BillingContext } from '../../billing/context.ts';
import { DatabaseUnavailableError, errorMessage } from '../../errors.ts';
import type { Metrics } from '../../metrics.ts';
import { defineRoute, type RouteDef } from '../route.ts';

/** What an operator's probes read: health, metrics, and the API's own document. */
export function opsRoutes(
  ctx: BillingContext,
  metrics: Metrics | undefined,
  openapi: () => Record<string, unknown>,
): RouteDef[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/healthz',
      summary: 'Process up and database reachable',
      tag: 'ops',
      auth: 'none',
      status: 200,
      raw: true,
      errors: { '503': 'Not ready: the database cannot be reached (`database_unavailable`, Retry-After)' },
      async handler(_input, _req, reply) {
        try {
          await ctx.database.rows(sql`select 1`);
          return reply.send({ ok: true });
        } catch (err) {
          ctx.logger.warn({ err: errorMessage(err) }, 'health check: database unreachable');
          return reply
            .code(503)
            .header('retry-after', String(DatabaseUnavailableError.retryAfterSeconds))
            .send({
              ok: false,
              error: { code: DatabaseUnavailableError.code, message: 'database unreachable' },
            });
        }
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/metrics',
      summary: 'Prometheus metrics (bearer token like every admin route)',
      tag: 'ops',
      status: 200,
      raw: true,
      async handler(_input, _req, reply) {
        if (!metrics)
          return reply.code(404).send({ error: { code: 'not_found', message: 'metrics are off' } });
        const text = await metrics.render();
        return reply.header('content-type', metrics.contentType).send(text);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/openapi.json',
      summary: 'This document',
      tag: 'ops',
      status: 200,
      raw: true,
      database: false,
      handler: async () => openapi(),
    }),
  ];
}
