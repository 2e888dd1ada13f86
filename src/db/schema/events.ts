import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import { created, id, ref, ts } from './columns.ts';

/** The outbox of events for the merchant, the endpoints it is delivered to, and the deliveries. */

/**
 * The outbox: what happened, for the merchant's systems. Rows are written in the transaction of
 * the state change they report (a trigger on `audit_log` for state moves, `appendEvent` for the
 * rest), with `id` null. The sequencer (`src/events/sequence.ts`) gives each committed event its
 * public `id`, in commit order, so a consumer paging by `id` never skips an event that committed
 * late; `seq` is only the insertion key.
 */
export const events = pgTable(
  'events',
  {
    seq: bigserial('seq', { mode: 'number' }).primaryKey(),
    id: bigint('id', { mode: 'number' }),
    type: text('type').notNull(),
    mandateId: ref('mandate_id'),
    customerRef: text('customer_ref'),
    data: jsonb('data').notNull(),
    /** The inserting transaction: sequenced once no older transaction is still running. */
    tx: bigint('tx', { mode: 'number' }).notNull().default(sql`(pg_current_xact_id()::text::bigint)`),
    /** For `ping`: delivered to this endpoint only. */
    endpointId: ref('endpoint_id'),
    createdAt: created(),
  },
  (t) => [
    // Partial on `id is not null`: an event is inserted on the hot path (in its state change's
    // statement) with no id, touching only the primary key and the unsequenced index; the read
    // indexes are written when the sequencer numbers it, off the hot path.
    uniqueIndex('events_id_uq').on(t.id).where(sql`${t.id} is not null`),
    index('events_unsequenced_idx').on(t.seq).where(sql`${t.id} is null`),
    index('events_mandate_idx').on(t.mandateId, t.id).where(sql`${t.id} is not null`),
    index('events_type_idx').on(t.type, t.id).where(sql`${t.id} is not null`),
  ],
);

/** Where events are delivered: the merchant's HTTPS endpoints, each with its signing secret. */
export const webhookEndpoints = pgTable(
  'webhook_endpoints',
  {
    id: id(),
    url: text('url').notNull(),
    events: text('events').array().notNull(),
    description: text('description'),
    secret: text('secret').notNull(),
    /** The secret before the last rotation: still signs beside the new one until it expires. */
    previousSecret: text('previous_secret'),
    previousSecretExpiresAt: ts('previous_secret_expires_at'),
    status: text('status').notNull().default('enabled'),
    statusReason: text('status_reason'),
    /** Since when every delivery has failed (null: the last one succeeded). */
    failingSince: ts('failing_since'),
    createdAt: created(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  () => [check('webhook_endpoints_status_check', sql`"status" in ('enabled', 'disabled', 'removed')`)],
);

/** One event to one endpoint: retried with backoff until delivered or given up. */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: id(),
    endpointId: ref('endpoint_id').notNull(),
    eventId: bigint('event_id', { mode: 'number' }).notNull(),
    mandateId: ref('mandate_id'),
    state: text('state').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: ts('next_attempt_at').notNull().defaultNow(),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: ts('lease_expires_at'),
    fence: bigint('fence', { mode: 'number' }).notNull().default(0),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    /** The receiver's last answer, cut at 64 KiB. */
    lastResponse: text('last_response'),
    lastAttemptAt: ts('last_attempt_at'),
    deliveredAt: ts('delivered_at'),
    createdAt: created(),
  },
  (t) => [
    uniqueIndex('webhook_deliveries_uq').on(t.endpointId, t.eventId),
    index('webhook_deliveries_due_idx').on(t.nextAttemptAt, t.id).where(sql`${t.state} = 'pending'`),
    index('webhook_deliveries_order_idx')
      .on(t.endpointId, t.mandateId, t.eventId)
      .where(sql`${t.state} = 'pending'`),
    check('webhook_deliveries_state_check', sql`"state" in ('pending', 'delivered', 'failed')`),
  ],
);

/** Once per credential and expiry: the credential.expiring notice was sent. */
export const expiryNotices = pgTable(
  'expiry_notices',
  {
    credentialId: ref('credential_id').notNull(),
    expiry: text('expiry').notNull(),
    createdAt: created(),
  },
  (t) => [uniqueIndex('expiry_notices_uq').on(t.credentialId, t.expiry)],
);
