/**
 * Import of legacy card-on-file mandates. Rows stream in, are validated one by one, and good
 * rows are written in batches: one transaction per batch with multi-row inserts (a handful of
 * statements per thousand rows). Everything a row needs is checked before the batch is
 * written, so a batch normally commits whole; if the database still refuses it, the batch is
 * rolled back and retried one row per transaction, so only the row at fault is rejected.
 */
import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { auditCreatedRows } from '../billing/sql/audit.ts';
import type { Database, Executor } from '../db/client.ts';
import { encryptSecret, fingerprint, v7Fingerprint } from '../domain/card-crypto.ts';
import { ConflictError } from '../errors.ts';
import type { SourceRecord } from './reader.ts';
import { createRowValidator, type LegacyApi, type RowError, type ValidRow } from './rows.ts';

export interface ImportOptions {
  /** Encryption key for PANs/DPANs. Without it rows carrying one are rejected (field card_number/dpan). */
  key?: Buffer | undefined;
  dryRun?: boolean;
  /** Pinned "now": expiry checks, and the anchor of unscheduled mandates. */
  now: Date;
  batchSize?: number;
  /** Called with the number of records read so far. */
  onProgress?: (read: number) => void;
  /** REBILL_MAX_AMOUNT (default 100,000 major units). */
  maxAmountMajor?: number | undefined;
  /**
   * Worldpay's card API the credentials are charged through (credentials.api), default v6. v7
   * rows carry the first payment's scheme reference, and their card data is kept: v7 sends it
   * on every charge (nothing erases it after a first charge, as v6's migrateRecurring does).
   */
  api?: LegacyApi | undefined;
}

export interface ImportReport {
  /** Records read (header excluded). */
  read: number;
  imported: number;
  unchanged: number;
  /** Rows whose legacy_id exists with different content: reported, never applied. */
  changed: { line: number; legacyId: string }[];
  /** Every problem found; a row may have several. */
  rejected: RowError[];
  /** Rows rejected (each row once). */
  rejectedRows: number;
  dryRun: boolean;
}

/** A legacy id was written by another import between the lookup and the insert. */
class ConcurrentImportError extends ConflictError {
  static override readonly type: string = 'ConcurrentImportError';
  constructor() {
    super('a legacy id was imported by another run at the same time');
  }
}

/**
 * A v7 row names a card its customer already has a credential for, with another scheme
 * reference: sharing the credential would drop the row's reference silently.
 */
class SchemeReferenceConflict extends ConflictError {
  static override readonly type: string = 'SchemeReferenceConflict';
  constructor(readonly line: number) {
    super(`line ${line}: the customer's credential for this card holds another scheme reference`);
  }
}

/**
 * Why the database refused a row, when the refusal is about the data (SQLSTATE class 22 data
 * exception, 23 integrity violation, P0 raised by a trigger), or null for any other failure.
 */
function rowFault(err: unknown): { field: string; reason: string } | null {
  if (err instanceof ConcurrentImportError)
    return { field: '(row)', reason: 'imported by another import running at the same time' };
  if (err instanceof SchemeReferenceConflict)
    return {
      field: 'scheme_reference',
      reason:
        "differs from the scheme reference of this customer's credential for the same card (imported before, or on an earlier line)",
    };
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const code =
    typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : null;
  return code !== null && /^(22|23|P0)[0-9A-Z]{3}$/.test(code)
    ? { field: '(row)', reason: `the database refused the row (${code})` }
    : null;
}

interface Prepared {
  row: ValidRow;
  /** Identity of the card/token within the customer, never the number itself. */
  fingerprint: string;
  /** Hash of everything else in the row (see legacyHash). */
  hash: string;
}

/**
 * The row's content hash for idempotency. It covers every normalised field except the card
 * number, whose identity is compared through the credential's fingerprint instead: keeping
 * the keyed fingerprint out of this hash lets a key rotation (which re-fingerprints stored
 * cards) leave re-imports of the same file `unchanged`.
 */
