/**
 * Worldpay's Account Updater, applied: the one write of an `updatedPaymentInstrument` to the
 * credential it charged (new expiry, new card number encrypted with its last four, BIN and
 * brand, network token applied), with its audit row and `credential.updated` event, inside the
 * transaction that commits the attempt's outcome, so the update and the answer it came in
 * commit together or not at all.
 */
import { sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import { appendEvent } from '../../events/append.ts';

/** What an answer's updater said, ready to write (a new card number already encrypted). */
export interface CredentialUpdate {
  credentialId: number;
  /** The mandate whose charge brought the update (its event carries the credential's view). */
  mandateId: number;
  chargeId: number;
  /** The transaction reference of the attempt whose answer carried it. */
  reference: string;
  /** `accountUpdaterMessage` as Worldpay wrote it. */
  message: string;
  expiryMonth?: number | undefined;
  expiryYear?: number | undefined;
  /** The new card number, encrypted as legacy cards are (card/plain credentials only). */
  encryptedPan?: string | undefined;
  /** The new card's keyed hash (`pan:...`), kept unless another credential of the customer has it. */
  fingerprint?: string | undefined;
  lastFour?: string | undefined;
  bin?: string | undefined;
  brand?: string | undefined;
  appliedNetworkToken?: boolean | undefined;
}

/** Names of what an update changes, for the audit reason and the event (never the values of card data). */
export function changedFields(u: CredentialUpdate): string[] {
  const out: string[] = [];
  if (u.expiryMonth !== undefined && u.expiryYear !== undefined) out.push('expiry');
  if (u.encryptedPan !== undefined) out.push('cardNumber');
  if (u.lastFour !== undefined) out.push('lastFour');
  if (u.bin !== undefined) out.push('bin');
  if (u.brand !== undefined) out.push('brand');
  if (u.appliedNetworkToken) out.push('networkToken');
  return out;
}

/**
 * Apply one update in the caller's transaction: the credential's columns (what the answer did
 * not name is kept), an audit row on the credential (its status unchanged) and a
 * `credential.updated` event with the mandate's view of the credential after it.
 */
export async function applyCredentialUpdate(
  database: Database,
  tx: Executor,
  u: CredentialUpdate,
): Promise<void> {
  const changed = changedFields(u);
  const expiry =
    u.expiryMonth !== undefined && u.expiryYear !== undefined
      ? `; expiry now ${String(u.expiryMonth).padStart(2, '0')}/${u.expiryYear}`
      : '';
  const reason = `Account Updater (${u.reference}): ${u.message}${expiry}${
    u.encryptedPan !== undefined ? `; card number changed (ends ${u.lastFour ?? '?'})` : ''
  }${u.appliedNetworkToken ? '; network token applied' : ''}`;
  const rows = await database.rows<{ status: string }>(
    sql`update credentials cr set
          expiry_month = coalesce(${u.expiryMonth ?? null}::smallint, cr.expiry_month),
          expiry_year = coalesce(${u.expiryYear ?? null}::smallint, cr.expiry_year),
          encrypted_pan = coalesce(${u.encryptedPan ?? null}::text, cr.encrypted_pan),
          last_four = coalesce(${u.lastFour ?? null}::text, cr.last_four),
          bin = coalesce(${u.bin ?? null}::text, cr.bin),
          brand = coalesce(${u.brand ?? null}::text, cr.brand),
          fingerprint = case when ${u.fingerprint ?? null}::text is not null and not exists (
              select 1 from credentials o where o.customer_id = cr.customer_id and o.fingerprint = ${u.fingerprint ?? null}::text)
            then ${u.fingerprint ?? null}::text else cr.fingerprint end,
          updated_at = now()
        where cr.id = ${u.credentialId}
        returning cr.status`,
    tx,
  );
  const status = rows[0]?.status;
  if (status === undefined) return;
  await database.rows(
    sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason, actor, detail)
        values ('credential', ${u.credentialId}, ${status}, ${status}, ${reason}, 'system',
                ${JSON.stringify({ accountUpdaterMessage: u.message, changed, chargeId: u.chargeId })}::jsonb)`,
    tx,
  );
  await appendEvent(database, tx, {
    type: 'credential.updated',
    mandateId: u.mandateId,
    data: sql`jsonb_build_object('credential', rebill_mandate_json(${u.mandateId}::bigint)->'credential',
      'mandateId', ${u.mandateId}::bigint, 'reason', ${reason}::text,
      'accountUpdater', jsonb_build_object('message', ${u.message}::text, 'changed', ${JSON.stringify(changed)}::jsonb,
        'chargeId', ${u.chargeId}::bigint, 'transactionReference', ${u.reference}::text))`,
  });
}
