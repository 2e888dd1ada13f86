import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import type { Database } from '../../src/db/client.ts';

/** Clock ticks per second of /proc's CPU times (CLK_TCK, 100 on every Linux the bench runs on). */
const TICKS_PER_SECOND = 100;

/** User + system CPU a process has used, in ms, from /proc/<pid>/stat; null when it is gone or not Linux. */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/**
 * The CPU of a database's PostgreSQL backends, from /proc (the server runs on this machine):
 * `snapshot()` before, `spentSince(snapshot)` after. A backend that started in between counts
 * from zero; one that ended in between is lost (the pool keeps its connections for the run).
 */
export function backendCpu(database: Database, name: string) {
  const read = async (): Promise<Map<number, number>> => {
    const rows = await database.rows<{ pid: number }>(
      sql`select pid from pg_stat_activity where datname = ${name}`,
    );
    const out = new Map<number, number>();
    for (const r of rows) {
      const ms = processCpuMs(Number(r.pid));
      if (ms !== null) out.set(Number(r.pid), ms);
    }
    return out;
  };
  return {
    snapshot: read,
    async spentSince(before: Map<number, number>): Promise<{ ms: number; backends: number }> {
      const now = await read();
      let ms = 0;
      for (const [pid, cpu] of now) ms += cpu - (before.get(pid) ?? 0);
      return { ms, backends: now.size };
    },
  };
}