export function legacyHash(row: ValidRow): string {
  const canonical = JSON.stringify([
    row.customerRef,
    row.intent,
    row.amount,
    row.currency,
    row.interval ? `${row.interval.count} ${row.interval.unit}` : null,
    row.nextChargeAt ? row.nextChargeAt.toISOString() : null,
    row.timezone,
    row.instalmentsTotal,
    row.instalmentsPaid,
    row.entity,
    row.narrative,
    row.instrumentType,
    row.pan ? row.pan.slice(0, 6) : null,
    row.pan ? row.pan.slice(-4) : null,
    row.expiryMonth,
    row.expiryYear,
    row.cardHolderName,
    row.tokenHref,
    row.schemeReference,
  ]);
  return `v1:${createHash('sha256').update(canonical).digest('base64url')}`;
}

/**
 * Fingerprint of the row's instrument: keyed HMAC for numbers, a plain hash for a token href
 * (stored in clear anyway). v7 rows are fingerprinted as the API's v7 credentials are, so a
 * card imported and the same card given through the API are one credential.
 */
export function instrumentFingerprint(row: ValidRow, key: Buffer | undefined, api: LegacyApi = 'v6'): string {
  if (api === 'v7') {
    if (row.tokenHref !== null) return v7Fingerprint('token', row.tokenHref, key);
    if (row.pan === null) throw new Error('a v7 card row has no number');
    return v7Fingerprint(row.instrumentType === 'card/plain' ? 'card' : 'networkToken', row.pan, key);
  }
  if (row.tokenHref !== null) return `tok:${createHash('sha256').update(row.tokenHref).digest('base64url')}`;
  if (!key || row.pan === null) throw new Error('a card number needs an encryption key');
  const kind = row.instrumentType === 'card/plain' ? 'pan' : 'dpan';
  return `${kind}:${fingerprint(row.pan, key)}`;
}

export async function importLegacy(
  database: Database,
  source: AsyncIterable<SourceRecord>,
  opts: ImportOptions,
): Promise<ImportReport> {
  const dryRun = opts.dryRun ?? false;
  const batchSize = opts.batchSize ?? 1000;
  const validate = createRowValidator({
    now: opts.now,
    canStoreCardData: opts.key !== undefined,
    maxAmountMajor: opts.maxAmountMajor,
    api: opts.api ?? 'v6',
  });
  const report: ImportReport = {
    read: 0,
    imported: 0,
    unchanged: 0,
    changed: [],
    rejected: [],
    rejectedRows: 0,
    dryRun,
  };
  const reject = (errors: RowError[]) => {
    report.rejected.push(...errors);
    report.rejectedRows++;
  };

  let batch: Prepared[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const current = batch;
    batch = [];
    const fresh = await classify(database, current, report);
    if (fresh.length === 0) return;
    if (dryRun) {
      report.imported += fresh.length;
      return;
    }
    try {
      report.imported += await database.db.transaction((tx) => writeRows(database, tx, fresh, opts));
    } catch (err) {
      // A lost connection or the like fails the import; only a refusal about the data is a
      // row's fault. The batch rolled back whole: find the row at fault one per transaction.
      if (rowFault(err) === null) throw err;
      for (const one of fresh) {
        try {
          report.imported += await database.db.transaction((tx) => writeRows(database, tx, [one], opts));
        } catch (e) {
          const fault = rowFault(e);
          if (fault === null) throw e;
          reject([{ line: one.row.line, ...fault }]);
        }
      }
    }
  };

  for await (const item of source) {
    report.read++;
    if (item.error !== undefined) reject([{ line: item.line, field: '(record)', reason: item.error }]);
    else {
      const result = validate(item.line, item.record);
      if (!result.ok) reject(result.errors);
      else {
        const row = result.row;
        batch.push({
          row,
          fingerprint: instrumentFingerprint(row, opts.key, opts.api),
          hash: legacyHash(row),
        });
        if (batch.length >= batchSize) await flush();
      }
    }
    opts.onProgress?.(report.read);
  }
  await flush();
  report.rejected.sort((a, b) => a.line - b.line);
  return report;
}

