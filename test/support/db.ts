import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { TEMPLATE_DB, withDatabase } from './global-setup.ts';

export interface TestDatabase {
  database: Database;
  /** Connection URL of this file's own database (PostgreSQL only), for child processes. */
  url: string | undefined;
  dispose(): Promise<void>;
}

export const hasServer = Boolean(process.env.DATABASE_URL);
export const serverSkipReason =
  'needs several connections: set DATABASE_URL to a PostgreSQL server to run it';

/**
 * A fresh, migrated database for one test file: a clone of the template on PostgreSQL when
 * DATABASE_URL is set, otherwise an in-memory PGlite.
 */
export async function testDatabase(opts: { maxConnections?: number } = {}): Promise<TestDatabase> {
  const base = process.env.DATABASE_URL;
  if (!base) {
    const database = await createDatabase({ memory: true });
    await migrate(database);
    return { database, url: undefined, dispose: () => database.close() };
  }
  const name = `rebill_t_${randomBytes(6).toString('hex')}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name} template ${TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(base, name);
  const database = await createDatabase({ databaseUrl: url, maxConnections: opts.maxConnections ?? 10 });
  return {
    database,
    url,
    dispose: async () => {
      await database.close();
      const drop = postgres(base, { max: 1, onnotice: () => {} });
      try {
        await drop.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await drop.end();
      }
    },
  };
}
