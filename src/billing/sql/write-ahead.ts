/**
 * Write-ahead: the statement that makes a batch of claimed charges sendable. Every attempt row
 * (state `sending`, with its deterministic reference) and every charge's move to `attempting`
 * commit here, before any request of the batch goes out.
 *
 * Why this shape: one statement per batch (500 charges by default), not per charge, so the
 * commit and its WAL flush are shared. The batch is bound as one jsonb array (why JSON and not
 * a VALUES list: src/billing/sql/authorized-outcomes.ts); on the 20,000-mandate bench it takes
 * about 0.2 ms of the backend per charge (pg_stat_statements: 88 ms per batch of 500), the
 * cheapest statement of the hot path per charge after the claim.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { HOLDING_MANDATE_STATUSES } from '../../domain/lifecycle.ts';
import type { ClaimedCharge } from '../charge/claim.ts';
import type { PlannedAttempt } from '../charge/outcome.ts';
import { chargeMayBecome, mandateReleasesCharges } from './transitions.ts';

/** The write-ahead's row: an attempt it wrote (a charge that lost its fence has none). */
interface WrittenAhead {
  charge_id: number;
  attempt_id: number;
  attempt_no: number;
}

/**
 * Write ahead, for a whole batch in one statement: the attempt rows (state `sending`, with
 * their deterministic references) and the charges' move to `attempting` commit before any
 * request goes out. A crash after this leaves rows that reconciliation resolves by reference.
 * The unique (charge, attempt_no) and transaction_reference constraints make a second worker's
 * identical write fail instead of producing a second request.
 */
export async function writeAhead(
  database: Database,
  items: {
    charge: ClaimedCharge;
    reference: string;
    kind: PlannedAttempt['kind'];
    linkHref: string | null;
  }[],
  asOf: Date,
): Promise<PlannedAttempt[]> {
  if (items.length === 0) return [];
  const payload = JSON.stringify(
    items.map((it) => ({
      charge_id: it.charge.id,
      credential_id: it.charge.credentialId,
      attempt_no: it.charge.attemptCount + 1,
      transaction_reference: it.reference,
      kind: it.kind,
      link_href: it.linkHref,
      fence: it.charge.fence,
      attempted_at: asOf.toISOString(),
    })),
  );
  // The charge moves first, guarded by its fencing token and the table: an operator's pause or
  // cancel bumps the token, and an UPDATE that waited on that row re-checks the token after the
  // operator's commit, so a charge taken away between claim and write-ahead is never written
  // ahead and never sent. Only then is the attempt row inserted.
  const rows = await database.rows<WrittenAhead>(
    sql`
    with v as (
      select * from jsonb_to_recordset(${payload}::jsonb) as v(charge_id bigint, credential_id bigint,
        attempt_no int, transaction_reference text, kind text, link_href text, fence bigint, attempted_at timestamptz)
    ), cr as (
      -- The card must still be usable, read under a share lock: a refusal that blocks it takes
      -- the row first, so an attempt is written ahead either before that refusal's commit
      -- began, or after it, when it sees the card blocked and is not written at all. In id order,
      -- as the outcome batch takes them (sql/authorized-outcomes.ts): neither waits in a cycle.
      select id from credentials where id in (select credential_id from v) and status = 'active' order by id for share
    ), ch as (
      update charges c set state = 'attempting', attempt_count = v.attempt_no, updated_at = now()
        from v join cr on cr.id = v.credential_id, charges o, mandates m
       where c.id = v.charge_id and o.id = c.id and c.fence = v.fence and ${chargeMayBecome('attempting', 'c')}
         and m.id = c.mandate_id and ${mandateReleasesCharges('m')}
      returning c.id, o.state as from_state
    ), ins as (
      insert into attempts (charge_id, credential_id, attempt_no, transaction_reference, kind, link_href, fence, attempted_at)
      select v.* from v join ch on ch.id = v.charge_id
      on conflict do nothing
      returning id, charge_id, attempt_no, transaction_reference
    ), aud as (
      insert into audit_log (entity_type, entity_id, from_state, to_state, reason)
      select 'charge', ch.id, ch.from_state, 'attempting', 'attempt ' || ins.transaction_reference || ' written ahead'
        from ch join ins on ins.charge_id = ch.id
    )
    select ins.charge_id, ins.id as attempt_id, ins.attempt_no from ins`,
    undefined,
    { prepare: true },
  );
  const byCharge = new Map(rows.map((r) => [r.charge_id, r]));
  const planned: PlannedAttempt[] = [];
  for (const it of items) {
    const r = byCharge.get(it.charge.id);
    if (!r) continue; // lost the fence or someone else wrote this attempt: not ours to send
    planned.push({
      charge: it.charge,
      attemptId: r.attempt_id,
      attemptNo: r.attempt_no,
      reference: it.reference,
      kind: it.kind,
      linkHref: it.linkHref,
      asOf,
      chargeState: 'attempting',
    });
  }
  return planned;
}

/** What a launch found for an attempt: launched (send it now), held by its mandate, or no longer ours. */
export type Launch = 'launched' | { held: string } | 'fenced';

/** An attempt to launch, under the fence its charge was claimed with. */
export interface LaunchItem {
  attemptId: number;
  chargeId: number;
  fence: number;
}

/**
 * The launch, the last statement before an attempt's request goes out: it records that the
 * request is about to leave (`launched_at`), so recovery can tell an attempt that never left its
 * process (no launch: `not_sent`, counted nowhere) from one that may have (asked by reference).
 * It also reads the mandate: one paused or cancelled since the write-ahead is not launched, and
 * the sender drops its attempt instead of sending it (src/billing/charge/holds.ts).
 *
 * The charge is read `for share` under the claim's fence: a reconciler taking the charge over
 * (its claim bumps the fence) waits for a launch in progress and then sees it, or goes first,
 * and then this launch finds the fence moved and nothing is sent. Batched like the outcome
 * commits (one statement for whatever arrives while one runs), bound as one jsonb array.
 */
export async function launchAttempts(database: Database, items: LaunchItem[]): Promise<Launch[]> {
  const payload = JSON.stringify(
    items.map((it) => ({ attempt_id: it.attemptId, charge_id: it.chargeId, fence: it.fence })),
  );
  const rows = await database.rows<{ attempt_id: number; launched: boolean; status: string | null }>(
    sql`
    with v as (
      select * from jsonb_to_recordset(${payload}::jsonb) as v(attempt_id bigint, charge_id bigint, fence bigint)
    ), ours as (
      select c.id, c.mandate_id from charges c join v on v.charge_id = c.id
       where c.fence = v.fence and c.state = 'attempting' order by c.id for share of c
    ), up as (
      update attempts a set launched_at = now()
        from v join ours on ours.id = v.charge_id join mandates m on m.id = ours.mandate_id
       where a.id = v.attempt_id and a.state = 'sending' and ${mandateReleasesCharges('m')}
      returning a.id
    )
    select v.attempt_id, (up.id is not null) as launched, m.status
      from v left join ours on ours.id = v.charge_id left join mandates m on m.id = ours.mandate_id
      left join up on up.id = v.attempt_id`,
    undefined,
    { prepare: true },
  );
  const byAttempt = new Map(rows.map((r) => [r.attempt_id, r]));
  return items.map((it) => {
    const r = byAttempt.get(it.attemptId);
    if (r?.launched) return 'launched';
    if (r?.status && (HOLDING_MANDATE_STATUSES as readonly string[]).includes(r.status))
      return { held: r.status };
    return 'fenced';
  });
}
