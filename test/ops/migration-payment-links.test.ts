import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { migrate as drizzleMigrate } from 'drizzle-orm/pglite/migrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paymentLinks } from '../../src/billing/charge/settle.ts';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { migrate, migrationsFolder } from '../../src/db/migrate.ts';

/**
 * Migration 0022 moves an answer's links off `links` rows onto the answer's own row: a database
 * written before it (links as rows: an authorization's, with a relation twice, a settle's, a
 * chain link from a verification and one from an authorization) reads the same links after it,
 * and keeps only the chain as rows.
 */
describe('migration 0022: links onto the answers that gave them', () => {
  let database: Database;
  let before: string;

  beforeAll(async () => {
    // The migrations folder as it was before 0022: the same files, the journal cut there.
    before = mkdtempSync(join(tmpdir(), 'rebill-migrations-'));
    cpSync(migrationsFolder, before, { recursive: true });
    const journalFile = join(before, 'meta', '_journal.json');
    const journal = JSON.parse(readFileSync(journalFile, 'utf8')) as { entries: { tag: string }[] };
    const cut = journal.entries.findIndex((e) => e.tag.startsWith('0022_'));
    expect(cut).toBeGreaterThan(0);
    journal.entries = journal.entries.slice(0, cut);
    writeFileSync(journalFile, JSON.stringify(journal));

    database = await createDatabase({ memory: true });
    // biome-ignore lint/suspicious/noExplicitAny: driver-specific drizzle instance.
    await drizzleMigrate(database.db as any, { migrationsFolder: before });
    await database.rows(sql`insert into customers (id, ref) values (1, 'cust-1')`);
    await database.rows(
      sql`insert into credentials (id, customer_id, instrument_type) values (1, 1, 'link')`,
    );
    await database.rows(sql`insert into mandates (id, customer_id, credential_id, intent, amount, currency, entity,
        narrative, interval_unit, interval_count, anchor_at, start_at)
      values (1, 1, 1, 'subscription', 1000, 'GBP', 'default', 'Plan', 'month', 1, '2026-01-01', '2026-01-01')`);
    await database.rows(sql`insert into charges (id, mandate_id, cycle, amount, currency, due_at)
      values (1, 1, 1, 1000, 'GBP', '2026-01-01')`);
    await database.rows(sql`insert into attempts (id, charge_id, credential_id, attempt_no, transaction_reference,
        kind, fence, attempted_at) values (1, 1, 1, 1, 'ref-1', 'recurring', 1, '2026-01-01')`);
    await database.rows(sql`insert into payment_actions (id, charge_id, attempt_id, kind, reference, link_href)
      values (1, 1, 1, 'settle', 'ref-1-S1', 'https://wp/settle/1')`);
    await database.rows(sql`insert into links (id, credential_id, attempt_id, action_id, source, rel, href) values
      (1, 1, null, null, 'verification', 'payments:recurringAuthorize', 'https://wp/chain/0'),
      (2, null, 1, null, 'authorize', 'payments:settle', 'https://wp/settle/1'),
      (3, null, 1, null, 'authorize', 'payments:events', 'https://wp/events/old'),
      (4, 1, 1, null, 'authorize', 'payments:recurringAuthorize', 'https://wp/chain/1'),
      (5, null, 1, null, 'authorize', 'payments:events', 'https://wp/events/1'),
      (6, null, 1, 1, 'settle', 'payments:refund', 'https://wp/refund/1'),
      (7, null, 1, 1, 'settle', 'payments:events', 'https://wp/events/2')`);
    await database.rows(sql`update credentials set current_link_id = 4 where id = 1`);
    await migrate(database);
  });

  afterAll(async () => {
    await database?.close();
    if (before) rmSync(before, { recursive: true, force: true });
  });

  it("keeps the authorization's links on its attempt, in their order, a repeated relation twice", async () => {
    const [a] = await database.rows<{ links: unknown }>(sql`select links from attempts where id = 1`);
    expect(a?.links).toEqual([
      ['payments:settle', 'https://wp/settle/1'],
      ['payments:events', 'https://wp/events/old'],
      ['payments:recurringAuthorize', 'https://wp/chain/1'],
      ['payments:events', 'https://wp/events/1'],
    ]);
  });

  it("keeps the settle's links on its action", async () => {
    const [pa] = await database.rows<{ links: unknown }>(sql`select links from payment_actions where id = 1`);
    expect(pa?.links).toEqual({
      'payments:refund': 'https://wp/refund/1',
      'payments:events': 'https://wp/events/2',
    });
  });

  it('keeps the chain as rows, the credential still on its newest link, and nothing else', async () => {
    const rows = await database.rows<{ id: number; href: string }>(
      sql`select id, href from links order by id`,
    );
    expect(rows.map((r) => [Number(r.id), r.href])).toEqual([
      [1, 'https://wp/chain/0'],
      [4, 'https://wp/chain/1'],
    ]);
    const [cr] = await database.rows<{ current_link_id: number }>(
      sql`select current_link_id from credentials`,
    );
    expect(Number(cr?.current_link_id)).toBe(4);
  });

  it("reads the payment's newest link of each relation as before: the action's over the authorization's", async () => {
    expect(await paymentLinks(database, 1)).toEqual({
      'payments:settle': 'https://wp/settle/1',
      'payments:recurringAuthorize': 'https://wp/chain/1',
      'payments:refund': 'https://wp/refund/1',
      'payments:events': 'https://wp/events/2',
    });
  });
});
