/**
 * The `billing_runs` row's statements: its creation, its heartbeat and progress, and its end
 * (finished, or marked interrupted when its worker is gone). Every status change is guarded by
 * the run machine (`runMachine` in src/domain/lifecycle.ts); the `billing_runs_transition_guard`
 * trigger refuses anything else.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { type RunStatus, runMachine } from '../../domain/lifecycle.ts';
import { isOpen, mayBecome } from './transitions.ts';

/** What a run is created with. */
export interface NewRun {
  trigger: string;
  asOf: Date;
  dryRun: boolean;
  mandateId: number | null;
  limit: number | null;
  owner: string;
}

/** Insert a run's row (`running`, heartbeat now); returns its id. */
export async function insertRun(database: Database, r: NewRun): Promise<number> {
  const rows = await database.rows<{
    id: number;
  }>(sql`insert into billing_runs (trigger, as_of, dry_run, mandate_id, "limit", owner, heartbeat_at)
    values (${r.trigger}, ${r.asOf.toISOString()}::timestamptz, ${r.dryRun}, ${r.mandateId},
            ${r.limit}, ${r.owner}, now()) returning id`);
  return rows[0]!.id;
}

/** Runs whose heartbeat is older than `staleSeconds` become `interrupted`; returns their ids. */
export async function interruptStaleRuns(database: Database, staleSeconds: number): Promise<number[]> {
  const rows = await database.rows<{ id: number }>(sql`update billing_runs
      set status = 'interrupted', finished_at = now(),
          error = 'its worker stopped without finishing it (no heartbeat since ' || coalesce(heartbeat_at, started_at)::text || ')'
    where ${mayBecome(runMachine, 'status', 'interrupted')}
      and coalesce(heartbeat_at, started_at) < now() - make_interval(secs => ${staleSeconds})
    returning id`);
  return rows.map((r) => r.id);
}

/** The run is alive: only while it is still `running`. */
export async function beatRun(database: Database, runId: number): Promise<void> {
  await database.rows(
    sql`update billing_runs set heartbeat_at = now() where id = ${runId} and ${isOpen(runMachine, 'status')}`,
  );
}

/** The run's counts so far (progress while it works). */
export async function writeRunCounts(database: Database, runId: number, counts: unknown): Promise<void> {
  await database.rows(
    sql`update billing_runs set counts = ${JSON.stringify(counts)}::jsonb where id = ${runId}`,
  );
}

/** A dry run's forecast: what it would send. */
export async function writeWouldSend(database: Database, runId: number, forecast: unknown): Promise<void> {
  await database.rows(
    sql`update billing_runs set would_send = ${JSON.stringify(forecast)}::jsonb where id = ${runId}`,
  );
}

/**
 * Close the run through the run table, and write `run.completed` with its end, in its
 * statement (the outbox's rule); a dry run changed nothing, so it tells nobody. Returns false
 * when the run was already closed (marked interrupted meanwhile): its end stands.
 */
export async function finishRunRow(
  database: Database,
  runId: number,
  status: RunStatus,
  counts: unknown,
  error: string | null,
): Promise<boolean> {
  const rows = await database.rows<{
    id: number;
  }>(sql`with r as (update billing_runs set status = ${status}, counts = ${JSON.stringify(counts)}::jsonb,
    error = ${error}, finished_at = now() where id = ${runId} and ${mayBecome(runMachine, 'billing_runs.status', status)}
    returning id, status, trigger, as_of, dry_run, mandate_id, counts, error, started_at, finished_at
    ), ev as (
      insert into events (type, data)
      select 'run.completed', jsonb_build_object('id', id, 'status', status, 'trigger', trigger, 'asOf', rebill_iso(as_of),
             'dryRun', dry_run, 'mandateId', mandate_id, 'counts', counts, 'error', error,
             'startedAt', rebill_iso(started_at), 'finishedAt', rebill_iso(finished_at))
        from r where not r.dry_run
    )
    select id from r`);
  return rows.length > 0;
}

/**
 * Forget a run that found nothing to do (a daemon tick on a quiet minute): its row goes while
 * it is still `running`, before any end or event is written, so `runs list` and the event log
 * keep the runs that did something. Returns false when it was closed meanwhile (marked
 * interrupted): then it stays.
 */
export async function deleteIdleRun(database: Database, runId: number): Promise<boolean> {
  const rows = await database.rows<{ id: number }>(
    sql`delete from billing_runs where id = ${runId} and ${isOpen(runMachine, 'status')} returning id`,
  );
  return rows.length > 0;
}
