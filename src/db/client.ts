import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type { SQL, SQLWrapper } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import type { Sql } from 'postgres';
import { DEFAULT_DB_CONNECT_TIMEOUT_MS } from '../config.ts';
import { ConflictError } from '../errors.ts';
import * as schema from './schema.ts';
import { pgArrayParsers, pgParsers, TIMESTAMPTZ } from './values.ts';

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
// biome-ignore lint/suspicious/noExplicitAny: the transaction type is the same for both drivers.
export type Tx = PgTransaction<PgQueryResultHKT, Schema, any>;
export type Executor = Db | Tx;

export interface Database {
  db: Db;
  kind: 'postgres' | 'pglite';
  /**
   * Run raw SQL and get its rows, whichever driver is underneath, with the same JS types on
   * both (`pgParsers`: int8 and numeric as numbers, timestamps as Dates). `prepare`: a statement whose
   * text is stable (the hot path's per-charge commits) as a named prepared statement, parsed and
   * planned once per connection, one round trip after that; others go unnamed, since a text that
   * changes with its batch would only fill the connection's statement cache.
   */
  rows<T = Record<string, unknown>>(
    query: SQLWrapper | string,
    on?: Executor,
    opts?: { prepare?: boolean },
  ): Promise<T[]>;
  /** Statements sent so far (PostgreSQL: only with `countStatements`). */
  statements(): number;
  /**
   * Round trips so far (PostgreSQL, only with `countStatements`): turns of the conversation,
   * each a client write after the server last answered, whatever the statements in it. An
   * unprepared statement is two (Parse/Describe, then Bind/Execute), a prepared one is one.
   */
  flights(): number;
  /** Whether several connections can work at once (false for PGlite). */
  concurrent: boolean;
  /**
   * Receive the payloads notified on `channel` (NOTIFY, delivered at the notifier's commit):
   * PostgreSQL on a connection of its own, listening again after it drops; PGlite in process.
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<void>;
  close(): Promise<void>;
  /** The underlying driver handles, for migration and tests. */
  postgres?: Sql;
  url?: string;
  pglite?: PGlite;
}

/** Another process holds the PGlite data directory: a conflict (exit 4), not a crash. */
export class DataDirInUseError extends ConflictError {
  static override readonly type: string = 'DataDirInUseError';
}

export interface DbOptions {
  databaseUrl?: string | undefined;
  dataDir?: string;
  /** Open PGlite in memory (tests). */
  memory?: boolean;
  maxConnections?: number;
  /** PostgreSQL: how long opening a connection may take (default DEFAULT_DB_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /**
   * Count statements sent (the benchmark's statements-per-charge). postgres.js counts through
   * its `debug` hook, which captures a stack per query: off unless asked for.
   */
  countStatements?: boolean;
  /** PGlite only: a dumped, already-migrated data directory to start from. */
  loadDataDir?: Blob;
}

function normalise<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

/**
 * A socket factory for postgres.js that counts round trips (the benchmark's, never in
 * production): a write after the server's last answer starts a new flight, so several
 * messages pipelined together are one, and a statement that waits for a Describe before
 * its Bind is two. TCP only (a `?host=/socket/dir` URL is not counted).
 */
function countingSocket(url: string, flight: () => void) {
  const u = new URL(url);
  const host = u.hostname || '127.0.0.1';
  const port = Number(u.port || 5432);
  return () =>
    new Promise<Socket>((resolve, reject) => {
      const socket = connect(port, host);
      let answered = true;
      socket.on('data', () => {
        answered = true;
      });
      const write = socket.write.bind(socket) as (...a: unknown[]) => boolean;
      socket.write = ((...a: unknown[]) => {
        if (answered) {
          answered = false;
          flight();
        }
        return write(...a);
      }) as typeof socket.write;
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });
}

/**
 * Seconds to wait before reconnecting after `retries` failed connections in a row: postgres.js's
 * own curve (0.5-1 times 3^retries/100 s), capped at 1 s instead of 20, since every statement
 * waiting for a connection waits that long too.
 */
