/**
 * The claim: the statement that leases the next batch of due charges to this worker and reads
 * everything sending them needs (mandate, customer, credential, newest link) in the same round
 * trip.
 *
 * Why this shape: `FOR UPDATE SKIP LOCKED` lets several workers claim at once without waiting
 * on each other or taking the same row; the pick walks `charges_work_idx` (next_attempt_at, id,
 * partial on the waiting states) in order, so a batch costs the batch, not the book (a sort of
 * every due row was 0.84 s per claim at 1,000,000 due charges; 1.2 ms on the index). Its text is
 * the same at every batch: a named prepared statement, planned once per connection. On the
 * 20,000-mandate bench it takes about 0.05 ms of the backend per charge (26 ms per batch of 500).
 *
 * Why a cursor: within a run the pick starts after the last charge the run claimed, in index
 * order. From the start, every claim walked the index entries of every charge claimed before it
 * in the run, which stay in the partial index as dead entries until vacuum: two thirds of the
 * way through a 1,000,000-charge run (autovacuum off) one claim of 500 took 291 ms, 0.6 ms per
 * charge and growing. What the cursor steps over (a charge another worker held, a retry made due
 * meanwhile) is taken by the sweep from the start that a run makes when the cursor runs dry.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { date, num } from '../../db/values.ts';
import { type ClaimedCharge, leaseClaim, toClaimed } from '../claim.ts';
import { chargeIsWaiting, mandateReleasesCharges } from '../door.ts';

/**
 * Claim due charges in one round trip. A paused or cancelled mandate's charges are not taken:
 * a paused mandate's retry waits for its resume (and is checked against the card's ledger
 * then), a cancelled one's were cancelled with it. A completed mandate's last charges still go.
 */
export async function claimDueCharges(
  database: Database,
  opts: {
    asOf: Date;
    owner: string;
    leaseSeconds: number;
    limit: number;
    mandateId?: number | undefined;
    /** Claim only after this point of the claim order (`claimCursor` of an earlier claim). */
    after?: ClaimCursor | null | undefined;
  },
): Promise<ClaimedCharge[]> {
  const mandateFilter: SQL = opts.mandateId === undefined ? sql`` : sql`and c.mandate_id = ${opts.mandateId}`;
  // Read before the statement: the lease the database grants ends no earlier than this.
  const leaseDeadline = Date.now() + opts.leaseSeconds * 1000;
  const rows = await database.rows(
    leaseClaim({
      pick: sql`${chargeIsWaiting('c')}
        and c.next_attempt_at <= ${opts.asOf.toISOString()}::timestamptz
        and (c.next_attempt_at, c.id) > (${opts.after?.at ?? '-infinity'}::timestamptz, ${opts.after?.id ?? 0}::bigint)
        and ${mandateReleasesCharges('pm')} ${mandateFilter}`,
      pickJoin: sql`join mandates pm on pm.id = c.mandate_id`,
      order: sql`c.next_attempt_at, c.id`,
      limit: opts.limit,
      owner: opts.owner,
      leaseSeconds: opts.leaseSeconds,
      from: sql`, mandates m, customers cu, credentials cr left join links l on l.id = cr.current_link_id`,
      join: sql`and m.id = c.mandate_id and cu.id = m.customer_id and cr.id = m.credential_id`,
      returning: sql`c.id, c.mandate_id, c.cycle, c.amount, c.currency, c.state, c.attempt_count, c.fence,
              m.intent, m.entity, m.narrative, m.gateway, m.settle_mode, m.settle_percent, cu.ref as customer_ref,
              cr.id as credential_id, cr.status as credential_status, cr.instrument_type, l.href as link_href,
              cr.encrypted_pan, cr.expiry_month, cr.expiry_year, cr.card_holder_name, cr.token_href,
              cr.vaulted_card_id, cr.scheme_reference, c.next_attempt_at, c.next_attempt_at::text as cursor_at`,
    }),
    undefined,
    // Its text is the same at every batch: prepared once per connection.
    { prepare: true },
  );
  const claimed = rows.map((r) => ({ ...toClaimed(r), leaseDeadline })).sort((a, b) => a.id - b.id);
  const last = lastInOrder(rows);
  if (last) cursors.set(claimed, last);
  return claimed;
}

/** A point in the claim order (next_attempt_at, id); the time as PostgreSQL printed it, exact. */
export interface ClaimCursor {
  at: string;
  id: number;
}

const cursors = new WeakMap<ClaimedCharge[], ClaimCursor>();

/** Where a claim ended in the claim order: the next claim of the run may start after it. */
export function claimCursor(claimed: ClaimedCharge[]): ClaimCursor | null {
  return cursors.get(claimed) ?? null;
}

/**
 * The claimed row last in claim order. Times compare to the millisecond here; two rows within
 * one millisecond may come out in the wrong order, which only sets the cursor a little early
 * (the next claim skips over rows that are no longer waiting), never past a waiting one.
 */
function lastInOrder(rows: Record<string, unknown>[]): ClaimCursor | null {
  let best: { ms: number; id: number; at: string } | null = null;
  for (const r of rows) {
    const ms = date(r.next_attempt_at).getTime();
    const id = num(r.id);
    if (!best || ms > best.ms || (ms === best.ms && id > best.id)) best = { ms, id, at: String(r.cursor_at) };
  }
  return best && { at: best.at, id: best.id };
}
