import { type SQL, sql } from 'drizzle-orm';
import type { Database, Executor } from '../db/client.ts';
import type { EventType } from './types.ts';

/**
 * Append an event that is not a state move (state moves are turned into events by the
 * `audit_log` trigger of migration 0004) in the caller's transaction: it commits, or is lost,
 * with the change it reports. `data` is built in SQL when given as a fragment (the mandate's
 * view, `rebill_mandate_json(id)`), else taken as JSON.
 */
export async function appendEvent(
  database: Database,
  on: Executor | undefined,
  e: { type: EventType; mandateId?: number | null; data: SQL | Record<string, unknown>; endpointId?: number },
): Promise<void> {
  const data = isSql(e.data) ? e.data : sql`${JSON.stringify(e.data)}::jsonb`;
  const mandateId = e.mandateId ?? null;
  await database.rows(
    sql`insert into events (type, mandate_id, customer_ref, data, endpoint_id)
        select ${e.type}, ${mandateId}::bigint,
               (select cu.ref from mandates m join customers cu on cu.id = m.customer_id where m.id = ${mandateId}::bigint),
               ${data}, ${e.endpointId ?? null}::bigint`,
    on,
  );
}

function isSql(v: unknown): v is SQL {
  return typeof v === 'object' && v !== null && 'queryChunks' in v;
}
