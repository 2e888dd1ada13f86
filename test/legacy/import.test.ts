import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, mandates } from '../../src/db/schema.ts';
import { DecryptError, decryptSecret } from '../../src/domain/card-crypto.ts';
import { erasePan, legacyStatus } from '../../src/legacy/erase.ts';
import { importLegacy } from '../../src/legacy/import.ts';
import { readLegacyFile, type SourceRecord } from '../../src/legacy/reader.ts';
import { rotateKeys } from '../../src/legacy/rotate-key.ts';
import { NO_KEY_REASON } from '../../src/legacy/rows.ts';
import { type TestDatabase, testDatabase } from '../support/db.ts';

const NOW = new Date('2026-11-21T12:00:00Z');
const KEY = Buffer.alloc(32, 7);
const NEW_KEY = Buffer.alloc(32, 9);
const fixture = (ext: string) => new URL(`../fixtures/legacy/mandates.${ext}`, import.meta.url).pathname;
const PANS = [
  '4444333322221111',
  '2221000000000009',
  '4895370012003478',
  '5555555555554444',
  '4000056655665556',
];
const INTERVAL_REASON = 'must be "N day|week|month|year" (N from 1; years up to 10), e.g. "1 month"';

/** Each bad row of the fixture: its CSV line, its NDJSON line, the field and the reason. */
const BAD: [csv: number, ndjson: number, field: string, reason: string][] = [
  [8, 6, 'card_number', 'fails the Luhn check'],
  [9, 7, 'expiry_year', 'the card has expired'],
  [10, 8, 'currency', 'not a known ISO-4217 currency code'],
  [11, 9, 'amount', 'must be a whole number of minor units (digits only)'],
  [12, 10, 'narrative', 'must be at most 24 characters'],
  [13, 11, 'interval', INTERVAL_REASON],
  [14, 12, 'timezone', 'not an IANA time zone'],
  [15, 13, 'instalments_paid', 'must be less than instalments_total'],
  [16, 14, 'instalments_total', 'only allowed for intent instalment'],
  [17, 15, 'expiry_month', 'required for instrument_type card/plain'],
  [17, 15, 'expiry_year', 'required for instrument_type card/plain'],
  [18, 16, 'token_href', 'required for instrument_type card/token'],
  [19, 17, 'dpan', 'required for instrument_type card/networkToken+applepay'],
  [20, 18, 'legacy_id', 'duplicates the legacy_id on line LINE_OF_L001'],
  [21, 19, 'entity', 'must be 1-32 letters, digits or spaces, starting with one of the first two'],
  [22, 20, 'token_href', 'must be an https URL'],
  [23, 21, 'amount', 'must be greater than 0'],
  [24, 22, 'intent', 'must be subscription, instalment or unscheduled'],
  [25, 23, 'instalments_total', 'required for intent instalment'],
  [26, 24, 'card_number', 'not allowed for instrument_type card/token'],
  [27, 25, 'next_charge_at', 'must be an ISO-8601 date or date-time'],
];

function expectedRejections(format: 'csv' | 'ndjson') {
  const rows = BAD.map(([csv, nd, field, reason]) => ({
    line: format === 'csv' ? csv : nd,
    field,
    reason: reason.replace('LINE_OF_L001', format === 'csv' ? '2' : '1'),
  }));
  rows.push(
    format === 'csv'
      ? { line: 28, field: '(record)', reason: 'the record has a different number of fields than the header' }
      : { line: 26, field: '(record)', reason: 'not valid JSON' },
  );
  return rows;
}

async function* rows(...records: Record<string, unknown>[]): AsyncGenerator<SourceRecord> {
  let line = 0;
  for (const record of records) yield { line: ++line, record };
}

const good = {
  customer_ref: 'cust-9',
  intent: 'subscription',
  amount: '700',
  currency: 'USD',
  interval: '1 month',
  next_charge_at: '2026-12-15',
  timezone: 'America/New_York',
  entity: 'MindPalaceLtd',
  narrative: 'Mind Palace',
  instrument_type: 'card/plain',
  card_number: '5555555555554444',
  expiry_month: '6',
  expiry_year: '2029',
};

