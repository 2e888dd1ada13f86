/**
 * The end of card data's life: once a credential has a recurring link chain the number is no
 * longer needed, so it is erased, keeping only what may be shown (brand, BIN, last four).
 */
import { eq, sql } from 'drizzle-orm';
import type { Database, Executor } from '../db/client.ts';
import { credentials } from '../db/schema.ts';

/** Erase the stored PAN/DPAN of a credential. Call in the transaction that records the first successful migrateRecurring. */
export async function erasePan(tx: Executor, credentialId: number): Promise<void> {
  await tx
    .update(credentials)
    .set({ encryptedPan: null, updatedAt: sql`now()` })
    .where(eq(credentials.id, credentialId));
}

export interface LegacyStatus {
  /** Mandates that came from a legacy import. */
  mandates: number;
  /** Of those, how many still sit on a credential holding an encrypted card number. */
  withCardData: number;
  /** Of those, how many have a recurring link chain (their first migrateRecurring succeeded). */
  migrated: number;
}

export async function legacyStatus(database: Database): Promise<LegacyStatus> {
  const [row] = await database.rows<{ mandates: number; with_card_data: number; migrated: number }>(sql`
    select count(*)::int as mandates,
           count(*) filter (where c.encrypted_pan is not null)::int as with_card_data,
           count(*) filter (where c.current_link_id is not null or c.migrated_at is not null)::int as migrated
    from mandates m join credentials c on c.id = m.credential_id
    where m.legacy_id is not null`);
  return {
    mandates: row?.mandates ?? 0,
    withCardData: row?.with_card_data ?? 0,
    migrated: row?.migrated ?? 0,
  };
}
