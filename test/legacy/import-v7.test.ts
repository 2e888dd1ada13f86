import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerLegacyCommands } from '../../src/cli/legacy.ts';
import { loadConfig } from '../../src/config.ts';
import type { Database } from '../../src/db/client.ts';
import { decryptSecret, fingerprint } from '../../src/domain/card-crypto.ts';
import { importLegacy } from '../../src/legacy/import.ts';
import { readLegacyFile, type SourceRecord } from '../../src/legacy/reader.ts';
import { rotateKeys } from '../../src/legacy/rotate-key.ts';
import { type TestDatabase, testDatabase } from '../support/db.ts';

/**
 * `rebill legacy import --api v7`: Card Payments v7 credentials from a file, their scheme
 * references byte for byte and their card data kept; each bad row rejected naming its line and
 * column, and nothing of a rejected row written.
 */
const NOW = new Date('2026-11-21T12:00:00Z');
const KEY_HEX = '07'.repeat(32);
const KEY = Buffer.from(KEY_HEX, 'hex');
const example = new URL('../../docs/legacy-example-v7.csv', import.meta.url).pathname;
const PAN = '4444333322221111';
const NETWORK_TOKEN = '5555555555554444';
const OTHER_PAN = '4929301661318602';

const HEADER =
  'legacy_id,customer_ref,intent,amount,currency,interval,next_charge_at,timezone,instalments_total,instalments_paid,entity,narrative,instrument_type,card_number,expiry_month,expiry_year,card_holder_name,token_href,dpan,scheme_reference';

const good = {
  customer_ref: 'cust-v7',
  intent: 'subscription',
  amount: '700',
  currency: 'GBP',
  interval: '1 month',
  next_charge_at: '2026-12-15',
  entity: 'MindPalaceLtd',
  narrative: 'Mind Palace',
  instrument_type: 'card/plain',
  card_number: OTHER_PAN,
  expiry_month: '6',
  expiry_year: '2029',
  scheme_reference: 'REF-A',
};

async function* records(...list: Record<string, unknown>[]): AsyncGenerator<SourceRecord> {
  let line = 0;
  for (const record of list) yield { line: ++line, record };
}

