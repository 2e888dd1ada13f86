import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import type { attempts, charges, credentials, mandates } from '../../db/schema.ts';
import type { RawRow } from '../../db/values.ts';
import type { Intent } from '../../gateways/types.ts';
import type { CardAttempt } from '../dunning/retry-policy.ts';
import { chargeIsWaiting, mandateReleasesCharges } from '../sql/transitions.ts';

/** A charge claimed under a lease, with what sending it needs from its mandate and credential. */
export interface ClaimedCharge {
  id: number;
  mandateId: number;
  cycle: number;
  amount: number;
  currency: string;
  state: string;
  attemptCount: number;
  /** Of its attempts, those that never left (`not_sent`): they make the next one no retry. */
  unsentAttempts: number;
  fence: number;
  intent: Intent;
  entity: string;
  narrative: string;
  gateway: string;
  settleMode: string;
  settlePercent: number | null;
  customerRef: string;
  credentialId: number;
  credentialStatus: string;
  instrumentType: string;
  /** Worldpay's card API the credential is charged through: `v6` (links, migrateRecurring) or `v7` (MITs). */
  api: string;
  linkHref: string | null;
  encryptedPan: string | null;
  expiryMonth: number | null;
  expiryYear: number | null;
  cardHolderName: string | null;
  tokenHref: string | null;
  vaultedCardId: string | null;
  schemeReference: string | null;
  /** Wall-clock ms by which the lease this claim took has surely expired (claims only). */
  leaseDeadline?: number;
  /** Its next_attempt_at as PostgreSQL printed it (exact) and in ms (claims only): its place in the claim order. */
  claimKey?: { at: string; ms: number };
}

/**
 * The one lease-claim statement, which the charge loop, reconciliation and settlement resumption
 * fill in: a CTE picks rows with FOR UPDATE SKIP LOCKED (two workers never wait on each other
 * and never take the same row), the UPDATE takes a lease and bumps the fencing token, and
 * RETURNING reads whatever else the work needs through the FROM list, so no second query is
 * needed. Leases are in wall-clock time (process liveness); due times are business time.
 */
export function leaseClaim(opts: {
  /** The `where` of the pick, on `charges c` (and whatever `pickJoin` adds). */
  pick: SQL;
  pickJoin?: SQL;
  /** Further columns of `picked`, as `, expr as name`. */
  pickColumns?: SQL;
  /** The pick's row locks, each skipped when another holds it (`for update of c skip locked` unless given). */
  lock?: SQL;
  /** Further CTEs after `picked`, as `, name as (...)` (a lease on what the pick also locked). */
  with?: SQL;
  order: SQL;
  limit: number;
  owner: string;
  leaseSeconds: number;
  /** Further tables for RETURNING, as `, table alias ...` and their join conditions. */
  from: SQL;
  join: SQL;
  returning: SQL;
}): SQL {
  return sql`
    with picked as (
      -- lease_was: when the previous holder's lease ran out (a reconciler's bound on its send).
      select c.id, c.lease_expires_at as lease_was ${opts.pickColumns ?? sql``} from charges c ${opts.pickJoin ?? sql``}
      where ${opts.pick}
        and (c.lease_expires_at is null or c.lease_expires_at < now())
      order by ${opts.order}
      limit ${opts.limit}
      ${opts.lock ?? sql`for update of c skip locked`}
    )${opts.with ?? sql``}
    update charges c
       set lease_owner = ${opts.owner},
           lease_expires_at = now() + make_interval(secs => ${opts.leaseSeconds}),
           fence = c.fence + 1
      from picked ${opts.from}
     where c.id = picked.id ${opts.join}
    returning ${opts.returning}`;
}

/**
 * The charges due at an as-of, on `charges c` joined to `mandates pm`: waiting, due, their
 * mandate releasing them. A paused or cancelled mandate's charges are not due: a paused
 * mandate's retry waits for its resume (and is checked against the card's ledger then), a
 * cancelled one's were cancelled with it. A completed mandate's last charges still go. The
 * claim (`sql/claim-due.ts`) locks what this matches; `countDueCharges` counts it.
 */
export function dueCharges(opts: { asOf: Date; mandateId?: number | undefined }): SQL {
  const mandateFilter: SQL = opts.mandateId === undefined ? sql`` : sql`and c.mandate_id = ${opts.mandateId}`;
  return sql`${chargeIsWaiting('c')} and c.next_attempt_at <= ${opts.asOf.toISOString()}::timestamptz
      and ${mandateReleasesCharges('pm')} ${mandateFilter}`;
}

/**
 * How many charges `claimDueCharges` would take for this as-of (leased or not): a run's
 * total, known before it sends anything, for its progress bar.
 */
export async function countDueCharges(
  database: Database,
  opts: { asOf: Date; mandateId?: number | undefined },
): Promise<number> {
  const rows = await database.rows<{ n: number }>(
    sql`select count(*)::int as n from charges c join mandates pm on pm.id = c.mandate_id where ${dueCharges(opts)}`,
  );
  return rows[0]?.n ?? 0;
}

