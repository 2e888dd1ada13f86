import { sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';

/**
 * A Worldpay event that matched no card payment and no PayPal payment (a payout's, another
 * system's on the same merchant account, or one for a payment rebill no longer has), kept in
 * `payment_events` without an attempt, once by its event id, so that nothing Worldpay sent is
 * dropped and an operator can find it by its transaction reference. False when it was kept before.
 */
export async function keepUnmatchedEvent(
  database: Database,
  e: {
    eventId: string;
    type: string;
    transactionReference: string;
    payload: unknown;
    occurredAt?: Date | undefined;
  },
): Promise<boolean> {
  const rows = await database.rows<{ id: number }>(
    sql`insert into payment_events (event_id, source, last_event, transaction_reference, payload, occurred_at)
        values (${e.eventId}, 'webhook', ${e.type}, ${e.transactionReference}, ${JSON.stringify(e.payload)}::jsonb,
                ${e.occurredAt?.toISOString() ?? null}::timestamptz)
        on conflict (event_id) do nothing returning id`,
  );
  return rows.length > 0;
}
