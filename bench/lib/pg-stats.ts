import postgres from 'postgres';

/**
 * What PostgreSQL wrote for a run, read on a connection of the bench's own (so none of it is
 * counted as rebill's statements): the server's WAL (its insert position, `pg_stat_wal`), the run database's row
 * versions per table (`pg_stat_user_tables`), the index entries those imply, the indexes' growth
 * on disk, and, where the server loads `pg_stat_statements`, the run database's statements.
 *
 * The WAL is the whole server's: on a server other work writes to at the same time, the
 * WAL figure includes theirs. Run the bench on a cluster of its own for a true per-charge figure
 * (docs/benchmark.md, "A cluster of its own").
 */

interface TableCounts {
  ins: number;
  upd: number;
  hot: number;
  /** Indexes on the table (partial ones included). */
  indexes: number;
}

export interface PgSnapshot {
  walBytes: number;
  walRecords: number;
  walFpi: number;
  tables: Map<string, TableCounts>;
  indexBytes: number;
}

/** Per charge, what the run made PostgreSQL write. */
export interface PgWrites {
  /** WAL bytes the server wrote during the run / charges (the WAL insert position; the whole server's). */
  walBytesPerCharge: number;
  walRecordsPerCharge: number;
  /** Full-page images in that WAL (a checkpoint during the run adds them) / charges. */
  walFpiPerCharge: number;
  /**
   * Index entries written per charge, estimated from the row versions: every insert and every
   * update that was not HOT adds an entry to each index of its table. A partial index is counted
   * as if every version matched it, so this is an upper bound where a table has one.
   */
  indexTuplesPerCharge: number;
  /** Growth of the run database's indexes on disk / charges. */
  indexBytesPerCharge: number;
  /** Row versions per charge: inserted, updated, and of those updated, HOT (no index entry). */
  tupleInsertsPerCharge: number;
  tupleUpdatesPerCharge: number;
  hotUpdatesPerCharge: number;
  /** The same, table by table (tables the run did not write are left out). */
  tables: Record<string, { ins: number; upd: number; hot: number; indexes: number }>;
  /** With pg_stat_statements: the run database's statements, most backend time first, per charge. */
  statements: StatementCost[] | null;
}

export interface StatementCost {
  /** The statement's first 120 characters, whitespace collapsed. */
  query: string;
  callsPerCharge: number;
  /** Backend execution time per charge, ms (wall time of the backend: inflated alike on a loaded machine). */
  execMsPerCharge: number;
  rowsPerCharge: number;
  walBytesPerCharge: number;
}

/**
 * A backend hands its table and WAL counters to the shared statistics when it goes idle, at most
 * once a second, and an idle one within 10 s (PostgreSQL 15's PGSTAT_IDLE_INTERVAL): counters are
 * read after that long with nothing running, so every statement before is in them.
 */
const FLUSH_MS = 11_000;

export function pgStats(url: string) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  let statementsOn = false;
  const snapshot = async (): Promise<PgSnapshot> => {
    // the statistics collector answers from a cached snapshot within a transaction: ask afresh
    await new Promise((r) => setTimeout(r, FLUSH_MS));
    await sql`select pg_stat_clear_snapshot()`;
    // bytes from the WAL's insert position (exact at once); records and full pages from pg_stat_wal
    const wal = await sql`select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8 as b,
      wal_records::float8 as r, wal_fpi::float8 as f from pg_stat_wal`;
    const rows = await sql<{ relname: string; ins: number; upd: number; hot: number; indexes: number }[]>`
      select t.relname, t.n_tup_ins::float8 as ins, t.n_tup_upd::float8 as upd, t.n_tup_hot_upd::float8 as hot,
             (select count(*) from pg_index i where i.indrelid = t.relid)::int as indexes
        from pg_stat_user_tables t`;
    const ix =
      await sql`select coalesce(sum(pg_relation_size(indexrelid)), 0)::float8 as b from pg_stat_user_indexes`;
    return {
      walBytes: Number(wal[0]?.b ?? 0),
      walRecords: Number(wal[0]?.r ?? 0),
      walFpi: Number(wal[0]?.f ?? 0),
      tables: new Map(
        rows.map((r) => [r.relname, { ins: r.ins, upd: r.upd, hot: r.hot, indexes: r.indexes }]),
      ),
      indexBytes: Number(ix[0]?.b ?? 0),
    };
  };
  return {
    /** Start counting: snapshot the counters, and reset this database's pg_stat_statements where loaded. */
    async start(): Promise<PgSnapshot> {
      try {
        await sql`create extension if not exists pg_stat_statements`;
        await sql`select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)`;
        statementsOn = true;
      } catch {
        statementsOn = false; // not in shared_preload_libraries: no per-statement figures
      }
      return snapshot();
    },
    async since(before: PgSnapshot, charges: number): Promise<PgWrites> {
      const after = await snapshot();
      const per = (n: number) => (charges === 0 ? 0 : n / charges);
      const tables: PgWrites['tables'] = {};
      let ins = 0;
      let upd = 0;
      let hot = 0;
      let indexTuples = 0;
      for (const [name, a] of after.tables) {
        const b = before.tables.get(name) ?? { ins: 0, upd: 0, hot: 0, indexes: a.indexes };
        const d = { ins: a.ins - b.ins, upd: a.upd - b.upd, hot: a.hot - b.hot };
        if (d.ins === 0 && d.upd === 0) continue;
        tables[name] = { ins: per(d.ins), upd: per(d.upd), hot: per(d.hot), indexes: a.indexes };
        ins += d.ins;
        upd += d.upd;
        hot += d.hot;
        indexTuples += (d.ins + d.upd - d.hot) * a.indexes;
      }
      let statements: StatementCost[] | null = null;
      if (statementsOn) {
        const rows = await sql<{ query: string; calls: number; ms: number; rows: number; wal: number }[]>`
          select query, calls::float8 as calls, total_exec_time::float8 as ms, rows::float8 as rows,
                 wal_bytes::float8 as wal
            from pg_stat_statements
           where dbid = (select oid from pg_database where datname = current_database())
             and query not like '%pg_stat%'
           order by total_exec_time desc limit 15`;
        statements = rows.map((r) => ({
          query: r.query.replace(/\s+/g, ' ').slice(0, 120),
          callsPerCharge: per(r.calls),
          execMsPerCharge: per(r.ms),
          rowsPerCharge: per(r.rows),
          walBytesPerCharge: per(r.wal),
        }));
      }
      return {
        walBytesPerCharge: per(after.walBytes - before.walBytes),
        walRecordsPerCharge: per(after.walRecords - before.walRecords),
        walFpiPerCharge: per(after.walFpi - before.walFpi),
        indexTuplesPerCharge: per(indexTuples),
        indexBytesPerCharge: per(after.indexBytes - before.indexBytes),
        tupleInsertsPerCharge: per(ins),
        tupleUpdatesPerCharge: per(upd),
        hotUpdatesPerCharge: per(hot),
        tables,
        statements,
      };
    },
    close: () => sql.end(),
  };
}
