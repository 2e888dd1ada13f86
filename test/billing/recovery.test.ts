import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { createRun, markInterruptedRuns, runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { num } from '../../src/db/values.ts';
import { requestHash } from '../../src/http/idempotency.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { startWorld, type World } from '../support/world.ts';

const T = new Date('2027-03-01T10:00:00Z');

/** What a worker or an admin server killed mid-way leaves behind, and how the next one recovers it. */
describe('recovery after a process died mid-way', () => {
  let w: World;
  let app: App;
  let server: AdminServer;
  let url: string;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: 'tok' } });
    app = await w.app(T);
    server = await createAdminServer({ ctx: app, runner: createRunner(app) });
    url = await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    await server?.close();
    await w?.close();
  });

  const statusOf = async (id: number) =>
    String((await w.t.database.rows(sql`select status from billing_runs where id = ${id}`))[0]?.status);

  it('a run whose worker is gone is marked interrupted by the next run; a live one is left running', async () => {
    const dead = await createRun(app, { asOf: T, trigger: 'cli' });
    const live = await createRun(app, { asOf: T, trigger: 'cli' });
    // the dead one stopped beating an hour ago (its process was killed); the live one just beat
    await w.t.database.rows(
      sql`update billing_runs set heartbeat_at = now() - interval '1 hour' where id = ${dead}`,
    );
    const next = await runBilling(app, { asOf: T, trigger: 'test' });
    expect(next.status).toBe('completed');
    expect(await statusOf(dead)).toBe('interrupted');
    expect(await statusOf(live)).toBe('running');
    const row = await w.t.database.rows(sql`select error, finished_at from billing_runs where id = ${dead}`);
    expect(String(row[0]?.error)).toMatch(/no heartbeat since/);
    expect(row[0]?.finished_at).not.toBeNull();
    // nothing else is stale: the live run keeps running
    expect(await markInterruptedRuns(app)).toBe(0);
  });

  it('a run leaves no lease behind', async () => {
    const v = await w.verify();
    await createMandate(app, {
      customerRef: 'rec-1',
      intent: 'subscription',
      amount: 500,
      currency: 'GBP',
      narrative: 'Recovery',
      interval: '1 month',
      start: T,
      credential: { link: v.href },
    });
    await runBilling(app, { asOf: T, trigger: 'test', followSettlements: true });
    const leased = await w.t.database.rows(
      sql`select count(*)::int as n from charges where lease_owner = ${app.workerId}`,
    );
    expect(num(leased[0]?.n)).toBe(0);
  });

  async function post(key: string, body: unknown) {
    const res = await request(`${url}/v1/mandates`, {
      method: 'POST',
      headers: { authorization: 'Bearer tok', 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
    });
    return {
      status: res.statusCode,
      body: (await res.body.json()) as { id?: number; error?: { code: string } },
    };
  }

  it('an Idempotency-Key whose request died mid-way is taken over once its lease ran out, and runs once', async () => {
    const v = await w.verify();
    const body = {
      customerRef: 'idem-dead',
      intent: 'subscription',
      amount: 700,
      currency: 'GBP',
      narrative: 'Idempotent',
      interval: '1 month',
      credential: { link: v.href },
    };
    // A server killed while handling the first request left its claim: no response, lease held.
    const hash = requestHash('POST', '/v1/mandates', body);
    await w.t.database.rows(sql`insert into idempotency_keys (key, method, path, request_hash, locked_until)
      values ('k-dead', 'POST', '/v1/mandates', ${hash}, now() + interval '1 minute')`);
    // within the lease the first request may still be running: 409
    expect((await post('k-dead', body)).body.error?.code).toBe('idempotency_in_progress');
    // once it ran out, the retry runs the request ...
    await w.t.database.rows(
      sql`update idempotency_keys set locked_until = now() - interval '1 second' where key = 'k-dead'`,
    );
    const first = await post('k-dead', body);
    expect(first.status).toBe(201);
    // ... once: the next retry is the stored answer, and there is one mandate
    const again = await post('k-dead', body);
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    const n = await w.t.database.rows(
      sql`select count(*)::int as n from mandates m join customers c on c.id = m.customer_id where c.ref = 'idem-dead'`,
    );
    expect(num(n[0]?.n)).toBe(1);
    // a different request with the dead key is still refused
    expect((await post('k-dead', { ...body, amount: 701 })).status).toBe(422);
  });
});
