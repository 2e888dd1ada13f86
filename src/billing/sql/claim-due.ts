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
 *
 * Why it leases the credential too: each answer of a chain gives the next link, so a credential's
 * charges must go out one after another. Two runs sending charges of one credential at once (two
 * mandates on one card, each claimed by another worker) both POST the same link, each get a new
 * one, and whichever commits last moves the credential, the older link as often as not. A
 * credential another run holds is skipped until that run releases it (`releaseCredentials`, at
 * its end) or its lease runs out; within a run, the send loop chains a credential's groups.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { type ClaimedCharge, type ClaimRow, dueCharges, leaseClaim, toClaimed } from '../charge/claim.ts';

/** The claim's row: the lease claim's columns, and its place in the claim order. */
export type DueClaimRow = ClaimRow & {
  encrypted_pan: string | null;
  expiry_month: number | null;
  expiry_year: number | null;
  card_holder_name: string | null;
  token_href: string | null;
  vaulted_card_id: string | null;
  scheme_reference: string | null;
  next_attempt_at: Date;
  /** next_attempt_at in PostgreSQL's own text: exact, where a Date keeps milliseconds. */
  cursor_at: string;
};

/** Claim due charges (`dueCharges`) in one round trip, in claim order, after `after` when given. */
export async function claimDueCharges(
  database: Database,
  opts: {
    asOf: Date;
    owner: string;
    /** Who holds the claimed charges' credentials: a run (worker and run), so two runs of one process are two holders. The owner unless given. */
    holder?: string | undefined;
    leaseSeconds: number;
    limit: number;
    mandateId?: number | undefined;
    /** Claim only after this point of the claim order (`claimCursor` of an earlier claim). */
    after?: ClaimCursor | null | undefined;
  },
): Promise<ClaimedCharge[]> {
  // Read before the statement: the lease the database grants ends no earlier than this.
  const leaseDeadline = Date.now() + opts.leaseSeconds * 1000;
  const holder = opts.holder ?? opts.owner;
  const rows = await database.rows<DueClaimRow>(
    leaseClaim({
      pick: sql`${dueCharges(opts)}
        and (c.next_attempt_at, c.id) > (${opts.after?.at ?? '-infinity'}::timestamptz, ${opts.after?.id ?? 0}::bigint)
        and (pcr.lease_owner is null or pcr.lease_owner = ${holder} or pcr.lease_expires_at < now())`,
      pickJoin: sql`join mandates pm on pm.id = c.mandate_id join credentials pcr on pcr.id = pm.credential_id`,
      pickColumns: sql`, pcr.id as credential_id`,
      // The credential is leased with its charges: one run sends a credential's charges at a
      // time. Its row is locked with the charge (skipped while another claim or commit holds
      // it), and a lease another claim committed meanwhile is seen when the row is re-read
      // under the lock, so two claims never both lease it. No key update: the lock the lease's
      // update takes, which the foreign-key checks of the run's own inserts do not conflict with.
      lock: sql`for update of c skip locked for no key update of pcr skip locked`,
      with: sql`, credential_lease as (
        update credentials hc set lease_owner = ${holder},
               lease_expires_at = now() + make_interval(secs => ${opts.leaseSeconds})
         where hc.id in (select credential_id from picked))`,
      order: sql`c.next_attempt_at, c.id`,
      limit: opts.limit,
      owner: opts.owner,
      leaseSeconds: opts.leaseSeconds,
      from: sql`, mandates m, customers cu, credentials cr left join links l on l.id = cr.current_link_id`,
      join: sql`and m.id = c.mandate_id and cu.id = m.customer_id and cr.id = m.credential_id`,
      returning: sql`c.id, c.mandate_id, c.cycle, c.amount, c.currency, c.state, c.attempt_count, c.fence,
              m.intent, m.entity, m.narrative, m.gateway, m.settle_mode, m.settle_percent, cu.ref as customer_ref,
              cr.id as credential_id, cr.status as credential_status, cr.instrument_type, cr.api, l.href as link_href,
              cr.encrypted_pan, cr.expiry_month, cr.expiry_year, cr.card_holder_name, cr.token_href,
              cr.vaulted_card_id, cr.scheme_reference, c.next_attempt_at, c.next_attempt_at::text as cursor_at,
              case when c.attempt_count = 0 then 0 else (select count(*) from attempts x
                where x.charge_id = c.id and x.state = 'not_sent') end::int as unsent_attempts`,
    }),
    undefined,
    // Its text is the same at every batch: prepared once per connection.
    { prepare: true },
  );
  return rows
    .map((r) => ({
      ...toClaimed(r),
      leaseDeadline,
      claimKey: { at: r.cursor_at, ms: r.next_attempt_at.getTime() },
    }))
    .sort((a, b) => a.id - b.id);
}

/** A point in the claim order (next_attempt_at, id); the time as PostgreSQL printed it, exact. */
export interface ClaimCursor {
  at: string;
  id: number;
}

/**
 * Where a claim ended in the claim order, its last charge: the next claim of the run may start
 * after it. Times compare to the millisecond here; two charges within one millisecond may come
 * out in the wrong order, which only sets the cursor a little early (the next claim skips over
 * rows that are no longer waiting), never past a waiting one.
 */
export function claimCursor(claimed: ClaimedCharge[]): ClaimCursor | null {
  let last: ClaimedCharge | undefined;
  for (const c of claimed) {
    if (!c.claimKey) continue;
    if (
      !last?.claimKey ||
      c.claimKey.ms > last.claimKey.ms ||
      (c.claimKey.ms === last.claimKey.ms && c.id > last.id)
    )
      last = c;
  }
  return last?.claimKey ? { at: last.claimKey.at, id: last.id } : null;
}