function reconnectPause(retries: number): number {
  return Math.min(1, (0.5 + Math.random() / 2) * (3 ** retries / 100));
}

/**
 * PGlite's buffers live inside its WebAssembly memory, which never shrinks: PostgreSQL's default
 * 128 MB of shared buffers made an embedded rebill about 770 MiB resident before its first
 * query. Its pages are in memory anyway (its file system is the process's), so 16 MB is enough.
 */
const PGLITE_CONF = ['shared_buffers = 16MB'];

/** Create a database handle: postgres.js when a URL is given, else embedded PGlite. */
export async function createDatabase(opts: DbOptions): Promise<Database> {
  let count = 0;
  let flights = 0;
  if (opts.databaseUrl) {
    const { default: postgres } = await import('postgres');
    const { drizzle } = await import('drizzle-orm/postgres-js');
    const client = postgres(opts.databaseUrl, {
      max: opts.maxConnections ?? 10,
      // A database that cannot be reached fails the statement that needs it within a few
      // seconds (the API answers 503): a connect that hangs gives up after the timeout, and the
      // pause before a reconnect stays short (postgres.js grows it up to 20 s during an outage,
      // and a request waited for it: one PATCH took 12.3 s to fail).
      connect_timeout: (opts.connectTimeoutMs ?? DEFAULT_DB_CONNECT_TIMEOUT_MS) / 1000,
      backoff: reconnectPause,
      onnotice: () => {},
      connection: { application_name: 'rebill' },
      // postgres.js asks every new connection for the array types first, and drops that query's
      // promise: a connection lost during it (a database restarting, a proxy cut) is an
      // unhandled rejection no caller can catch, which ends the process
      // (porsager/postgres#1192, #1223). Arrays are read with our own parsers (`pgArrayParsers`)
      // and sent as literals (`'{...}'::text[]`).
      fetch_types: false,
      ...(opts.countStatements
        ? {
            debug: () => {
              count++;
            },
            socket: countingSocket(opts.databaseUrl, () => {
              flights++;
            }),
          }
        : {}),
    });
    const db = drizzle(client, { schema }) as unknown as Db;
    // drizzle's driver has just made the date and time types text, for its typed queries, which
    // read a Date as well as a text (`mapFromDriverValue`); the raw path wants Dates and numbers.
    // A Date read back goes out again as a parameter: drizzle passes parameters through.
    for (const [oid, parse] of Object.entries(pgParsers)) client.options.parsers[Number(oid)] = parse;
    for (const [oid, parse] of Object.entries(pgArrayParsers)) client.options.parsers[Number(oid)] = parse;
    const passThrough = client.options.serializers[TIMESTAMPTZ];
    client.options.serializers[TIMESTAMPTZ] = (x: unknown) =>
      x instanceof Date ? x.toISOString() : passThrough ? passThrough(x) : x;
    const { PgDialect } = await import('drizzle-orm/pg-core');
    const dialect = new PgDialect();
    return {
      db,
      kind: 'postgres',
      concurrent: true,
      postgres: client,
      url: opts.databaseUrl,
      statements: () => count,
      flights: () => flights,
      listen: async (channel, onNotify) => {
        await client.listen(channel, onNotify);
      },
      rows: async <T>(q: SQLWrapper | string, on?: Executor, o?: { prepare?: boolean }) => {
        if (o?.prepare && typeof q !== 'string') {
          // What drizzle's execute does, with prepare on: the same text and parameters, and the
          // transaction's own connection when there is one.
          const query = dialect.sqlToQuery(q.getSQL());
          const conn = on ? (on as unknown as { session: { client: typeof client } }).session.client : client;
          return normalise<T>(await conn.unsafe(query.sql, query.params as never[], { prepare: true }));
        }
        return normalise<T>(await (on ?? db).execute(q as SQL));
      },
      close: async () => {
        await client.end({ timeout: 5 });
      },
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { PgDialect } = await import('drizzle-orm/pg-core');
  const dialect = new PgDialect();
  let release = () => {};
  let client: PGlite;
  if (opts.memory) {
    client = await PGlite.create({
      ...(opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {}),
      postgresqlconf: PGLITE_CONF,
      parsers: pgParsers,
    });
  } else {
    const dir = opts.dataDir ?? './.rebill';
    mkdirSync(dir, { recursive: true });
    release = lockDataDir(dir);
    try {
      client = await PGlite.create(join(dir, 'pgdata'), { postgresqlconf: PGLITE_CONF, parsers: pgParsers });
    } catch (err) {
      release();
      throw err;
    }
  }
  const wrapped = countQueries(client, () => {
    count++;
  });
  const db = drizzle(wrapped, { schema }) as unknown as Db;
  return {
    db,
    kind: 'pglite',
    concurrent: false,
    pglite: client,
    statements: () => count,
    // in-process: one call, one answer
    flights: () => count,
    listen: async (channel, onNotify) => {
      await client.listen(channel, onNotify);
    },
    // Not through drizzle's execute, which reads the date and time types as text whatever the
    // client's parsers: the same statement and connection (the transaction's, when given), with
    // the raw path's parsers.
    rows: async <T>(q: SQLWrapper | string, on?: Executor) => {
      const query = typeof q === 'string' ? { sql: q, params: [] } : dialect.sqlToQuery(q.getSQL());
      const conn = on
        ? (on as unknown as { session: { client: Pick<PGlite, 'query'> } }).session.client
        : wrapped;
      return (await conn.query<T>(query.sql, query.params, { parsers: pgParsers })).rows;
    },
    close: async () => {
      await client.close();
      release();
    },
  };
}

function countQueries(client: PGlite, onQuery: () => void): PGlite {
  const query = client.query.bind(client);
  const exec = client.exec.bind(client);
  client.query = ((...args: Parameters<PGlite['query']>) => {
    onQuery();
    return query(...args);
  }) as PGlite['query'];
  client.exec = ((...args: Parameters<PGlite['exec']>) => {
    onQuery();
    return exec(...args);
  }) as PGlite['exec'];
  return client;
}

/**
 * PGlite is one process's database: a second process opening the same directory would
 * corrupt it. A pid file taken with O_EXCL makes the second one fail with a clear message.
 * The file holds the pid and, where /proc tells it, that process's start time: a pid the
 * system has since given to another program (a lock left by a killed rebill) is recognised as
 * stale and taken over instead of being reported as in use.
 */
function lockDataDir(dir: string): () => void {
  const file = join(dir, 'rebill.pid');
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(file, 'wx');
      writeFileSync(fd, `${process.pid} ${startTimeOf(process.pid) ?? ''}`.trim());
      closeSync(fd);
      const onExit = () => rmSync(file, { force: true });
      process.once('exit', onExit);
      return () => {
        process.off('exit', onExit);
        rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const [pidText, started] = readFileSync(file, 'utf8').trim().split(/\s+/);
      const pid = Number(pidText);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        const now = startTimeOf(pid);
        // Same pid, another start time: the process that took the lock is gone.
        const reused = started !== undefined && now !== null && now !== started;
        if (!reused)
          throw new DataDirInUseError(
            `the embedded database in ${dir} is in use by process ${pid}; PGlite allows one process at a time. ` +
              'Stop that process, or set DATABASE_URL to share a PostgreSQL server between processes. ' +
              `If process ${pid} is not rebill, the lock is stale: remove ${file}.`,
          );
      }
      rmSync(file, { force: true });
    }
  }
  throw new DataDirInUseError(`cannot lock ${dir}: another process took ${file} at the same moment`);
}

/** A process's start time in clock ticks since boot (Linux /proc), or null where unknown. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the command name, which is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
