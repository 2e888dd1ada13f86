import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';

export interface OwnDatabase {
  database: Database;
  /** Connection URL (PostgreSQL only), for child processes. */
  url: string | undefined;
  name: string;
  drop(): Promise<void>;
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * A database of the benchmark's (or soak's) own, so a run never touches anyone's data and
 * always starts empty: a new, migrated PostgreSQL database when `serverUrl` is given (dropped
 * by `drop()`), else PGlite in a new temporary directory, as rebill runs embedded
 * (`REBILL_DATA_DIR`), removed by `drop()`. That directory is created and migrated by a child
 * process (`pglite-init.ts`), so this process opens an existing database as a restarted rebill
 * does and its peak RSS is not the one-time initdb's. `pgliteMemory` keeps PGlite's files in
 * this process's memory instead (initdb included), where every table's pages count in its RSS.
 */
export async function ownDatabase(
  prefix: string,
  serverUrl: string | undefined,
  opts: { maxConnections?: number; pgliteMemory?: boolean } = {},
): Promise<OwnDatabase> {
  if (!serverUrl) {
    if (opts.pgliteMemory) {
      const database = await createDatabase({ memory: true });
      await migrate(database);
      return { database, url: undefined, name: 'memory', drop: () => database.close() };
    }
    const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
    execFileSync(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./pglite-init.ts', import.meta.url)), dir],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    const database = await createDatabase({ dataDir: dir });
    let closed = false;
    const drop = async () => {
      if (closed) return;
      closed = true;
      await database.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    };
    try {
      await migrate(database);
    } catch (err) {
      await drop();
      throw err;
    }
    return { database, url: undefined, name: dir, drop };
  }
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(serverUrl, name);
  const database = await createDatabase({
    databaseUrl: url,
    maxConnections: opts.maxConnections ?? 10,
    countStatements: true,
  });
  await migrate(database);
  let dropped = false;
  return {
    database,
    url,
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      await database.close().catch(() => {});
      const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}

/** Transactions PostgreSQL committed or rolled back in a database so far (server-side count). */
export async function serverTransactions(serverUrl: string, name: string): Promise<number> {
  const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    // the statistics collector reports with a delay: ask for a fresh snapshot first
    await a.unsafe('select pg_stat_clear_snapshot()');
    const rows = await a.unsafe(
      `select (xact_commit + xact_rollback)::bigint as n from pg_stat_database where datname = '${name}'`,
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await a.end();
  }
}
