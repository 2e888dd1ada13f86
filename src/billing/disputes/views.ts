import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { type DisputeRow, disputesOf } from '../sql/disputes.ts';

/** A charge's dispute as the API, the CLI and the events show it. */
export interface DisputeView {
  id: number;
  chargeId: number;
  /** `information_requested` (open: the issuer asked, the funds are held) or `charged_back`. */
  status: string;
  /** Minor units, in `currency`. */
  amount: number;
  currency: string;
  reasonCode: string | null;
  reason: string | null;
  /** When the dispute was opened, by Worldpay's event timestamp. */
  disputedAt: string;
  chargedBackAt: string | null;
  /** When rebill received the first event of it. */
  receivedAt: string;
  /** What the chargeback did to the card's mandates (REBILL_CHARGEBACK_POLICY); null while open. */
  policy: string | null;
}

export function toDisputeView(r: DisputeRow): DisputeView {
  return {
    id: r.id,
    chargeId: r.charge_id,
    status: r.status,
    amount: r.amount,
    currency: r.currency,
    reasonCode: r.reason_code,
    reason: r.reason,
    disputedAt: r.disputed_at.toISOString(),
    chargedBackAt: r.charged_back_at?.toISOString() ?? null,
    receivedAt: r.created_at.toISOString(),
    policy: r.policy,
  };
}

/** The disputes of a charge (at most one today; a list, so a second one would fit). */
export async function chargeDisputes(database: Database, chargeId: number): Promise<DisputeView[]> {
  return (await disputesOf(database, [chargeId])).map(toDisputeView);
}

export interface DisputeFilter {
  /** `information_requested` or `charged_back`. */
  status?: string | undefined;
  /** Only the disputes of this mandate's charges. */
  mandateId?: number | undefined;
  limit?: number | undefined;
  /** Keyset pagination: disputes with id > after. */
  after?: number | undefined;
}

/** Every charge's disputes, oldest first: what an operator goes through after a chargeback. */
export async function listDisputes(
  database: Database,
  f: DisputeFilter = {},
): Promise<{ items: DisputeView[]; next: number | null }> {
  const where: SQL[] = [sql`true`];
  if (f.status) where.push(sql`d.status = ${f.status}`);
  if (f.mandateId !== undefined)
    where.push(sql`d.charge_id in (select id from charges where mandate_id = ${f.mandateId})`);
  if (f.after !== undefined) where.push(sql`d.id > ${f.after}`);
  const limit = Math.min(Math.max(f.limit ?? 50, 1), 1000);
  const rows = await database.rows<DisputeRow>(
    sql`select d.* from disputes d where ${sql.join(where, sql` and `)} order by d.id limit ${limit + 1}`,
  );
  const items = rows.slice(0, limit).map(toDisputeView);
  return { items, next: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
}