/*
 * The batch goes to the database as one JSON parameter per statement, unpacked there with
 * jsonb_to_recordset: a thousand rows of twenty columns as bound parameters cost more to
 * build and to parse than to insert, and a JSON text parameter works the same on PostgreSQL
 * and PGlite. Each statement is a CTE that inserts what is new and reads what already
 * exists, so a batch is three round trips plus the lookup.
 */

/** Split a batch into rows already imported (unchanged or changed, counted here) and new ones. */
async function classify(database: Database, batch: Prepared[], report: ImportReport): Promise<Prepared[]> {
  const ids = JSON.stringify(batch.map((p) => p.row.legacyId));
  const existing = await database.rows<{
    legacy_id: string;
    legacy_hash: string | null;
    fingerprint: string | null;
  }>(
    sql`select m.legacy_id, m.legacy_hash, c.fingerprint
        from mandates m join credentials c on c.id = m.credential_id
        where m.legacy_id in (select jsonb_array_elements_text(${ids}::jsonb))`,
  );
  const byId = new Map(existing.map((e) => [e.legacy_id, e]));
  const fresh: Prepared[] = [];
  for (const p of batch) {
    const found = byId.get(p.row.legacyId);
    if (!found) fresh.push(p);
    else if (found.legacy_hash === p.hash && found.fingerprint === p.fingerprint) report.unchanged++;
    else report.changed.push({ line: p.row.line, legacyId: p.row.legacyId });
  }
  return fresh;
}

