/**
 * Import of legacy card-on-file mandates. Rows stream in, are validated one by one, and good
 * rows are written in batches: one transaction per batch with multi-row inserts (a handful of
 * statements per thousand rows). Everything a row needs is checked before the batch is
 * written, so a batch normally commits whole; if the database still refuses it, the batch is
 * rolled back and retried one row per transaction, so only the row at fault is rejected.
 */
import { createHash } from 'node:crypto';
import { and, eq, inArray } from 'drizzle-orm';
import type { Database, Executor } from '../db/client.ts';
import { auditLog, credentials, customers, mandates } from '../db/schema.ts';
import { encryptSecret, fingerprint } from './crypto.ts';
import type { SourceRecord } from './reader.ts';
import { createRowValidator, type RowError, type ValidRow } from './rows.ts';

export interface ImportOptions {
  /** Encryption key for PANs/DPANs. Without it rows carrying one are rejected (field card_number/dpan). */
  key?: Buffer | undefined;
  dryRun?: boolean;
  /** Pinned "now": expiry checks, and the anchor of unscheduled mandates. */
  now: Date;
  batchSize?: number;
  /** Called with the number of records read so far. */
  onProgress?: (read: number) => void;
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

/** Fingerprint of the row's instrument: keyed HMAC for numbers, a plain hash for a token href (stored in clear anyway). */
export function instrumentFingerprint(row: ValidRow, key: Buffer | undefined): string {
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
  const validate = createRowValidator({ now: opts.now, canStoreCardData: opts.key !== undefined });
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
    const fresh = await classify(database.db, current, report);
    if (fresh.length === 0) return;
    if (dryRun) {
      report.imported += fresh.length;
      return;
    }
    try {
      report.imported += await database.db.transaction((tx) => writeRows(tx, fresh, opts));
    } catch {
      // Rolled back whole: find the row at fault by writing one row per transaction.
      for (const one of fresh) {
        try {
          report.imported += await database.db.transaction((tx) => writeRows(tx, [one], opts));
        } catch (err) {
          const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
          reject([
            {
              line: one.row.line,
              field: '(row)',
              reason: `the database refused the row (${code ?? 'error'})`,
            },
          ]);
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
        batch.push({ row, fingerprint: instrumentFingerprint(row, opts.key), hash: legacyHash(row) });
        if (batch.length >= batchSize) await flush();
      }
    }
    opts.onProgress?.(report.read);
  }
  await flush();
  report.rejected.sort((a, b) => a.line - b.line);
  return report;
}

/** Split a batch into rows already imported (unchanged or changed, counted here) and new ones. */
async function classify(db: Executor, batch: Prepared[], report: ImportReport): Promise<Prepared[]> {
  const existing = await db
    .select({ legacyId: mandates.legacyId, hash: mandates.legacyHash, fingerprint: credentials.fingerprint })
    .from(mandates)
    .innerJoin(credentials, eq(credentials.id, mandates.credentialId))
    .where(
      inArray(
        mandates.legacyId,
        batch.map((p) => p.row.legacyId),
      ),
    );
  const byId = new Map(existing.map((e) => [e.legacyId!, e]));
  const fresh: Prepared[] = [];
  for (const p of batch) {
    const found = byId.get(p.row.legacyId);
    if (!found) fresh.push(p);
    else if (found.hash === p.hash && found.fingerprint === p.fingerprint) report.unchanged++;
    else report.changed.push({ line: p.row.line, legacyId: p.row.legacyId });
  }
  return fresh;
}

/** Customers, shared credentials, mandates and audit rows for new rows, in the caller's transaction. */
async function writeRows(tx: Executor, rows: Prepared[], opts: ImportOptions): Promise<number> {
  const refs = [...new Set(rows.map((p) => p.row.customerRef))];
  await tx
    .insert(customers)
    .values(refs.map((ref) => ({ ref })))
    .onConflictDoNothing({ target: customers.ref });
  const customerRows = await tx
    .select({ id: customers.id, ref: customers.ref })
    .from(customers)
    .where(inArray(customers.ref, refs));
  const customerId = new Map(customerRows.map((c) => [c.ref, c.id]));

  // One credential per (customer, card): the first row of a batch describes it; a credential
  // already stored (an earlier batch or import) is kept as it is and shared.
  const credentialValues = new Map<string, typeof credentials.$inferInsert>();
  for (const { row, fingerprint: fp } of rows) {
    const cid = customerId.get(row.customerRef)!;
    const k = `${cid}\u0000${fp}`;
    if (credentialValues.has(k)) continue;
    credentialValues.set(k, {
      customerId: cid,
      gateway: 'worldpay',
      instrumentType: row.instrumentType,
      brand: row.brand,
      bin: row.pan ? row.pan.slice(0, 6) : null,
      lastFour: row.pan ? row.pan.slice(-4) : null,
      expiryMonth: row.expiryMonth,
      expiryYear: row.expiryYear,
      cardHolderName: row.cardHolderName,
      tokenHref: row.tokenHref,
      encryptedPan: row.pan ? encryptSecret(row.pan, opts.key!) : null,
      fingerprint: fp,
      schemeReference: row.schemeReference,
    });
  }
  await tx
    .insert(credentials)
    .values([...credentialValues.values()])
    .onConflictDoNothing({ target: [credentials.customerId, credentials.fingerprint] });
  const credentialRows = await tx
    .select({ id: credentials.id, customerId: credentials.customerId, fingerprint: credentials.fingerprint })
    .from(credentials)
    .where(
      and(
        inArray(credentials.customerId, [...customerId.values()]),
        inArray(credentials.fingerprint, [...new Set(rows.map((p) => p.fingerprint))]),
      ),
    );
  const credentialId = new Map(credentialRows.map((c) => [`${c.customerId}\u0000${c.fingerprint}`, c.id]));

  const inserted = await tx
    .insert(mandates)
    .values(
      rows.map(({ row, fingerprint: fp, hash }) => {
        const cid = customerId.get(row.customerRef)!;
        // Unscheduled mandates have no due date; the anchor only records when they came in.
        const anchor = row.nextChargeAt ?? opts.now;
        return {
          customerId: cid,
          credentialId: credentialId.get(`${cid}\u0000${fp}`)!,
          gateway: 'worldpay',
          intent: row.intent,
          amount: row.amount,
          currency: row.currency,
          entity: row.entity,
          narrative: row.narrative,
          status: 'active',
          intervalUnit: row.interval?.unit ?? null,
          intervalCount: row.interval?.count ?? null,
          timezone: row.timezone,
          anchorAt: anchor,
          anchorCycle: row.instalmentsPaid,
          startAt: anchor,
          instalmentsTotal: row.instalmentsTotal,
          lastInstalmentAmount: null,
          nextCycle: row.instalmentsPaid,
          nextDueAt: row.nextChargeAt,
          settleMode: 'full',
          legacyId: row.legacyId,
          legacyHash: hash,
        };
      }),
    )
    .onConflictDoNothing({ target: mandates.legacyId })
    .returning({ id: mandates.id });
  if (inserted.length !== rows.length) {
    // Another import wrote one of these legacy ids between classify and now: start over so
    // the batch is classified again rather than half-applied.
    throw new Error('a legacy id was imported concurrently');
  }
  await tx.insert(auditLog).values(
    inserted.map((m) => ({
      entityType: 'mandate',
      entityId: m.id,
      fromState: null,
      toState: 'active',
      reason: 'legacy import',
      actor: 'legacy-import',
    })),
  );
  return inserted.length;
}
