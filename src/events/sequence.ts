import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import type { events } from '../db/schema.ts';
import type { RawRow } from '../db/values.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import { isEventType } from './types.ts';

/**
 * Why a sequencer: a bigserial id is taken when a row is inserted, not when its transaction
 * commits, so a consumer reading `after=41` can see 42 before a slower transaction commits 41,
 * and skip it for good. Events are therefore written with `id` null and given their public id
 * here, only once every transaction that could still commit an older one has ended, in
 * insertion order, under an advisory lock so two sequencers never interleave. In the same
 * statement each new event is fanned out to the endpoints subscribed to its type: one pending
 * delivery each.
 *
 * "Every transaction that could": the transactions still running in this statement's snapshot
 * (`pg_snapshot_xip`), less those pg_stat_activity shows running in another database, which
 * cannot write this database's events. The snapshot's own xmin is cluster-wide: waiting on it
 * held every event for as long as any transaction anywhere on the server stayed open. A running
 * transaction that pg_stat_activity does not place (it ended after the snapshot, or is a
 * prepared transaction) still holds, so the horizon is never later than the safe one. An event
 * is ready when its `tx` is below the oldest such transaction, or below the snapshot's xmax when
 * there is none.
 */
const SEQUENCER_LOCK = 7_202_612_04;
const BATCH = 2000;

export async function sequenceEvents(database: Database): Promise<{ sequenced: number; deliveries: number }> {
  const total = { sequenced: 0, deliveries: 0 };
  for (;;) {
    const r = await database.db.transaction(async (tx) => {
      await database.rows(sql`select pg_advisory_xact_lock(${SEQUENCER_LOCK})`, tx);
      const rows = await database.rows<{ sequenced: number; deliveries: number }>(
        sql`with snap as (select pg_current_snapshot() as s), horizon as (
              select coalesce(
                (select min(x) from snap, pg_snapshot_xip(snap.s) x
                  where not exists (
                    select 1 from pg_stat_activity a
                     where a.datname <> current_database()
                       and a.backend_xid::text::bigint = x::text::bigint % 4294967296)),
                (select pg_snapshot_xmax(s) from snap))::text::bigint as tx
            ), ready as (
              select seq, nextval('events_id_seq') as id from events
               where id is null and tx < (select tx from horizon)
               order by seq limit ${BATCH}
            ), upd as (
              update events e set id = r.id from ready r where e.seq = r.seq
              returning e.id, e.type, e.mandate_id, e.endpoint_id
            ), fan as (
              insert into webhook_deliveries (endpoint_id, event_id, mandate_id)
              select ep.id, u.id, u.mandate_id from upd u join webhook_endpoints ep
                on case when u.endpoint_id is not null then ep.id = u.endpoint_id
                        else ep.status = 'enabled' and (u.type = any(ep.events) or '*' = any(ep.events)) end
              on conflict do nothing
              returning 1
            )
            select (select count(*) from upd)::int as sequenced, (select count(*) from fan)::int as deliveries`,
        tx,
      );
      return { sequenced: rows[0]?.sequenced ?? 0, deliveries: rows[0]?.deliveries ?? 0 };
    });
    total.sequenced += r.sequenced;
    total.deliveries += r.deliveries;
    if (r.sequenced < BATCH) return total;
  }
}

export interface EventView {
  id: string;
  type: string;
  createdAt: string;
  mandateId: number | null;
  customerRef: string | null;
  data: Record<string, unknown>;
}

/** A sequenced event as `listEvents` reads it. */
export type EventRow = Pick<RawRow<typeof events>, 'type' | 'created_at' | 'mandate_id' | 'customer_ref'> & {
  id: number;
  data: Record<string, unknown>;
};

export function toEventView(r: EventRow): EventView {
  return {
    id: String(r.id),
    type: r.type,
    createdAt: r.created_at.toISOString(),
    mandateId: r.mandate_id,
    customerRef: r.customer_ref,
    data: r.data,
  };
}

export interface EventFilter {
  /** Events after this id. Given alone, the page is oldest first: what a polling consumer reads. */
  after?: number | undefined;
  /** Events before this id. */
  before?: number | undefined;
  /** Default: `asc` when `after` is given (a polling consumer's cursor), otherwise `desc` (newest first). */
  order?: 'asc' | 'desc' | undefined;
  type?: string | undefined;
  mandateId?: number | undefined;
  limit?: number | undefined;
}

