import { bigint, index, jsonb, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { created, id, ref } from './columns.ts';

/** Every state change, and the moves each state machine allows. */

/** Audit trail of every state change of a mandate, charge, credential or action. */
export const auditLog = pgTable(
  'audit_log',
  {
    id: id(),
    entityType: text('entity_type').notNull(),
    entityId: bigint('entity_id', { mode: 'number' }).notNull(),
    fromState: text('from_state'),
    toState: text('to_state').notNull(),
    reason: text('reason'),
    /** Structured before/after of a change that is not a state move (a mandate update). */
    detail: jsonb('detail'),
    actor: text('actor').notNull().default('system'),
    runId: ref('run_id'),
    at: created(),
  },
  (t) => [index('audit_log_entity_idx').on(t.entityType, t.entityId)],
);
export type AuditEntry = typeof auditLog.$inferSelect;

/**
 * The allowed moves of every state machine, loaded from `src/domain/lifecycle.ts` by migration:
 * triggers on the stateful tables refuse a change of state that has no row here, so no
 * statement, however written, can make a move the tables forbid. `from_state` null: a state a
 * row may be created in.
 */
export const stateTransitions = pgTable(
  'state_transitions',
  {
    machine: text('machine').notNull(),
    fromState: text('from_state'),
    toState: text('to_state').notNull(),
  },
  (t) => [uniqueIndex('state_transitions_uq').on(t.machine, t.fromState, t.toState)],
);
