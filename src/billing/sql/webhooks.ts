/**
 * The webhook tables' state writes: `webhook_deliveries.state` (the delivery machine) and
 * `webhook_endpoints.status` (the endpoint machine), each guarded from its table in
 * src/domain/lifecycle.ts; the `webhook_*_transition_guard` triggers (migration 0012) refuse
 * anything else. The delivery loop and the endpoints' operations (src/events/) call these.
 */
import { sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import type { webhookDeliveries, webhookEndpoints } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import { deliveryMachine, endpointMachine } from '../../domain/lifecycle.ts';
import { mayBecome } from './transitions.ts';

/** Remove an endpoint (an operator's word); returns its row, or undefined when there is none left. */
export async function removeEndpointRow<R = RawRow<typeof webhookEndpoints>>(
  database: Database,
  on: Executor,
  id: number,
): Promise<R | undefined> {
  const rows = await database.rows<R>(
    sql`update webhook_endpoints set status = 'removed', status_reason = 'removed by operator', updated_at = now()
         where id = ${id} and ${mayBecome(endpointMachine, 'status', 'removed')} returning *`,
    on,
  );
  return rows[0];
}

/** Disable an endpoint whose deliveries all failed for the give-up window. */
export async function disableEndpoint(
  database: Database,
  on: Executor,
  id: number,
  reason: string,
): Promise<void> {
  await database.rows(
    sql`update webhook_endpoints set status = 'disabled', status_reason = ${reason}, updated_at = now()
         where id = ${id} and ${mayBecome(endpointMachine, 'status', 'disabled')}`,
    on,
  );
}

/** Every delivery still pending to an endpoint ends as failed (`why`: the endpoint went). */
export async function failPendingDeliveries(
  database: Database,
  on: Executor,
  endpointId: number,
  why: string,
  opts: { releaseLease?: boolean } = {},
): Promise<void> {
  await database.rows(
    sql`update webhook_deliveries set state = 'failed', last_error = ${why}${
      opts.releaseLease ? sql`, lease_owner = null, lease_expires_at = null` : sql``
    }
         where endpoint_id = ${endpointId} and ${mayBecome(deliveryMachine, 'state', 'failed')}`,
    on,
  );
}

/** Deliver again, now, to an enabled endpoint; returns the delivery's row, or undefined. */
export async function resendDeliveryRow<R = RawRow<typeof webhookDeliveries>>(
  database: Database,
  deliveryId: number,
): Promise<R | undefined> {
  const rows = await database.rows<R>(
    sql`update webhook_deliveries d set state = 'pending', next_attempt_at = now(), lease_owner = null,
               lease_expires_at = null, fence = d.fence + 1, last_error = null
          from webhook_endpoints ep
         where d.id = ${deliveryId} and ep.id = d.endpoint_id and ep.status = 'enabled'
           and ${mayBecome(deliveryMachine, 'd.state', 'pending', { orSame: true })}
        returning d.*`,
  );
  return rows[0];
}

/** An attempt's result, written only while the claim's fence holds and the delivery is pending. */
export interface DeliveryAttempt {
  id: number;
  fence: number;
  attempts: number;
  status: number | null;
  response: string | null;
}

/** The endpoint answered 2xx: delivered. */
export async function markDelivered(database: Database, on: Executor, d: DeliveryAttempt): Promise<void> {
  await database.rows(
    sql`update webhook_deliveries set state = 'delivered', attempts = ${d.attempts}, last_status = ${d.status},
               last_response = ${d.response}, last_error = null, last_attempt_at = now(), delivered_at = now(),
               lease_owner = null, lease_expires_at = null
         where id = ${d.id} and fence = ${d.fence} and ${mayBecome(deliveryMachine, 'state', 'delivered')}`,
    on,
  );
}

/** The attempt failed: tried again after `waitMs`, or, past the give-up window, failed. */
export async function markAttemptFailed(
  database: Database,
  on: Executor,
  d: DeliveryAttempt & { error: string | null; waitMs: number; giveUp: boolean },
): Promise<void> {
  await database.rows(
    sql`update webhook_deliveries set state = ${d.giveUp ? 'failed' : 'pending'}, attempts = ${d.attempts},
               last_status = ${d.status}, last_response = ${d.response}, last_error = ${d.error},
               last_attempt_at = now(), next_attempt_at = now() + make_interval(secs => ${d.waitMs / 1000}),
               lease_owner = null, lease_expires_at = null
         where id = ${d.id} and fence = ${d.fence} and ${mayBecome(deliveryMachine, 'state', 'failed')}`,
    on,
  );
}
