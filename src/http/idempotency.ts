import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import { InvalidRequestError } from '../errors.ts';
import { IdempotencyInProgressError, IdempotencyMismatchError } from './errors.ts';

export interface StoredResponse {
  status: number;
  body: unknown;
  /** Headers the answer goes out with; never stored (only a 5xx has any, and it is not stored). */
  headers?: Record<string, string>;
}

/** Canonical JSON (sorted keys) so that the same body sent with keys in another order matches. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v ?? null);
}

export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${canonical(body)}`)
    .digest('hex');
}

/**
 * Idempotency-Key handling for mutating routes (POST, PATCH, DELETE). The key is claimed with an
 * insert before the work is done, so two concurrent requests with one key cannot both do it; the
 * response is stored after. A replay of the same request gets the stored response; the same key
 * on a different request is a 422; a key whose first request is still running is a 409. A 5xx is
 * not stored (the key is released) so the client can retry it.
 *
 * The claim carries a lease (IDEMPOTENCY_LEASE_SECONDS). A process killed mid-request can
 * neither store a response nor release the key; once its lease has run out, a retry of the same
 * request takes the key over and runs again. That is safe because every operation behind these
 * routes is idempotent by its own reference (a charge by mandate and cycle, an action by its
 * reference), so a second run finds what the first one did instead of doing it twice.
 */
export const IDEMPOTENCY_LEASE_SECONDS = 60;

export async function withIdempotency(
  database: Database,
  key: string | undefined,
  req: { method: string; path: string; body: unknown },
  run: () => Promise<StoredResponse>,
): Promise<StoredResponse & { replayed: boolean }> {
  if (key === undefined) return { ...(await run()), replayed: false };
  if (key.length === 0 || key.length > 255)
    throw new InvalidRequestError('Idempotency-Key: must be 1-255 characters');
  const hash = requestHash(req.method, req.path, req.body);
  const lease = sql`now() + make_interval(secs => ${IDEMPOTENCY_LEASE_SECONDS})`;
  const claimed = await database.rows<{
    key: string;
  }>(sql`insert into idempotency_keys (key, method, path, request_hash, locked_until)
    values (${key}, ${req.method}, ${req.path}, ${hash}, ${lease}) on conflict (key) do nothing returning key`);
  // A first request that died without an answer: the same request takes the key over.
  const takenOver =
    claimed.length > 0
      ? []
      : await database.rows<{ key: string }>(sql`update idempotency_keys set locked_until = ${lease}
          where key = ${key} and request_hash = ${hash} and status_code is null
            and (locked_until is null or locked_until < now()) returning key`);
  if (claimed.length === 0 && takenOver.length === 0) {
    // response is jsonb: both drivers give it back parsed, the body as it was stored.
    const rows = await database.rows<{ request_hash: string; status_code: number | null; response: unknown }>(
      sql`select request_hash, status_code, response from idempotency_keys where key = ${key}`,
    );
    const row = rows[0];
    if (!row) return withIdempotency(database, key, req, run); // released meanwhile
    if (row.request_hash !== hash)
      throw new IdempotencyMismatchError('Idempotency-Key was already used for a different request');
    if (row.status_code === null)
      throw new IdempotencyInProgressError('a request with this Idempotency-Key is still in progress');
    return { status: row.status_code, body: row.response, replayed: true };
  }
  let out: StoredResponse;
  try {
    out = await run();
  } catch (err) {
    await database.rows(sql`delete from idempotency_keys where key = ${key}`);
    throw err;
  }
  if (out.status >= 500) {
    await database.rows(sql`delete from idempotency_keys where key = ${key}`);
  } else {
    await database.rows(sql`update idempotency_keys set status_code = ${out.status},
      response = ${JSON.stringify(out.body)}::jsonb where key = ${key}`);
  }
  return { ...out, replayed: false };
}

/** Keys are kept for a day (clients retry within minutes); the daemon prunes older ones each tick. */
export async function pruneIdempotencyKeys(database: Database, olderThanHours = 24): Promise<number> {
  const rows = await database.rows<{ key: string }>(sql`delete from idempotency_keys
    where created_at < now() - make_interval(hours => ${olderThanHours}) returning key`);
  return rows.length;
}
