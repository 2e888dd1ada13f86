import { execFile } from 'node:child_process';
import { accessSync, appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Throwaway PostgreSQL clusters of a test's own (initdb, pg_basebackup, pg_ctl as the
 * `postgres` user, in a temporary directory, on free ports): a primary and its standbys, to
 * fail over for real. Never the server a test run shares on 5432.
 */

const run = promisify(execFile);
export const PG_BIN = '/usr/lib/postgresql/15/bin';

/** Why clusters cannot be made here, or undefined when they can. */
export function clusterSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root, to run initdb and pg_ctl as the postgres user';
  for (const tool of ['initdb', 'pg_ctl', 'pg_basebackup']) {
    try {
      accessSync(join(PG_BIN, tool));
    } catch {
      return `needs ${join(PG_BIN, tool)}`;
    }
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

const asPostgres = (tool: string, args: string[]) =>
  run('runuser', ['-u', 'postgres', '--', join(PG_BIN, tool), ...args], { timeout: 60_000 });

export interface Cluster {
  port: number;
  dir: string;
  start(): Promise<void>;
  /** `immediate`: a crash, nothing flushed that was not already. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  promote(): Promise<void>;
}

function cluster(root: string, name: string, port: number): Cluster {
  const dir = join(root, name);
  return {
    port,
    dir,
    start: async () => {
      await asPostgres('pg_ctl', ['-D', dir, '-l', join(root, `${name}.log`), '-w', '-t', '30', 'start']);
    },
    stop: async (mode = 'fast') => {
      await asPostgres('pg_ctl', ['-D', dir, '-m', mode, '-w', 'stop']);
    },
    promote: async () => {
      await asPostgres('pg_ctl', ['-D', dir, '-w', 'promote']);
    },
  };
}

export interface Pair {
  primary: Cluster;
  standby: Cluster;
  /** A URL naming both hosts, primary first, for `database`. */
  url(database: string): string;
  /** A URL of one cluster alone (for the test's own reads). */
  urlOf(c: Cluster, database: string): string;
  dispose(): Promise<void>;
}

/**
 * A primary and a streaming standby taken from it with pg_basebackup, both running.
 * `database` is created on the primary before the backup, so the standby has it too.
 */
export async function startPair(database: string, setup: (url: string) => Promise<void>): Promise<Pair> {
  const root = mkdtempSync(join(tmpdir(), 'rebill-failover-'));
  await run('chown', ['postgres:postgres', root]);
  const primary = cluster(root, 'primary', await freePort());
  const standby = cluster(root, 'standby', await freePort());
  await asPostgres('initdb', ['-D', primary.dir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  appendFileSync(
    join(primary.dir, 'postgresql.conf'),
    [
      `port = ${primary.port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${root}'`,
      'wal_level = replica',
      'max_wal_senders = 4',
      // Speed: a failed primary is never started again here, so its own flushes do not matter;
      // what reaches the standby (streamed WAL) is what the tests are about.
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'shared_buffers = 32MB',
      'max_connections = 60',
      '',
    ].join('\n'),
  );
  await primary.start();
  const urlOf = (c: Cluster, db: string) => `postgres://postgres@127.0.0.1:${c.port}/${db}`;
  await asPostgres('createdb', ['-h', '127.0.0.1', '-p', String(primary.port), database]);
  await setup(urlOf(primary, database));
  await asPostgres('pg_basebackup', [
    '-h',
    '127.0.0.1',
    '-p',
    String(primary.port),
    '-U',
    'postgres',
    '-D',
    standby.dir,
    '-R',
    '-X',
    'stream',
    // An immediate checkpoint: the default spreads it over minutes.
    '-c',
    'fast',
    '--no-sync',
  ]);
  appendFileSync(join(standby.dir, 'postgresql.conf'), `port = ${standby.port}\n`);
  await standby.start();
  return {
    primary,
    standby,
    url: (db) =>
      `postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/${db}?target_session_attrs=primary`,
    urlOf,
    dispose: async () => {
      for (const c of [primary, standby]) await c.stop('immediate').catch(() => {});
      rmSync(root, { recursive: true, force: true });
    },
  };
}