function sink() {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

describe('legacy import --api v7', () => {
  let t: TestDatabase;
  let dir: string;
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
    dir = mkdtempSync(join(tmpdir(), 'rebill-v7-import-'));
  });
  afterAll(async () => {
    await t?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  async function cli(args: string[]) {
    const out = sink();
    const err = sink();
    const program = new Command().exitOverride();
    const database: Database = { ...t.database, close: async () => {} };
    registerLegacyCommands(program, {
      openDatabase: async () => database,
      config: () => loadConfig({ REBILL_ENCRYPTION_KEY: KEY_HEX }),
      stdout: out.stream,
      stderr: err.stream,
      now: () => NOW,
    });
    process.exitCode = undefined;
    await program.parseAsync(['node', 'rebill', 'legacy', ...args]);
    const code = process.exitCode ?? 0;
    process.exitCode = undefined;
    return { code, stdout: out.text(), stderr: err.text() };
  }

  it('imports the README example as v7 credentials: references byte for byte, card data kept, one credential per card', async () => {
    const r = await cli(['import', example, '--api', 'v7', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ read: 4, imported: 4, rejected: [] });
    expect(r.stdout + r.stderr).not.toContain(PAN);
    const rows = await t.database.rows<{
      legacy_id: string;
      credential_id: number;
      api: string;
      instrument_type: string;
      scheme_reference: string | null;
      encrypted_pan: string | null;
      fingerprint: string;
      token_href: string | null;
      last_four: string | null;
      current_link_id: number | null;
    }>(sql`select m.legacy_id, m.credential_id, c.api, c.instrument_type, c.scheme_reference, c.encrypted_pan,
             c.fingerprint, c.token_href, c.last_four, c.current_link_id
           from mandates m join credentials c on c.id = m.credential_id
           where m.legacy_id like 'v7-%' order by m.legacy_id`);
    expect(rows.map((x) => [x.legacy_id, x.api, x.instrument_type, x.scheme_reference, x.last_four])).toEqual(
      [
        ['v7-inst-2001', 'v7', 'card/token', null, null],
        ['v7-sub-1001', 'v7', 'card/plain', 'MCCOLXT1C0104  ', '1111'],
        ['v7-sub-1002', 'v7', 'card/plain', 'MCCOLXT1C0104  ', '1111'],
        ['v7-uns-3001', 'v7', 'card/networkToken', '483726150947362', '4444'],
      ],
    );
    const [token, sub1, sub2, nt] = rows;
    expect(sub1!.credential_id).toBe(sub2!.credential_id);
    expect(sub1!.fingerprint).toBe(`v7pan:${fingerprint(PAN, KEY)}`);
    expect(decryptSecret(sub1!.encrypted_pan!, [KEY])).toBe(PAN);
    expect(nt!.fingerprint).toBe(`v7ntok:${fingerprint(NETWORK_TOKEN, KEY)}`);
    expect(decryptSecret(nt!.encrypted_pan!, [KEY])).toBe(NETWORK_TOKEN);
    expect(token!.token_href).toBe('https://try.access.worldpay.com/tokens/MTIzNDU2Nzg5MA');
    expect(rows.every((x) => x.current_link_id === null)).toBe(true);

    // again: unchanged, nothing written
    const before = await snapshot();
    const again = await cli(['import', example, '--api', 'v7']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/unchanged\s+4/);
    expect(await snapshot()).toEqual(before);
    // the same file as v6 is another API's credentials: every row reported changed, none applied
    const v6 = await cli(['import', example, '--json']);
    expect(v6.code).toBe(2);
    expect(
      JSON.parse(v6.stdout).rejected.map((e: { line: number; field: string }) => [e.line, e.field]),
    ).toEqual([[5, 'instrument_type']]);
    expect(await snapshot()).toEqual(before);
  });

  it('rejects each bad v7 row naming its line and column, without its card number, and writes none of them', async () => {
    const before = await snapshot();
    const bad: [over: Record<string, unknown>, field: string, reason: string][] = [
      [{ scheme_reference: '' }, 'scheme_reference', 'required for instrument_type card/plain (--api v7)'],
      [
        { instrument_type: 'card/networkToken', card_number: '', dpan: NETWORK_TOKEN, scheme_reference: '' },
        'scheme_reference',
        'required for instrument_type card/networkToken (--api v7)',
      ],
      [
        { instrument_type: 'card/networkToken+applepay', card_number: '', dpan: NETWORK_TOKEN },
        'instrument_type',
        'must be card/plain, card/token or card/networkToken (--api v7)',
      ],
      [
        { instrument_type: 'card/networkToken', card_number: '' },
        'dpan',
        'required for instrument_type card/networkToken',
      ],
      [
        { instrument_type: 'card/networkToken', dpan: NETWORK_TOKEN },
        'card_number',
        'not allowed for instrument_type card/networkToken',
      ],
      [
        { instrument_type: 'card/networkToken', card_number: '', dpan: '5555555555554445' },
        'dpan',
        'fails the Luhn check',
      ],
      [{ card_number: '4444333322221112' }, 'card_number', 'fails the Luhn check'],
      [{ expiry_year: '2025' }, 'expiry_year', 'the card has expired'],
      [{ scheme_reference: `x${OTHER_PAN}` }, 'scheme_reference', 'looks like a card number'],
      [{ scheme_reference: PAN }, 'scheme_reference', 'looks like a card number'],
      [{ scheme_reference: '   ' }, 'scheme_reference', 'must not be only spaces'],
      [{ scheme_reference: 'r'.repeat(256) }, 'scheme_reference', 'must be at most 255 characters'],
      [{ scheme_reference: 12345 }, 'scheme_reference', 'must be a string'],
      [
        {
          instrument_type: 'card/token',
          card_number: '',
          token_href: 'http://try.access.worldpay.com/tokens/x',
        },
        'token_href',
        'must be an https URL',
      ],
    ];
    const report = await importLegacy(
      t.database,
      records(...bad.map(([over], i) => ({ ...good, legacy_id: `bad-${i}`, ...over }))),
      { key: KEY, now: NOW, api: 'v7' },
    );
    expect(report).toMatchObject({ read: bad.length, imported: 0, rejectedRows: bad.length });
    for (const [i, [, field, reason]] of bad.entries()) {
      const found = report.rejected.filter((e) => e.line === i + 1);
      expect(
        found.map((e) => e.field),
        `line ${i + 1}: ${JSON.stringify(found)}`,
      ).toContain(field);
      expect(found.find((e) => e.field === field)!.reason).toContain(reason);
    }
    expect(JSON.stringify(report)).not.toMatch(
      /4929301661318602|4444333322221111|5555555555554444|4444333322221112/,
    );
    expect(await snapshot()).toEqual(before);
  });

  it('a row whose customer already has the card with another scheme reference is rejected, the others of its batch imported', async () => {
    const report = await importLegacy(
      t.database,
      records(
        { ...good, legacy_id: 'ref-1', customer_ref: 'cust-ref' },
        { ...good, legacy_id: 'ref-2', customer_ref: 'cust-ref', scheme_reference: 'REF-B' },
        { ...good, legacy_id: 'ref-3', customer_ref: 'cust-ref', scheme_reference: 'REF-A' },
        // a token needs no reference
        {
          ...good,
          legacy_id: 'ref-4',
          customer_ref: 'cust-ref',
          instrument_type: 'card/token',
          card_number: '',
          expiry_month: '',
          expiry_year: '',
          token_href: 'https://try.access.worldpay.com/tokens/abc',
          scheme_reference: '',
        },
        // a Visa transaction identifier: 15 digits, Luhn-valid, a reference and not a card
        { ...good, legacy_id: 'ref-5', customer_ref: 'cust-visa', scheme_reference: '123456789012347' },
      ),
      { key: KEY, now: NOW, api: 'v7' },
    );
    expect(report.rejected).toEqual([
      {
        line: 2,
        field: 'scheme_reference',
        reason:
          "differs from the scheme reference of this customer's credential for the same card (imported before, or on an earlier line)",
      },
    ]);
    expect(report.imported).toBe(4);
    const later = await importLegacy(
      t.database,
      records({ ...good, legacy_id: 'ref-6', customer_ref: 'cust-ref', scheme_reference: 'REF-C' }),
      { key: KEY, now: NOW, api: 'v7' },
    );
    expect(later.rejected.map((e) => e.field)).toEqual(['scheme_reference']);
    const refs = await t.database.rows<{ legacy_id: string; scheme_reference: string }>(
      sql`select m.legacy_id, c.scheme_reference from mandates m join credentials c on c.id = m.credential_id
          where m.legacy_id like 'ref-%' order by m.legacy_id`,
    );
    expect(refs.map((r) => [r.legacy_id, r.scheme_reference])).toEqual([
      ['ref-1', 'REF-A'],
      ['ref-3', 'REF-A'],
      ['ref-4', null],
      ['ref-5', '123456789012347'],
    ]);
  });

  it('a key rotation keeps v7 fingerprints findable: the example imports unchanged under the new key, its card data still readable', async () => {
    const NEW_KEY = Buffer.alloc(32, 9);
    const rotated = await rotateKeys(t.database, KEY, NEW_KEY);
    expect(rotated.reencrypted).toBeGreaterThan(0);
    const again = await importLegacy(t.database, readLegacyFile(example), {
      key: NEW_KEY,
      now: NOW,
      api: 'v7',
    });
    expect(again).toMatchObject({ imported: 0, unchanged: 4, changed: [], rejected: [] });
    const [card] = await t.database.rows<{ encrypted_pan: string; fingerprint: string }>(
      sql`select c.encrypted_pan, c.fingerprint from mandates m join credentials c on c.id = m.credential_id
          where m.legacy_id = 'v7-sub-1001'`,
    );
    expect(card!.fingerprint).toBe(`v7pan:${fingerprint(PAN, NEW_KEY)}`);
    expect(decryptSecret(card!.encrypted_pan, [NEW_KEY])).toBe(PAN);
  });

  it('--api takes v6 or v7 only, as every enum flag', async () => {
    const file = join(dir, 'one.csv');
    writeFileSync(file, `${HEADER}\n`);
    await expect(cli(['import', file, '--api', 'v8'])).rejects.toMatchObject({
      code: 'commander.invalidArgument',
      message: expect.stringContaining("option '--api <version>' argument 'v8' is invalid"),
    });
  });
});
