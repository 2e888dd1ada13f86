import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findUpwards } from '../paths.ts';
import type { Database } from './client.ts';

/**
 * The project's migrations/ folder, found upwards from this module: it sits two levels up from
 * src/db/ and one up from the CLI bundle in dist/.
 */
function findMigrations(): string {
  const root = findUpwards(join('migrations', 'meta', '_journal.json'));
  if (root === undefined) throw new Error(`no migrations/ folder above ${fileURLToPath(import.meta.url)}`);
  return join(root, 'migrations');
}

export const migrationsFolder = findMigrations();

/** Arbitrary constant: the advisory lock key that serialises schema changes across processes. */
const MIGRATION_LOCK = 727_1001;

/**
 * Apply pending migrations. On PostgreSQL two processes starting together would race on
 * drizzle's journal table, so a session-level advisory lock, held on a reserved connection,
 * lets one migrate while the other waits and then finds nothing to do.
 */
export async function migrate(database: Database): Promise<void> {
  if (database.kind === 'pglite') {
    const { migrate: run } = await import('drizzle-orm/pglite/migrator');
    // biome-ignore lint/suspicious/noExplicitAny: driver-specific drizzle instance.
    await run(database.db as any, { migrationsFolder });
    return;
  }
  const { migrate: run } = await import('drizzle-orm/postgres-js/migrator');
  // The lock lives on a connection of its own so that a pool of one can still migrate.
  const { default: postgres } = await import('postgres');
  const lock = postgres(database.url!, { max: 1, onnotice: () => {} });
  try {
    await lock`select pg_advisory_lock(${MIGRATION_LOCK})`;
    try {
      // biome-ignore lint/suspicious/noExplicitAny: driver-specific drizzle instance.
      await run(database.db as any, { migrationsFolder });
    } finally {
      await lock`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    }
  } finally {
    await lock.end();
  }
}
