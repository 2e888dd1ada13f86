import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';

/**
 * Claim a schedule slot for this replica. The upsert only writes when the stored slot is
 * older, so of several daemons ticking the same slot exactly one gets a row back (the others
 * wait on the row lock, then see last_slot = slot and update nothing). A daemon starting
 * after downtime claims the latest slot only: everything due since is billed by that one run,
 * the slots in between are never replayed one by one.
 */
export async function claimSlot(
  database: Database,
  name: string,
  slot: Date,
  owner: string,
): Promise<boolean> {
  const rows = await database.rows<{ name: string }>(sql`insert into cron_slots (name, last_slot, owner)
    values (${name}, ${slot.toISOString()}::timestamptz, ${owner})
    on conflict (name) do update set last_slot = excluded.last_slot, owner = excluded.owner, updated_at = now()
      where cron_slots.last_slot < excluded.last_slot
    returning name`);
  return rows.length > 0;
}

export async function lastSlot(database: Database, name: string): Promise<Date | null> {
  const rows = await database.rows<{ last_slot: Date }>(
    sql`select last_slot from cron_slots where name = ${name}`,
  );
  return rows[0]?.last_slot ?? null;
}

/**
 * The latest instant at or before `now` that the schedule matches, found by walking back one
 * step (a minute, or a second for six-field patterns) at a time; null when none within the
 * horizon (31 days, or 1 day for second-level patterns).
 */
export function previousSlot(pattern: string, match: (d: Date) => boolean, now: Date): Date | null {
  const seconds = pattern.trim().split(/\s+/).length === 6;
  const step = seconds ? 1000 : 60_000;
  const steps = seconds ? 86_400 : 31 * 24 * 60;
  let t = Math.floor(now.getTime() / step) * step;
  for (let i = 0; i < steps; i++, t -= step) {
    const d = new Date(t);
    if (match(d)) return d;
  }
  return null;
}

export function floorToSlot(pattern: string, d: Date): Date {
  const step = pattern.trim().split(/\s+/).length === 6 ? 1000 : 60_000;
  return new Date(Math.floor(d.getTime() / step) * step);
}
