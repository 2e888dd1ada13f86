import { sql } from 'drizzle-orm';
import type { billingRuns } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import { NotFoundError } from '../../errors.ts';
import type { BillingContext } from '../context.ts';

/** Billing runs as operators see them: CLI, API and cron runs alike. */
export interface RunView {
  id: number;
  trigger: string;
  asOf: string;
  dryRun: boolean;
  mandateId: number | null;
  limit: number | null;
  status: string;
  counts: Record<string, number>;
  owner: string | null;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** A dry run's list of what it would send (on GET /v1/runs/{id}; not in listings). */
  wouldSend?: unknown[];
}

type RunRow = Omit<RawRow<typeof billingRuns>, 'would_send'> & { would_send: unknown[] | null };

function toRun(r: RunRow): RunView {
  return {
    id: r.id,
    trigger: r.trigger,
    asOf: r.as_of.toISOString(),
    dryRun: r.dry_run,
    mandateId: r.mandate_id,
    limit: r.limit,
    status: r.status,
    counts: r.counts,
    owner: r.owner,
    error: r.error,
    startedAt: r.started_at.toISOString(),
    finishedAt: r.finished_at?.toISOString() ?? null,
    ...(r.would_send !== null ? { wouldSend: r.would_send } : {}),
  };
}

export async function getRun(ctx: BillingContext, id: number): Promise<RunView> {
  const rows = await ctx.database.rows<RunRow>(sql`select * from billing_runs where id = ${id}`);
  if (!rows[0]) throw new NotFoundError('run', id);
  return toRun(rows[0]);
}

export async function listRuns(
  ctx: BillingContext,
  f: { limit?: number | undefined; before?: number | undefined },
): Promise<{ items: RunView[]; next: number | null }> {
  const limit = f.limit ?? 50;
  const rows = await ctx.database.rows<RunRow>(sql`select * from billing_runs
    where ${f.before === undefined ? sql`true` : sql`id < ${f.before}`} order by id desc limit ${limit + 1}`);
  const items = rows.slice(0, limit).map((r) => toRun({ ...r, would_send: null }));
  return { items, next: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
}