/**
 * What every lease claim returns (`leaseClaim`'s `returning`) of a charge, its mandate, customer
 * and credential; the card columns only where a claim reads them (the charge loop's).
 */
export type ClaimRow = Pick<
  RawRow<typeof charges>,
  'id' | 'mandate_id' | 'cycle' | 'amount' | 'currency' | 'state' | 'attempt_count' | 'fence'
> &
  Pick<RawRow<typeof mandates>, 'entity' | 'narrative' | 'gateway' | 'settle_mode' | 'settle_percent'> &
  Pick<RawRow<typeof credentials>, 'instrument_type'> &
  Partial<Pick<RawRow<typeof credentials>, 'api'>> & {
    /** What the mandate was created with (`createMandate` takes only these). */
    intent: Intent;
    customer_ref: string;
    credential_id: number;
    credential_status: string;
    link_href: string | null;
    /** The charge loop's claim only. */
    unsent_attempts?: number;
  } & Partial<
    Pick<
      RawRow<typeof credentials>,
      | 'encrypted_pan'
      | 'expiry_month'
      | 'expiry_year'
      | 'card_holder_name'
      | 'token_href'
      | 'vaulted_card_id'
      | 'scheme_reference'
    >
  >;

/** A claimed row; credential columns a query did not return (card data...) read as null. */
export function toClaimed(r: ClaimRow): ClaimedCharge {
  return {
    id: r.id,
    mandateId: r.mandate_id,
    cycle: r.cycle,
    amount: r.amount,
    currency: r.currency,
    state: r.state,
    attemptCount: r.attempt_count,
    unsentAttempts: r.unsent_attempts ?? 0,
    fence: r.fence,
    intent: r.intent,
    entity: r.entity,
    narrative: r.narrative,
    gateway: r.gateway,
    settleMode: r.settle_mode,
    settlePercent: r.settle_percent,
    customerRef: r.customer_ref,
    credentialId: r.credential_id,
    credentialStatus: r.credential_status,
    instrumentType: r.instrument_type,
    api: r.api ?? 'v6',
    linkHref: r.link_href,
    encryptedPan: r.encrypted_pan ?? null,
    expiryMonth: r.expiry_month ?? null,
    expiryYear: r.expiry_year ?? null,
    cardHolderName: r.card_holder_name ?? null,
    tokenHref: r.token_href ?? null,
    vaultedCardId: r.vaulted_card_id ?? null,
    schemeReference: r.scheme_reference ?? null,
  };
}

/**
 * What the retry ledger needs of these credentials' last 30 days (business time): reattempts
 * and refusals, across all mandates. First attempts that went through are left out, so a
 * healthy card costs this query nothing however many mandates share it; so are attempts that
 * never reached the issuer (`error`, `not_sent`): the schemes count what the issuer saw.
 */
export async function loadCardHistory(
  database: Database,
  credentialIds: number[],
  asOf: Date,
): Promise<Map<number, CardAttempt[]>> {
  const out = new Map<number, CardAttempt[]>();
  if (credentialIds.length === 0) return out;
  const since = new Date(asOf.getTime() - 31 * 86_400_000);
  // An attempt is a reattempt when one of its charge's earlier attempts left the process: those
  // that never did (`not_sent`) are not counted before it.
  const rows = await database.rows<
    Pick<RawRow<typeof attempts>, 'credential_id' | 'charge_id' | 'attempted_at' | 'state'> & {
      sent_no: number;
    }
  >(sql`
    select credential_id, charge_id, attempted_at, state, attempt_no - (select count(*) from attempts x
             where x.charge_id = a.charge_id and x.attempt_no < a.attempt_no and x.state = 'not_sent')::int as sent_no
      from attempts a
    where credential_id in (${sql.join(
      credentialIds.map((id) => sql`${id}`),
      sql`, `,
    )}) and attempted_at > ${since.toISOString()}::timestamptz
      and (attempt_no > 1 or state in ('refused', 'not_found'))
      -- never reached the issuer: our own error, the gateway refusing the request, never sent
      and state not in ('error', 'not_sent')
    order by attempted_at`);
  for (const r of rows) {
    if (r.sent_no <= 1 && r.state !== 'refused' && r.state !== 'not_found') continue;
    const list = out.get(r.credential_id) ?? [];
    list.push({ at: r.attempted_at, chargeId: r.charge_id, first: r.sent_no === 1, state: r.state });
    out.set(r.credential_id, list);
  }
  return out;
}

/** This charge's dunning so far: when it was first refused, and how many attempts ended how. */
export async function chargeDunning(
  database: Database,
  chargeId: number,
): Promise<{ firstRefusedAt: Date | null; refused: number; notFound: number }> {
  const rows = await database.rows<{ at: Date | null; refused: number; not_found: number }>(
    sql`select min(attempted_at) filter (where state in ('refused', 'not_found')) as at,
               count(*) filter (where state = 'refused')::int as refused,
               count(*) filter (where state = 'not_found')::int as not_found
          from attempts where charge_id = ${chargeId}`,
  );
  return {
    firstRefusedAt: rows[0]?.at ?? null,
    refused: rows[0]?.refused ?? 0,
    notFound: rows[0]?.not_found ?? 0,
  };
}