describe('legacy import', () => {
  let t: TestDatabase;
  const count = async (table: string) =>
    (await t.database.rows<{ n: number }>(`select count(*)::int as n from ${table}`))[0]!.n;
  /** A digest of every row of the tables an import writes: equal digests, nothing written. */
  const snapshot = async () => {
    const out: Record<string, string | null> = {};
    for (const table of ['customers', 'credentials', 'mandates', 'audit_log']) {
      const [row] = await t.database.rows<{ d: string | null }>(
        `select md5(string_agg(x::text, '|' order by x.id)) as d from ${table} x`,
      );
      out[table] = row?.d ?? null;
    }
    return out;
  };

  beforeAll(async () => {
    t = await testDatabase();
  });
  afterAll(async () => t?.dispose());

  it('a dry run validates and reports, and writes nothing', async () => {
    const report = await importLegacy(t.database, readLegacyFile(fixture('csv')), {
      key: KEY,
      now: NOW,
      dryRun: true,
    });
    expect(report).toMatchObject({
      read: 26,
      imported: 5,
      unchanged: 0,
      changed: [],
      rejectedRows: 21,
      dryRun: true,
    });
    expect(report.rejected).toEqual(expectedRejections('csv'));
    for (const table of ['customers', 'credentials', 'mandates', 'audit_log'])
      expect(await count(table)).toBe(0);
  });

  it('imports the good rows of the CSV file and rejects each bad one with line, field and reason', async () => {
    const progress: number[] = [];
    const report = await importLegacy(t.database, readLegacyFile(fixture('csv')), {
      key: KEY,
      now: NOW,
      batchSize: 2,
      onProgress: (n) => progress.push(n),
    });
    expect(report).toMatchObject({
      read: 26,
      imported: 5,
      unchanged: 0,
      changed: [],
      rejectedRows: 21,
      dryRun: false,
    });
    expect(report.rejected).toEqual(expectedRejections('csv'));
    expect(progress.at(-1)).toBe(26);

    const imported = await t.database.db.select().from(mandates).orderBy(mandates.legacyId);
    expect(imported.map((m) => m.legacyId)).toEqual(['L-001', 'L-002', 'L-003', 'L-004', 'L-005']);
    const byId = Object.fromEntries(imported.map((m) => [m.legacyId, m]));
    // Two mandates of one customer on one card share one credential.
    expect(byId['L-001']!.credentialId).toBe(byId['L-002']!.credentialId);
    expect(byId['L-001']!.customerId).toBe(byId['L-002']!.customerId);
    expect(new Set(imported.map((m) => m.credentialId)).size).toBe(4);
    expect(await count('customers')).toBe(4);
    expect(await count('credentials')).toBe(4);
    expect(byId['L-001']).toMatchObject({
      gateway: 'worldpay',
      intent: 'subscription',
      amount: 1000,
      currency: 'GBP',
      intervalUnit: 'month',
      intervalCount: 1,
      timezone: 'Europe/London',
      anchorAt: new Date('2026-12-01T00:00:00Z'),
      nextDueAt: new Date('2026-12-01T00:00:00Z'),
      anchorCycle: 0,
      nextCycle: 0,
      status: 'active',
      settleMode: 'full',
      lastInstalmentAmount: null,
    });
    // Local time in Paris (UTC+1 in December); instalments paid become the next cycle.
    expect(byId['L-003']).toMatchObject({
      intent: 'instalment',
      anchorAt: new Date('2026-12-05T08:30:00Z'),
      anchorCycle: 2,
      nextCycle: 2,
      instalmentsTotal: 6,
      intervalUnit: 'week',
      intervalCount: 2,
    });
    // Unscheduled: nothing falls due on its own.
    expect(byId['L-004']).toMatchObject({
      intent: 'unscheduled',
      nextDueAt: null,
      intervalUnit: null,
      amount: 1500,
    });
    expect(byId['L-005']).toMatchObject({ timezone: 'UTC', anchorAt: new Date('2026-12-10T06:00:00Z') });

    const creds = await t.database.db.select().from(credentials).orderBy(credentials.id);
    const plain = creds.find((c) => c.id === byId['L-001']!.credentialId)!;
    expect(plain).toMatchObject({
      instrumentType: 'card/plain',
      brand: 'visa',
      bin: '444433',
      lastFour: '1111',
      expiryMonth: 12,
      expiryYear: 2030,
      schemeReference: 'MCC0123456789',
      tokenHref: null,
      currentLinkId: null,
    });
    expect(decryptSecret(plain.encryptedPan!, [KEY])).toBe('4444333322221111');
    const token = creds.find((c) => c.id === byId['L-003']!.credentialId)!;
    expect(token).toMatchObject({
      instrumentType: 'card/token',
      encryptedPan: null,
      tokenHref: 'https://try.access.worldpay.com/tokens/MTIzNDU2Nzg5MA+/=',
    });
    const network = creds.find((c) => c.id === byId['L-004']!.credentialId)!;
    expect(network).toMatchObject({
      instrumentType: 'card/networkToken+applepay',
      lastFour: '3478',
      expiryYear: 2027,
    });
    expect(decryptSecret(network.encryptedPan!, [KEY])).toBe('4895370012003478');
    expect(creds.find((c) => c.id === byId['L-005']!.credentialId)).toMatchObject({
      brand: 'mastercard',
      cardHolderName: 'Two\nLines',
    });

    const audit = await t.database.rows<{ n: number }>(
      sql`select count(*)::int as n from audit_log where entity_type = 'mandate' and to_state = 'active'
          and reason = 'legacy import' and entity_id in (select id from mandates)`,
    );
    expect(audit[0]!.n).toBe(5);
  });

  it('leaves no card number in any text column of any table, nor in the report', async () => {
    const columns = await t.database.rows<{ table_name: string; column_name: string }>(
      sql`select table_name, column_name from information_schema.columns
          where table_schema = 'public' and data_type in ('text', 'character varying', 'jsonb')`,
    );
    expect(columns.length).toBeGreaterThan(20);
    const hits: string[] = [];
    for (const { table_name, column_name } of columns) {
      const [row] = await t.database.rows<{ n: number }>(
        `select count(*)::int as n from "${table_name}" where "${column_name}"::text ~ '${PANS.join('|')}'`,
      );
      if (row!.n > 0) hits.push(`${table_name}.${column_name}`);
    }
    expect(hits).toEqual([]);
    const report = await importLegacy(t.database, readLegacyFile(fixture('csv')), {
      key: KEY,
      now: NOW,
      dryRun: true,
    });
    const json = JSON.stringify(report);
    for (const pan of [...PANS, '4444333322221112']) expect(json).not.toContain(pan);
  });

  it('re-importing the same mandates (the NDJSON form) changes nothing and says so', async () => {
    const before = await snapshot();
    const report = await importLegacy(t.database, readLegacyFile(fixture('ndjson')), { key: KEY, now: NOW });
    expect(report).toMatchObject({ read: 26, imported: 0, unchanged: 5, changed: [], rejectedRows: 21 });
    expect(report.rejected).toEqual(expectedRejections('ndjson'));
    expect(await snapshot()).toEqual(before);
  });

  it('reports a changed row for an existing legacy_id without applying it', async () => {
    const before = await snapshot();
    const report = await importLegacy(
      t.database,
      rows({
        legacy_id: 'L-001',
        customer_ref: 'cust-1',
        intent: 'subscription',
        amount: '1200',
        currency: 'GBP',
        interval: '1 month',
        next_charge_at: '2026-12-01',
        timezone: 'Europe/London',
        entity: 'MindPalaceLtd',
        narrative: 'Mind Palace Ltd',
        instrument_type: 'card/plain',
        card_number: '4444333322221111',
        expiry_month: '12',
        expiry_year: '2030',
        card_holder_name: 'A Holder',
        scheme_reference: 'MCC0123456789',
      }),
      { key: KEY, now: NOW },
    );
    expect(report).toMatchObject({
      read: 1,
      imported: 0,
      unchanged: 0,
      changed: [{ line: 1, legacyId: 'L-001' }],
    });
    expect(await snapshot()).toEqual(before);
  });

  it('without a key rejects rows carrying a card number or DPAN and imports token rows', async () => {
    const report = await importLegacy(
      t.database,
      rows(
        { ...good, legacy_id: 'K-plain' },
        {
          ...good,
          legacy_id: 'K-dpan',
          instrument_type: 'card/networkToken+applepay',
          card_number: '',
          dpan: '4000056655665556',
        },
        {
          ...good,
          legacy_id: 'K-token',
          instrument_type: 'card/token',
          card_number: '',
          expiry_month: '',
          expiry_year: '',
          token_href: 'https://try.access.worldpay.com/tokens/k',
        },
      ),
      { now: NOW },
    );
    expect(report).toMatchObject({ read: 3, imported: 1, rejectedRows: 2 });
    expect(report.rejected).toEqual([
      { line: 1, field: 'card_number', reason: NO_KEY_REASON },
      { line: 2, field: 'dpan', reason: NO_KEY_REASON },
    ]);
    expect(await count('mandates')).toBe(6);
  });

  it('a row the database refuses fails alone; the rest of its batch is imported', async () => {
    await t.database.rows(`create function legacy_boom() returns trigger language plpgsql as $$
      begin if new.legacy_id = 'D-boom' then raise exception 'boom'; end if; return new; end $$`);
    await t.database.rows(
      'create trigger legacy_boom before insert on mandates for each row execute function legacy_boom()',
    );
    try {
      const report = await importLegacy(
        t.database,
        rows(
          { ...good, legacy_id: 'D-1', customer_ref: 'cust-d' },
          { ...good, legacy_id: 'D-boom', customer_ref: 'cust-d' },
          { ...good, legacy_id: 'D-2', customer_ref: 'cust-d' },
        ),
        { key: KEY, now: NOW, batchSize: 10 },
      );
      expect(report).toMatchObject({ read: 3, imported: 2, rejectedRows: 1 });
      expect(report.rejected).toEqual([
        { line: 2, field: '(row)', reason: 'the database refused the row (P0001)' },
      ]);
      const d = await t.database.rows<{ legacy_id: string }>(
        `select legacy_id from mandates where legacy_id like 'D-%' order by legacy_id`,
      );
      expect(d.map((r) => r.legacy_id)).toEqual(['D-1', 'D-2']);
      const [{ n }] = (await t.database.rows<{ n: number }>(
        sql`select count(distinct credential_id)::int as n from mandates where legacy_id like 'D-%'`,
      )) as [{ n: number }];
      expect(n).toBe(1);
    } finally {
      await t.database.rows('drop trigger legacy_boom on mandates');
      await t.database.rows('drop function legacy_boom()');
    }
  });

  it('rotates the key: values re-encrypted, only the new key decrypts, re-import still unchanged', async () => {
    const stored = async () =>
      (await t.database.db.select().from(credentials).orderBy(credentials.id)).filter(
        (c) => c.encryptedPan !== null,
      );
    const before = await stored();
    expect(before.length).toBe(4);
    const result = await rotateKeys(t.database, KEY, NEW_KEY, { batchSize: 3 });
    expect(result).toEqual({ reencrypted: 4, alreadyNew: 0 });
    const after = await stored();
    for (const [i, c] of after.entries()) {
      expect(c.encryptedPan).not.toBe(before[i]!.encryptedPan);
      expect(decryptSecret(c.encryptedPan!, [NEW_KEY])).toBe(decryptSecret(before[i]!.encryptedPan!, [KEY]));
      expect(() => decryptSecret(c.encryptedPan!, [KEY])).toThrow(DecryptError);
    }
    // Run again (an interrupted rotation resumed): nothing left to do.
    expect(await rotateKeys(t.database, KEY, NEW_KEY)).toEqual({ reencrypted: 0, alreadyNew: 4 });
    const snap = await snapshot();
    const report = await importLegacy(t.database, readLegacyFile(fixture('csv')), { key: NEW_KEY, now: NOW });
    expect(report).toMatchObject({ imported: 0, unchanged: 5, changed: [] });
    expect(await snapshot()).toEqual(snap);
  });

  it('erasePan keeps brand, BIN and last four; legacy status counts what still holds card data', async () => {
    expect(await legacyStatus(t.database)).toEqual({ mandates: 8, withCardData: 6, migrated: 0 });
    const [l1] = await t.database.db.select().from(mandates).where(sql`legacy_id = 'L-001'`);
    await t.database.db.transaction(async (tx) => {
      await erasePan(tx, l1!.credentialId);
      await tx.update(credentials).set({ migratedAt: NOW }).where(sql`id = ${l1!.credentialId}`);
    });
    const [c] = await t.database.db.select().from(credentials).where(sql`id = ${l1!.credentialId}`);
    expect(c).toMatchObject({ encryptedPan: null, brand: 'visa', bin: '444433', lastFour: '1111' });
    // L-001 and L-002 share the erased credential.
    expect(await legacyStatus(t.database)).toEqual({ mandates: 8, withCardData: 4, migrated: 2 });
  });
});
