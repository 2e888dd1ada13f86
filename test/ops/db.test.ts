import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { customers } from '../../src/db/schema.ts';
import { hasServer, serverSkipReason, type TestDatabase, testDatabase } from '../support/db.ts';

describe('database', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await testDatabase();
  });
  afterAll(async () => t?.dispose());

  it('has the migrated schema', async () => {
    await t.database.db.insert(customers).values({ ref: 'c-1' });
    const rows = await t.database.rows<{ n: number }>(sql`select count(*)::int as n from customers`);
    expect(rows[0]?.n).toBe(1);
  });

  it.skipIf(!hasServer)('migrates from two processes at once without racing', async () => {
    // Both handles point at an empty database of their own; the advisory lock serialises them.
    const url = t.url!.replace(/\/([^/]+)$/, '/$1_m');
    const admin = await createDatabase({ databaseUrl: t.url, maxConnections: 1 });
    const name = new URL(url).pathname.slice(1);
    await admin.rows(`create database ${name}`);
    await admin.close();
    const a = await createDatabase({ databaseUrl: url, maxConnections: 2 });
    const b = await createDatabase({ databaseUrl: url, maxConnections: 2 });
    await Promise.all([migrate(a), migrate(b)]);
    const rows = await a.rows<{ n: number }>(
      sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
    );
    expect(rows[0]?.n).toBeGreaterThan(0);
    await a.close();
    await b.close();
    const drop = await createDatabase({ databaseUrl: t.url, maxConnections: 1 });
    await drop.rows(`drop database ${name} with (force)`);
    await drop.close();
  });
  it.skipIf(hasServer)(`concurrent migration: ${serverSkipReason}`, () => {});
});

describe('PGlite data directory lock', () => {
  const lockFile = (dir: string) => join(dir, 'rebill.pid');
  const startTime = (pid: number) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  };

  it.skipIf(!existsSync('/proc/self/stat'))(
    'a lock naming a live process that took it is reported with its pid and the remedy; one whose pid was reused is taken over',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'rebill-lock-'));
      const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        const pid = holder.pid!;
        // the holder took the lock: same pid, same start time
        writeFileSync(lockFile(dir), `${pid} ${startTime(pid)}`);
        const err = await createDatabase({ dataDir: dir }).then(
          () => null,
          (e: Error) => e,
        );
        expect(err?.message).toContain(`in use by process ${pid}`);
        expect(err?.message).toContain(`remove ${lockFile(dir)}`);
        // the same pid now belongs to a process started at another time: the lock is stale
        writeFileSync(lockFile(dir), `${pid} 1`);
        const db = await createDatabase({ dataDir: dir });
        expect(readFileSync(lockFile(dir), 'utf8')).toContain(String(process.pid));
        await db.close();
        expect(existsSync(lockFile(dir))).toBe(false);
      } finally {
        holder.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
