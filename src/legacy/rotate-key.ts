import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import {
  assertKey,
  blobKeyId,
  decryptSecret,
  encryptSecret,
  fingerprint,
  keyId,
} from '../domain/card-crypto.ts';

/** Key rotation of the card data still held: re-encrypt under the new key, in batches. */
export interface RotateResult {
  reencrypted: number;
  /** Already under the new key (a rotation interrupted and run again). */
  alreadyNew: number;
}

/**
 * Re-encrypt every stored PAN/DPAN under `newKey`, in batches, each in one transaction, so an
 * interrupted rotation leaves every value readable with one of the two keys and can be re-run.
 * Fingerprints of card-number credentials are recomputed too, so later imports of the same
 * card still find the credential (token fingerprints are unkeyed and stay).
 */
export async function rotateKeys(
  database: Database,
  oldKey: Buffer,
  newKey: Buffer,
  opts: { batchSize?: number } = {},
): Promise<RotateResult> {
  assertKey(oldKey);
  assertKey(newKey);
  const batchSize = opts.batchSize ?? 500;
  const newId = keyId(newKey);
  let after = 0;
  const result: RotateResult = { reencrypted: 0, alreadyNew: 0 };
  for (;;) {
    const done = await database.db.transaction(async (tx) => {
      const rows = await database.rows<{
        id: number;
        encrypted_pan: string;
        fingerprint: string | null;
      }>(
        sql`select id, encrypted_pan, fingerprint from credentials
            where encrypted_pan is not null and id > ${after} order by id limit ${batchSize} for update`,
        tx,
      );
      if (rows.length === 0) return true;
      after = rows[rows.length - 1]!.id;
      const updates: { id: number; pan: string; fp: string }[] = [];
      for (const row of rows) {
        if (blobKeyId(row.encrypted_pan) === newId) {
          result.alreadyNew++;
          continue;
        }
        const plain = decryptSecret(row.encrypted_pan, [oldKey, newKey]);
        // Fingerprints read `<kind>:<hmac>`: the kind (pan, dpan) stays, the HMAC follows the key.
        const colon = row.fingerprint?.indexOf(':') ?? -1;
        const kind = colon >= 0 ? row.fingerprint!.slice(0, colon + 1) : '';
        updates.push({
          id: row.id,
          pan: encryptSecret(plain, newKey),
          fp: kind + fingerprint(plain, newKey),
        });
      }
      if (updates.length > 0) {
        const values = sql.join(
          updates.map((u) => sql`(${u.id}::bigint, ${u.pan}::text, ${u.fp}::text)`),
          sql`, `,
        );
        await database.rows(
          sql`update credentials c set encrypted_pan = v.pan, fingerprint = v.fp, updated_at = now()
              from (values ${values}) as v(id, pan, fp) where c.id = v.id`,
          tx,
        );
        result.reencrypted += updates.length;
      }
      return rows.length < batchSize;
    });
    if (done) return result;
  }
}
