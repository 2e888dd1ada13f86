import { boolean, integer, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { runMachine } from '../../domain/lifecycle.ts';
import { created, id, oneOf, ref, ts } from './columns.ts';

/** Running the service: billing runs, the daemon's schedule slots, admin API idempotency keys. */

export const billingRuns = pgTable(
  'billing_runs',
  {
    id: id(),
    trigger: text('trigger').notNull(),
    asOf: ts('as_of').notNull(),
    dryRun: boolean('dry_run').notNull().default(false),
    mandateId: ref('mandate_id'),
    limit: integer('limit'),
    status: text('status').notNull().default('running'),
    counts: jsonb('counts').$type<Record<string, number>>().notNull().default({}),
    owner: text('owner'),
    error: text('error'),
    startedAt: ts('started_at').notNull().defaultNow(),
    /** Written while the run works: a `running` run whose heartbeat stopped lost its worker. */
    heartbeatAt: ts('heartbeat_at'),
    /** A dry run's answer: what it would send (at most the run's limit). */
    wouldSend: jsonb('would_send'),
    finishedAt: ts('finished_at'),
  },
  () => [oneOf('billing_runs_status_check', 'status', runMachine)],
);
export type BillingRun = typeof billingRuns.$inferSelect;

/** Daemon ticks coordinated across replicas: one row per schedule slot that fired. */
export const cronSlots = pgTable('cron_slots', {
  name: text('name').primaryKey(),
  lastSlot: ts('last_slot').notNull(),
  owner: text('owner'),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

/** Admin API idempotency: the first response to a key is replayed for the same key. */
export const idempotencyKeys = pgTable('idempotency_keys', {
  key: text('key').primaryKey(),
  method: text('method').notNull(),
  path: text('path').notNull(),
  requestHash: text('request_hash').notNull(),
  statusCode: integer('status_code'),
  response: jsonb('response'),
  /** While the first request runs: past this, a retry with the key may run it again. */
  lockedUntil: ts('locked_until'),
  createdAt: created(),
});
