import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, openApp } from '../../src/app.ts';
import { createRunner, type Runner } from '../../src/billing/run/runner.ts';
import { fixedClock } from '../../src/clock.ts';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { isDatabaseUnavailable } from '../../src/db/unavailable.ts';
import { ConnectionError } from '../../src/gateways/errors.ts';
import { errorResponse } from '../../src/http/errors.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { dueMandates } from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { type DatabaseProxy, databaseProxy } from '../support/outage.ts';
import { at } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

const T = at('2026-07-01T09:00:00Z');
const TOKEN = 'tok-outage-0123456789';

/**
 * The database goes away under a running rebill: through a proxy this file closes, never the
 * server others share. The API answers 503 `database_unavailable` with Retry-After, within the
 * connect timeout, on every kind of route; an export never starts its 200 first; a run that lost
 * its database ends `interrupted` once the database is back.
 */
describe.skipIf(!hasServer)('a database outage', () => {
  let w: World;
  let proxy: DatabaseProxy;
  let database: Database;
  let app: App;
  let runner: Runner;
  let server: AdminServer;
  let base: string;
  let mandateId: number;
  beforeAll(async () => {
    w = await startWorld({
      sandbox: { latencyMs: 150 },
      env: {
        REBILL_ADMIN_TOKENS: TOKEN,
        REBILL_DB_CONNECT_TIMEOUT_MS: '1000',
        REBILL_CONCURRENCY: '1',
        REBILL_BATCH_SIZE: '2',
      },
    });
    proxy = await databaseProxy(w.t.url!);
    database = await createDatabase({
      databaseUrl: proxy.url,
      connectTimeoutMs: w.config.databaseConnectTimeoutMs,
      maxConnections: 4,
    });
    app = await openApp(w.config, { database, clock: fixedClock(T), logger: silentLogger });
    runner = createRunner(app);
    server = await createAdminServer({ ctx: app, runner });
    base = await server.listen('127.0.0.1:0');
    mandateId = (await dueMandates(w, await w.app(T), { tag: 'outage', n: 8, at: T }))[0]!.id;
  });
  afterAll(async () => {
    await server?.close();
    await app?.close();
    await database?.close();
    await proxy?.close();
    await w?.close();
  });

  async function call(method: string, path: string, body?: unknown) {
    const started = Date.now();
    const res = await request(`${base}${path}`, {
      method: method as 'GET',
      headers: {
        authorization: `Bearer ${TOKEN}`,
        'idempotency-key': `outage-${method}-${path}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, ms: Date.now() - started };
  }

  const routes = (): [string, string, unknown?][] => [
    ['GET', '/v1/mandates'],
    ['GET', `/v1/mandates/${mandateId}`],
    ['PATCH', `/v1/mandates/${mandateId}`, { narrative: 'Outage' }],
    ['POST', `/v1/mandates/${mandateId}/pause`, {}],
    ['DELETE', `/v1/mandates/${mandateId}/changes/1`],
    ['GET', '/v1/runs'],
    ['GET', '/v1/exports/charges?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z'],
  ];

  async function expectUnavailable(method: string, path: string, body?: unknown) {
    const res = await call(method, path, body);
    expect({ route: `${method} ${path}`, status: res.status }).toEqual({
      route: `${method} ${path}`,
      status: 503,
    });
    expect(JSON.parse(res.text)).toEqual({
      error: { code: 'database_unavailable', message: 'the database cannot be reached: retry shortly' },
    });
    expect(res.headers['retry-after']).toBe('5');
    return res.ms;
  }

  it('answers every kind of route 503 database_unavailable with Retry-After, within a second or two, and recovers', async () => {
    expect((await call('GET', '/v1/mandates')).status).toBe(200);
    await proxy.cut();
    try {
      // Three rounds: each failed connection lengthens postgres.js's pause before the next one
      // (up to 20 s unbounded); every request must still fail fast.
      const took: number[] = [];
      for (let round = 0; round < 3; round++)
        for (const [method, path, body] of routes()) took.push(await expectUnavailable(method, path, body));
      expect(Math.max(...took)).toBeLessThan(2000);
      const health = await call('GET', '/healthz');
      expect([health.status, JSON.parse(health.text).error.code, health.headers['retry-after']]).toEqual([
        503,
        'database_unavailable',
        '5',
      ]);
    } finally {
      await proxy.restore();
    }
    await expect.poll(async () => (await call('GET', '/healthz')).status, { timeout: 5000 }).toBe(200);
    const list = await call('GET', '/v1/mandates');
    expect(list.status).toBe(200);
    // The export is whole once the database is back: its header and its rows.
    const csv = await call('GET', '/v1/exports/mandates?from=2026-01-01T00:00:00Z&to=2030-01-01T00:00:00Z');
    expect(csv.status).toBe(200);
    expect(csv.text.split('\n')[0]).toMatch(/^id,customer_ref,/);
  });

  it('documents the 503 on every route that reads the database', () => {
    const paths = (server.openapi as { paths: Record<string, Record<string, { responses: object }>> }).paths;
    for (const [path, ops] of Object.entries(paths))
      for (const [method, op] of Object.entries(ops))
        expect({ route: `${method} ${path}`, has503: '503' in op.responses }).toEqual({
          route: `${method} ${path}`,
          has503: path !== '/openapi.json',
        });
    const patch = paths['/v1/mandates/{id}']!.patch!.responses as Record<string, { headers?: object }>;
    expect(patch['503']!.headers).toHaveProperty('Retry-After');
  });

  it('gives up on a database host that accepts but never answers after REBILL_DB_CONNECT_TIMEOUT_MS', async () => {
    expect((await call('GET', '/v1/runs')).status).toBe(200);
    proxy.stall();
    try {
      // The pool's open connections end with the stall; the next request has to connect.
      await expectUnavailable('GET', '/v1/runs');
      const ms = await expectUnavailable('GET', '/v1/mandates');
      // 1 s connect timeout (postgres.js's default is 30 s), plus at most one reconnect pause.
      expect(ms).toBeGreaterThanOrEqual(900);
      expect(ms).toBeLessThan(3000);
    } finally {
      await proxy.restore();
    }
  });

  it('ends a run whose worker lost the database as interrupted once the database is back', async () => {
    const runId = await runner.start({ asOf: T, trigger: 'test' });
    // The run is sending (one at a time, 150 ms each) when the database goes away.
    await expect
      .poll(() => w.sandbox.ledger().filter((e) => e.op === 'authorize').length, { timeout: 10_000 })
      .toBeGreaterThan(0);
    await proxy.cut();
    try {
      await expect.poll(() => runner.active(), { timeout: 10_000 }).toBe(0);
    } finally {
      await proxy.restore();
    }
    const row = async () =>
      (
        await w.t.database.rows<{ status: string; error: string | null }>(
          sql`select status, error from billing_runs where id = ${runId}`,
        )
      )[0];
    await expect.poll(async () => (await row())?.status, { timeout: 5000 }).toBe('interrupted');
    expect((await row())?.error).toMatch(/^its worker lost the database: /);
  });

  it('tells a database that cannot be reached from a statement that is wrong', async () => {
    // An administrator's pg_terminate_backend mid-statement, on PostgreSQL itself.
    const victim = postgres(w.t.url!, { max: 1, onnotice: () => {} });
    try {
      const [me] = await victim<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const sleeping = victim`select pg_sleep(10)`.catch((e: unknown) => e);
      await expect
        .poll(
          async () =>
            (
              await w.t.database.rows(
                sql`select 1 from pg_stat_activity where pid = ${me!.pid} and wait_event = 'PgSleep'`,
              )
            ).length,
        )
        .toBe(1);
      await w.t.database.rows(sql`select pg_terminate_backend(${me!.pid})`);
      const terminated = await sleeping;
      expect(isDatabaseUnavailable(terminated)).toBe(true);
      expect(errorResponse(terminated).status).toBe(503);
    } finally {
      await victim.end({ timeout: 1 });
    }
    // A wrong statement, wrapped by drizzle as every failed query is, stays a 500.
    const wrong = await database.rows(sql`select * from no_such_table`).catch((e: unknown) => e);
    expect(isDatabaseUnavailable(wrong)).toBe(false);
    expect(errorResponse(wrong).status).toBe(500);
    // The server's own words for "not now": connection exceptions, shutdowns, no slot free.
    for (const code of ['08006', '08001', '57P01', '57P03', '53300'])
      expect(isDatabaseUnavailable(new postgres.PostgresError({ code } as never))).toBe(true);
    for (const code of ['23505', '40001', '57014', '42P01'])
      expect(isDatabaseUnavailable(new postgres.PostgresError({ code } as never))).toBe(false);
    // A gateway's refused connection is the gateway's, whatever its cause says.
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const gateway = new ConnectionError('worldpay unreachable', {
      reachedServer: false,
      code: 'ECONNREFUSED',
      cause: refused,
    });
    expect(isDatabaseUnavailable(gateway)).toBe(false);
    expect(isDatabaseUnavailable(refused)).toBe(true);
  });
});

describe.skipIf(hasServer)('a database outage', () => {
  it.skip(`through a proxy to PostgreSQL: ${serverSkipReason}`, () => {});
});
