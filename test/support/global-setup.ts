import postgres from 'postgres';
import { createDatabase } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';

/** One template per checkout that runs tests at once (REBILL_TEST_TEMPLATE), so parallel runs do not drop each other's. */
export const TEMPLATE_DB = process.env.REBILL_TEST_TEMPLATE ?? 'rebill_test_template';

/**
 * With DATABASE_URL set, migrate a template database once; every test file then clones it
 * (CREATE DATABASE ... TEMPLATE), which takes milliseconds instead of a migration per file.
 */
export default async function setup(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) return;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${TEMPLATE_DB}' and pid <> pg_backend_pid()`,
    );
    await admin.unsafe(`drop database if exists ${TEMPLATE_DB}`);
    await admin.unsafe(`create database ${TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
  const database = await createDatabase({ databaseUrl: withDatabase(url, TEMPLATE_DB), maxConnections: 1 });
  try {
    await migrate(database);
  } finally {
    await database.close();
  }
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}
