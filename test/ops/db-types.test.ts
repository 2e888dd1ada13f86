import { count, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { auditLog, customers } from '../../src/db/schema.ts';
import { hasServer, type TestDatabase, testDatabase } from '../support/db.ts';

/**
 * Both drivers read a raw row with the same JS types (int8, count and sum as numbers,
 * timestamps as Dates, jsonb as values, nulls as null), and drizzle's typed queries still read
 * their columns right on both.
 */

const AT = new Date('2026-03-01T12:34:56.789Z');

/** What a value is, to compare across drivers: its JS type and its value. */
function shape(v: unknown): unknown {
  if (v === null) return 'null';
  if (v instanceof Date) return ['Date', v.toISOString()];
  if (Array.isArray(v)) return ['array', v.map(shape)];
  if (typeof v === 'object') return ['object', JSON.stringify(v)];
  return [typeof v, v];
}

function shapes(rows: Record<string, unknown>[]): unknown[] {
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, shape(v)])));
}

async function readings(database: Database) {
  await database.db.delete(auditLog);
  await database.db.delete(customers);
  const [customer] = await database.db
    .insert(customers)
    .values({ ref: 'types-1', name: null, createdAt: AT })
    .returning();
  await database.rows(sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason, detail, created_at)
    values ('charge', 9007199254740000, null, 'pending', 'types', ${JSON.stringify({ a: 1, b: [true, null, 'x'] })}::jsonb,
            ${AT}::timestamptz),
           ('charge', 2, 'pending', 'settled', 'types', null, ${AT.toISOString()}::timestamptz + interval '1 day')`);
  const expressions = await database.rows(sql`
    select 5::int8 as int8, null::int8 as int8_null, 7::int4 as int4, count(*) as count, sum(x) as sum,
           sum(x)::int8 as sum_int8, avg(x) as avg, 1.25::numeric as numeric, null::numeric as numeric_null,
           '2026-03-01 12:34:56.789+00'::timestamptz as timestamptz,
           '2026-03-01 14:34:56.789+02'::timestamptz as timestamptz_offset,
           '2026-03-01 12:34:56.789'::timestamp as timestamp, null::timestamptz as timestamptz_null,
           'infinity'::timestamptz as latest, array[1, 2]::int8[] as int8_array,
           array[3, null]::int4[] as int4_array, '{a,"b,c","q\\"x",NULL,"NULL",""}'::text[] as text_array,
           '{"k": [1, "two", null]}'::jsonb as jsonb, 'null'::jsonb as jsonb_null_value, null::jsonb as jsonb_null,
           true as bool, 'text' as text
      from (values (1::int8), (2::int8), (4::int8)) v(x)`);
  const table = await database.rows(
    sql`select id, entity_id, detail, created_at from audit_log order by entity_id desc`,
  );
  const grouped = await database.rows(sql`select entity_type, count(*) as n, sum(entity_id) as total,
      min(created_at) as first, max(created_at) as last from audit_log group by entity_type`);
  // The same in a transaction: its own connection, the same readings.
  const inTx = await database.db.transaction((tx) =>
    database.rows(sql`select created_at, entity_id from audit_log order by entity_id limit 1`, tx),
  );
  const prepared = await database.rows(
    sql`select created_at, entity_id from audit_log where entity_id = ${2} order by entity_id limit 1`,
    undefined,
    { prepare: true },
  );
  // drizzle's typed queries: columns through their own mapping, on the same client.
  const typed = await database.db.select().from(customers).where(eq(customers.id, customer!.id));
  const relational = await database.db.query.customers.findFirst({ where: eq(customers.ref, 'types-1') });
  const counted = await database.db.select({ n: count() }).from(auditLog);
  const typedAudit = await database.db
    .select({ entityId: auditLog.entityId, at: auditLog.at, detail: auditLog.detail })
    .from(auditLog)
    .orderBy(auditLog.entityId);
  // A Date read back goes out again as a parameter.
  const [first] = await database.rows<{ created_at: Date }>(
    sql`select created_at from audit_log order by created_at limit 1`,
  );
  const again = await database.rows(
    sql`select count(*) as n from audit_log where created_at = ${first!.created_at}`,
  );
  return {
    expressions: shapes(expressions),
    table: shapes(table.map(({ id: _, ...r }) => r)),
    ids: table.map((r) => typeof r.id),
    grouped: shapes(grouped),
    inTx: shapes(inTx),
    prepared: shapes(prepared),
    typed: shapes(typed.map(({ id: _, ...r }) => r)),
    relational: shapes(relational ? [{ ...relational, id: 0 }] : []),
    counted: shapes(counted),
    typedAudit: shapes(typedAudit),
    again: shapes(again),
  };
}

describe('raw rows have the same JS types on PostgreSQL and PGlite', () => {
  let pglite: Database;
  let server: TestDatabase | undefined;
  beforeAll(async () => {
    pglite = await createDatabase({ memory: true });
    await migrate(pglite);
    if (hasServer) server = await testDatabase({ maxConnections: 2 });
  });
  afterAll(async () => {
    await pglite?.close();
    await server?.dispose();
  });

  it('reads int8, count, sum and numeric as numbers, timestamps as Dates, jsonb as values, nulls as null (PGlite)', async () => {
    const r = await readings(pglite);
    expect(r.expressions).toEqual([
      {
        int8: ['number', 5],
        int8_null: 'null',
        int4: ['number', 7],
        count: ['number', 3],
        sum: ['number', 7],
        sum_int8: ['number', 7],
        avg: ['number', 7 / 3],
        numeric: ['number', 1.25],
        numeric_null: 'null',
        timestamptz: ['Date', '2026-03-01T12:34:56.789Z'],
        timestamptz_offset: ['Date', '2026-03-01T12:34:56.789Z'],
        // without a time zone: read as UTC, as drizzle reads such a column
        timestamp: ['Date', '2026-03-01T12:34:56.789Z'],
        timestamptz_null: 'null',
        latest: ['Date', new Date(8.64e15).toISOString()],
        int8_array: [
          'array',
          [
            ['number', 1],
            ['number', 2],
          ],
        ],
        int4_array: ['array', [['number', 3], 'null']],
        text_array: [
          'array',
          [['string', 'a'], ['string', 'b,c'], ['string', 'q"x'], 'null', ['string', 'NULL'], ['string', '']],
        ],
        jsonb: ['object', '{"k":[1,"two",null]}'],
        jsonb_null_value: 'null',
        jsonb_null: 'null',
        bool: ['boolean', true],
        text: ['string', 'text'],
      },
    ]);
    expect(r.table).toEqual([
      {
        entity_id: ['number', 9007199254740000],
        detail: ['object', '{"a":1,"b":[true,null,"x"]}'],
        created_at: ['Date', AT.toISOString()],
      },
      {
        entity_id: ['number', 2],
        detail: 'null',
        created_at: ['Date', '2026-03-02T12:34:56.789Z'],
      },
    ]);
    expect(r.ids).toEqual(['number', 'number']);
    expect(r.grouped).toEqual([
      {
        entity_type: ['string', 'charge'],
        n: ['number', 2],
        total: ['number', 9007199254740002],
        first: ['Date', AT.toISOString()],
        last: ['Date', '2026-03-02T12:34:56.789Z'],
      },
    ]);
    expect(r.inTx).toEqual([{ created_at: ['Date', '2026-03-02T12:34:56.789Z'], entity_id: ['number', 2] }]);
    expect(r.prepared).toEqual(r.inTx);
    expect(r.typed).toEqual([
      { ref: ['string', 'types-1'], name: 'null', createdAt: ['Date', AT.toISOString()] },
    ]);
    expect(r.relational).toEqual([
      { id: ['number', 0], ref: ['string', 'types-1'], name: 'null', createdAt: ['Date', AT.toISOString()] },
    ]);
    expect(r.counted).toEqual([{ n: ['number', 2] }]);
    expect(r.typedAudit).toEqual([
      { entityId: ['number', 2], at: ['Date', '2026-03-02T12:34:56.789Z'], detail: 'null' },
      {
        entityId: ['number', 9007199254740000],
        at: ['Date', AT.toISOString()],
        detail: ['object', '{"a":1,"b":[true,null,"x"]}'],
      },
    ]);
    expect(r.again).toEqual([{ n: ['number', 1] }]);
  });

  it('an int8 or a whole numeric past 2^53 is an error, not a rounded number; the connection goes on', async () => {
    for (const database of [pglite, server?.database]) {
      if (!database) continue;
      await expect(database.rows(sql`select 9007199254740993::int8 as big`)).rejects.toThrow();
      await expect(
        database.rows(sql`select sum(x) as big from (values (9007199254740000::int8), (1000::int8)) v(x)`),
      ).rejects.toThrow();
      expect(await database.rows(sql`select 9007199254740993::int8::text as big`)).toEqual([
        { big: '9007199254740993' },
      ]);
    }
  });

  it.skipIf(!hasServer)('reads the same on PostgreSQL as on PGlite', async () => {
    const onServer = await readings(server!.database);
    const onPglite = await readings(pglite);
    expect(onServer).toEqual(onPglite);
  });
});