/** Customers, shared credentials, mandates and audit rows for new rows, in the caller's transaction. */
async function writeRows(
  database: Database,
  tx: Executor,
  rows: Prepared[],
  opts: ImportOptions,
): Promise<number> {
  const refs = JSON.stringify([...new Set(rows.map((p) => p.row.customerRef))]);
  const customerRows = await database.rows<{ id: number | string; ref: string }>(
    sql`with input as (select distinct r as ref from jsonb_array_elements_text(${refs}::jsonb) r),
        ins as (insert into customers (ref) select ref from input on conflict (ref) do nothing returning id, ref)
        select id, ref from ins
        union all select c.id, c.ref from customers c join input on c.ref = input.ref`,
    tx,
  );
  const customerId = new Map(customerRows.map((c) => [c.ref, Number(c.id)]));

  // One credential per (customer, card): the first row of a batch describes it; a credential
  // already stored (an earlier batch or import) is kept as it is and shared.
  const credentialValues = new Map<string, Record<string, unknown>>();
  for (const { row, fingerprint: fp } of rows) {
    const cid = customerId.get(row.customerRef)!;
    const k = `${cid}\u0000${fp}`;
    if (credentialValues.has(k)) continue;
    credentialValues.set(k, {
      customer_id: cid,
      api: opts.api ?? 'v6',
      instrument_type: row.instrumentType,
      brand: row.brand,
      bin: row.pan ? row.pan.slice(0, 6) : null,
      last_four: row.pan ? row.pan.slice(-4) : null,
      expiry_month: row.expiryMonth,
      expiry_year: row.expiryYear,
      card_holder_name: row.cardHolderName,
      token_href: row.tokenHref,
      encrypted_pan: row.pan ? encryptSecret(row.pan, opts.key!) : null,
      fingerprint: fp,
      scheme_reference: row.schemeReference,
    });
  }
  const credentialJson = JSON.stringify([...credentialValues.values()]);
  const credentialRows = await database.rows<{
    id: number | string;
    customer_id: number | string;
    fingerprint: string;
    scheme_reference: string | null;
  }>(
    sql`with input as (
          select * from jsonb_to_recordset(${credentialJson}::jsonb) as x(
            customer_id bigint, api text, instrument_type text, brand text, bin text, last_four text,
            expiry_month smallint, expiry_year smallint, card_holder_name text, token_href text,
            encrypted_pan text, fingerprint text, scheme_reference text)),
        ins as (
          insert into credentials (customer_id, gateway, api, instrument_type, brand, bin, last_four, expiry_month,
            expiry_year, card_holder_name, token_href, encrypted_pan, fingerprint, scheme_reference)
          select customer_id, 'worldpay', api, instrument_type, brand, bin, last_four, expiry_month,
            expiry_year, card_holder_name, token_href, encrypted_pan, fingerprint, scheme_reference from input
          on conflict (customer_id, fingerprint) do nothing
          returning id, customer_id, fingerprint, scheme_reference)
        select id, customer_id, fingerprint, scheme_reference from ins
        union all select c.id, c.customer_id, c.fingerprint, c.scheme_reference from credentials c
          join input on c.customer_id = input.customer_id and c.fingerprint = input.fingerprint`,
    tx,
  );
  const credentialId = new Map(
    credentialRows.map((c) => [`${Number(c.customer_id)}\u0000${c.fingerprint}`, Number(c.id)]),
  );
  if (opts.api === 'v7') {
    // A row whose card its customer already has with another reference (stored before, or an
    // earlier row of the batch) is refused: the batch is retried row by row to name it.
    const reference = new Map(
      credentialRows.map((c) => [`${Number(c.customer_id)}\u0000${c.fingerprint}`, c.scheme_reference]),
    );
    for (const { row, fingerprint: fp } of rows) {
      const held = reference.get(`${customerId.get(row.customerRef)!}\u0000${fp}`);
      if (row.schemeReference !== null && held !== row.schemeReference)
        throw new SchemeReferenceConflict(row.line);
    }
  }

  const mandateJson = JSON.stringify(
    rows.map(({ row, fingerprint: fp, hash }) => {
      const cid = customerId.get(row.customerRef)!;
      // Unscheduled mandates have no due date; the anchor only records when they came in.
      const anchor = (row.nextChargeAt ?? opts.now).toISOString();
      return {
        customer_id: cid,
        credential_id: credentialId.get(`${cid}\u0000${fp}`)!,
        intent: row.intent,
        amount: row.amount,
        currency: row.currency,
        entity: row.entity,
        narrative: row.narrative,
        interval_unit: row.interval?.unit ?? null,
        interval_count: row.interval?.count ?? null,
        timezone: row.timezone,
        anchor_at: anchor,
        anchor_cycle: row.instalmentsPaid,
        instalments_total: row.instalmentsTotal,
        next_due_at: row.nextChargeAt ? row.nextChargeAt.toISOString() : null,
        legacy_id: row.legacyId,
        legacy_hash: hash,
      };
    }),
  );
  const [result] = await database.rows<{ n: number }>(
    sql`with ins as (
          insert into mandates (customer_id, credential_id, gateway, intent, amount, currency, entity, narrative,
            status, interval_unit, interval_count, timezone, anchor_at, anchor_cycle, start_at, instalments_total,
            last_instalment_amount, next_cycle, next_due_at, settle_mode, legacy_id, legacy_hash)
          select customer_id, credential_id, 'worldpay', intent, amount, currency, entity, narrative,
            'active', interval_unit, interval_count, timezone, anchor_at, anchor_cycle, anchor_at, instalments_total,
            null, anchor_cycle, next_due_at, 'full', legacy_id, legacy_hash
          from jsonb_to_recordset(${mandateJson}::jsonb) as x(
            customer_id bigint, credential_id bigint, intent text, amount bigint, currency text, entity text,
            narrative text, interval_unit text, interval_count integer, timezone text, anchor_at timestamptz,
            anchor_cycle integer, instalments_total integer, next_due_at timestamptz, legacy_id text, legacy_hash text)
          on conflict (legacy_id) do nothing
          returning id),
        audit as (${auditCreatedRows('ins', 'mandate', 'active', 'legacy import', 'legacy-import')})
        select count(*)::int as n from ins`,
    tx,
  );
  if ((result?.n ?? 0) !== rows.length) {
    // Another import wrote one of these legacy ids between classify and now: roll back so the
    // rows are retried one by one rather than half-applied.
    throw new ConcurrentImportError();
  }
  return rows.length;
}
