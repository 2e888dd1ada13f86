import postgres from 'postgres';
import { createDatabase } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { TEMPLATE_DB, withDatabase } from './global-setup.ts';

/**
 * Global setup of the mutation check (vitest.mutation.config.ts): the template database every
 * test file clones, built once and kept. Several Stryker workers start their vitest at once, so
 * the first takes an advisory lock and builds it while the others wait; later runs find it
 * there. Its name carries a hash of the migrations, so a changed schema gets a new template.
 */
export default async function setup(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) return;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin`select pg_advisory_lock(hashtext(${TEMPLATE_DB}))`;
    const found = await admin`select 1 from pg_database where datname = ${TEMPLATE_DB}`;
    if (found.length > 0) return;
    const building = `${TEMPLATE_DB}_building`;
    await admin.unsafe(`drop database if exists ${building}`);
    await admin.unsafe(`create database ${building}`);
    const database = await createDatabase({ databaseUrl: withDatabase(url, building), maxConnections: 1 });
    try {
      await migrate(database);
    } finally {
      await database.close();
    }
    // Renamed only once complete: a run killed half-way leaves no half-built template behind.
    await admin.unsafe(`alter database ${building} rename to ${TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
}
