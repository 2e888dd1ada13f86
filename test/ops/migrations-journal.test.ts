import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { migrate as drizzleMigrate } from 'drizzle-orm/pglite/migrator';
import { describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/client.ts';
import { migrate, migrationsFolder } from '../../src/db/migrate.ts';

interface Journal {
  entries: { idx: number; tag: string; when: number }[];
}

const journal = (): Journal =>
  JSON.parse(readFileSync(join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as Journal;

/**
 * drizzle applies a migration to a database only when its journal `when` is later than the last
 * one the database applied: a migration whose `when` is earlier than the one before it would be
 * skipped on every database already past that one (a fresh database applies all in one pass, so
 * only an upgrade shows it).
 */
describe('migrations journal', () => {
  it('orders every migration after the one before it, each with its file', () => {
    const { entries } = journal();
    expect(entries.length).toBeGreaterThan(20);
    entries.forEach((e, i) => {
      expect(e.idx, e.tag).toBe(i);
      expect(existsSync(join(migrationsFolder, `${e.tag}.sql`)), e.tag).toBe(true);
      if (i > 0)
        expect(e.when, `${e.tag} after ${entries[i - 1]!.tag}`).toBeGreaterThan(entries[i - 1]!.when);
    });
  });

  it('a database at each of the last two migrations upgrades to the newest', async () => {
    const { entries } = journal();
    for (const upTo of entries.slice(-3, -1).map((e) => e.idx)) {
      const folder = mkdtempSync(join(tmpdir(), 'rebill-migrations-'));
      const database = await createDatabase({ memory: true });
      try {
        cpSync(migrationsFolder, folder, { recursive: true });
        const cut = { ...journal(), entries: entries.slice(0, upTo + 1) };
        writeFileSync(join(folder, 'meta', '_journal.json'), JSON.stringify(cut));
        // biome-ignore lint/suspicious/noExplicitAny: driver-specific drizzle instance.
        await drizzleMigrate(database.db as any, { migrationsFolder: folder });
        await migrate(database);
        const applied = await database.rows<{ n: number }>(
          sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
        );
        expect(applied[0]!.n, `from ${entries[upTo]!.tag}`).toBe(entries.length);
      } finally {
        await database.close();
        rmSync(folder, { recursive: true, force: true });
      }
    }
  });
});
