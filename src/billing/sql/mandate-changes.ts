/**
 * The `mandate_changes.state` writes, guarded by the change machine (`mandateChangeMachine` in
 * src/domain/lifecycle.ts; the `mandate_changes_transition_guard` trigger refuses anything else).
 */
import { sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import type { mandateChanges } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import { type MandateChangeState, mandateChangeMachine } from '../../domain/lifecycle.ts';
import { isOpen, mayBecome } from './transitions.ts';

/** Cancel a change not yet applied; returns its row, or undefined when there is none still scheduled. */
export async function cancelScheduledChange<R = RawRow<typeof mandateChanges>>(
  database: Database,
  mandateId: number,
  changeId: number,
): Promise<R | undefined> {
  const rows = await database.rows<R>(
    sql`update mandate_changes set state = 'cancelled' where id = ${changeId} and mandate_id = ${mandateId}
           and ${mayBecome(mandateChangeMachine, 'state', 'cancelled')}
        returning *`,
  );
  return rows[0];
}

/** Take a scheduled change for this transaction (none: another run holds it, or it was settled). */
export async function claimScheduledChange(database: Database, on: Executor, id: number): Promise<boolean> {
  const rows = await database.rows<{ id: number }>(
    sql`select id from mandate_changes where id = ${id} and ${isOpen(mandateChangeMachine, 'state')} for update skip locked`,
    on,
  );
  return rows.length > 0;
}

/** A claimed change's end: applied, or cancelled (with why) when applying it conflicted. */
export async function settleChange(
  database: Database,
  on: Executor,
  id: number,
  state: Exclude<MandateChangeState, 'scheduled'>,
  result: Record<string, unknown>,
): Promise<void> {
  await database.rows(
    sql`update mandate_changes set state = ${state}, result = ${JSON.stringify(result)}::jsonb, applied_at = now()
         where id = ${id} and ${mayBecome(mandateChangeMachine, 'state', state)}`,
    on,
  );
}