export interface EventPage {
  items: EventView[];
  /**
   * The cursor of the next page in this order, or null at the end: pass it as `after` when the
   * page is oldest first, as `before` when it is newest first.
   */
  next: string | null;
  /**
   * The cursor of the page before this one, or null at the start: pass it as `before` when the
   * page is oldest first, as `after` (with `order=desc`) when it is newest first.
   */
  previous: string | null;
}

/**
 * The event log, a page at a time, newest first unless asked otherwise; `after` alone keeps the
 * polling consumer's oldest-first order. Sequences first, so what committed is visible at once.
 * A page anchored at `after` is the `limit` events just after it, one anchored at `before` the
 * `limit` just before it, whatever order they are shown in, so `next` and `previous` walk the
 * log both ways without skipping or repeating an event.
 */
export async function listEvents(database: Database, f: EventFilter): Promise<EventPage> {
  if (f.type !== undefined && !isEventType(f.type))
    throw new ValidationError('type', 'not an event type (GET /openapi.json lists them)');
  await sequenceEvents(database);
  const limit = f.limit ?? 100;
  const order = f.order ?? (f.after !== undefined ? 'asc' : 'desc');
  const filters: SQL[] = [sql`id is not null`];
  if (f.type) filters.push(sql`type = ${f.type}`);
  if (f.mandateId !== undefined) filters.push(sql`mandate_id = ${f.mandateId}`);
  const range: SQL[] = [];
  if (f.after !== undefined) range.push(sql`id > ${f.after}`);
  if (f.before !== undefined) range.push(sql`id < ${f.before}`);
  // Read from the anchor outwards: up from `after`, down from `before`, else in the shown order.
  const up = f.after !== undefined ? true : f.before !== undefined ? false : order === 'asc';
  const rows = await database.rows<EventRow>(
    sql`select id, type, created_at, mandate_id, customer_ref, data from events
         where ${sql.join([...filters, ...range], sql` and `)}
         order by id ${up ? sql`asc` : sql`desc`} limit ${limit + 1}`,
  );
  const beyond = rows.length > limit;
  const read = rows.slice(0, limit);
  if (read.length === 0) return { items: [], next: null, previous: null };
  const ids = read.map((r) => r.id);
  const low = Math.min(...ids);
  const high = Math.max(...ids);
  // Beyond the page on the anchor's side: is there anything at all?
  const [behind] = await database.rows<{ found: boolean }>(
    sql`select exists (select 1 from events where ${sql.join(filters, sql` and `)}
         and ${up ? sql`id < ${low}` : sql`id > ${high}`}) as found`,
  );
  const older = up ? Boolean(behind?.found) : beyond;
  const newer = up ? beyond : Boolean(behind?.found);
  const items = (up === (order === 'asc') ? read : read.reverse()).map(toEventView);
  return order === 'asc'
    ? { items, next: newer ? String(high) : null, previous: older ? String(low) : null }
    : { items, next: older ? String(low) : null, previous: newer ? String(high) : null };
}

/** One event with its payload. */
export async function getEvent(database: Database, id: number): Promise<EventView> {
  await sequenceEvents(database);
  const rows = await database.rows<EventRow>(
    sql`select id, type, created_at, mandate_id, customer_ref, data from events where id = ${id}`,
  );
  if (!rows[0]) throw new NotFoundError('event', id);
  return toEventView(rows[0]);
}

/** Delete events older than the retention that no delivery still waits for. */
export async function pruneEvents(database: Database, retentionDays: number): Promise<number> {
  const rows = await database.rows(
    sql`delete from events e
         where e.created_at < now() - make_interval(days => ${retentionDays}) and e.id is not null
           and not exists (select 1 from webhook_deliveries d where d.event_id = e.id and d.state = 'pending')
        returning 1`,
  );
  await database.rows(
    sql`delete from webhook_deliveries d where d.state <> 'pending'
          and not exists (select 1 from events e where e.id = d.event_id)`,
  );
  return rows.length;
}
