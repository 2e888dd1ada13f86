import { Readable } from 'node:stream';
import { z } from 'zod';
import type { BillingContext } from '../../billing/context.ts';
import { EXPORT_KINDS, exportLines } from '../../billing/reporting/exports.ts';
import { parseInstant } from '../../domain/instant.ts';
import { defineRoute, type RouteDef } from '../route.ts';

const exportQuery = z
  .object({ from: z.string().max(64), to: z.string().max(64), format: z.enum(['csv', 'ndjson']).optional() })
  .strict();

/** Charges, mandates, attempts or events of a window, streamed as CSV or NDJSON. */
export function exportRoutes(ctx: BillingContext): RouteDef[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/exports/:kind',
      summary:
        'charges | mandates | attempts | events in ?from&to (required) as ?format=csv (default) or ndjson, streamed; the column sets are in the README',
      tag: 'reports',
      status: 200,
      raw: true,
      // The kind is checked by exportLines, whose refusal names the kinds there are.
      params: z.object({ kind: z.string() }),
      pathParams: { kind: { type: 'string', enum: [...EXPORT_KINDS] } },
      query: exportQuery,
      async handler({ params: { kind }, query: q }, _req, reply) {
        const from = parseInstant('from', q.from);
        const to = parseInstant('to', q.to);
        const lines = exportLines(ctx.database, kind, { from, to, format: q.format });
        // The first chunk (the CSV header with the first page) is read before the status goes
        // out, so a bad kind or window is still a 400 and a database that cannot be read a 503.
        const first = await lines.next();
        const format = q.format ?? 'csv';
        void reply
          .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
          .header('content-disposition', `attachment; filename="${kind}.${format}"`);
        return reply.send(
          Readable.from(
            (async function* () {
              if (!first.done) yield first.value;
              yield* lines;
            })(),
          ),
        );
      },
    }),
  ];
}
