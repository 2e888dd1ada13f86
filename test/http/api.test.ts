import { Ajv2020 } from 'ajv/dist/2020.js';
import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { listMandates, parseInput } from '../../src/billing/mandates/index.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { ConfigError } from '../../src/config.ts';
import { clientKey, createAuthLockout, GLOBAL_FAILURE_FACTOR } from '../../src/http/auth.ts';
import { pruneIdempotencyKeys } from '../../src/http/idempotency.ts';
import { adminRoutes } from '../../src/http/routes/index.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { createMetrics } from '../../src/metrics.ts';
import { addFormats } from '../support/ajv.ts';
import { startWorld, type World } from '../support/world.ts';

const T0 = new Date('2026-06-01T09:00:00Z');
const T1 = new Date('2026-06-01T10:00:00Z');
const TOKEN = 'tok-a-0123456789';
const PAN = '4444333322221111';

/** Whatever JSON.parse gives: the tests read response bodies field by field. */
type Json = ReturnType<typeof JSON.parse>;

interface Res {
  status: number;
  body: Json;
  headers: Record<string, string | string[] | undefined>;
}

describe('admin HTTP API', () => {
  let w: World;
  let app: App;
  let server: AdminServer;
  let url: string;
  beforeAll(async () => {
    w = await startWorld({
      env: {
        REBILL_ADMIN_TOKENS: `${TOKEN},tok-b-9876543210`,
        // the route-by-route auth test below fails on purpose about 60 times from one address
        REBILL_ADMIN_AUTH_FAILURES_PER_MINUTE: '1000',
      },
    });
    app = await w.app(T1);
    server = await createAdminServer({
      ctx: app,
      runner: createRunner(app),
      metrics: createMetrics(w.t.database),
    });
    url = await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    await server?.close();
    await w?.close();
  });

  async function call(
    method: string,
    path: string,
    opts: { body?: unknown; token?: string | null; key?: string } = {},
  ): Promise<Res> {
    const token = opts.token === undefined ? TOKEN : opts.token;
    const res = await request(`${url}${path}`, {
      method: method as 'GET',
      headers: {
        ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(opts.key ? { 'idempotency-key': opts.key } : {}),
      },
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    });
    const text = await res.body.text();
    let body: Json = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.statusCode, body, headers: res.headers };
  }

  const operations = () => {
    const doc = server.openapi as {
      paths: Record<string, Record<string, { security?: unknown[] }>>;
      security: unknown[];
    };
    return Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({
        path,
        method: method.toUpperCase(),
        bearer: op.security === undefined || op.security.length > 0,
      })),
    );
  };

  it('the OpenAPI document describes every registered route, and only those', async () => {
    const res = await call('GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.1.0');
    const documented = operations()
      .map((o) => `${o.method} ${o.path}`)
      .sort();
    const registered = server
      .registered()
      .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z]+)/g, '{$1}')}`)
      .sort();
    expect(documented).toEqual(registered);
    expect(registered.length).toBeGreaterThan(20);
    expect(
      res.body.paths['/v1/mandates'].post.requestBody.content['application/json'].schema.properties,
    ).toHaveProperty('customerRef');
  });

  it("the OpenAPI document passes redocly's recommended rules, and every example fits its schema and its route", async () => {
    const { createConfig, lintFromString } = await import('@redocly/openapi-core');
    const config = await createConfig({ extends: ['recommended'] });
    const problems = await lintFromString({
      source: JSON.stringify(server.openapi),
      absoluteRef: '/openapi.json',
      config,
    });
    expect(problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} ${p.location[0]?.pointer}`)).toEqual(
      [],
    );

    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    const routes = adminRoutes(app, createRunner(app));
    const doc = server.openapi as {
      paths: Record<
        string,
        Record<
          string,
          {
            requestBody?: {
              content: Record<string, { schema: object; examples?: Record<string, { value: unknown }> }>;
            };
          }
        >
      >;
    };
    let checked = 0;
    for (const [path, ops] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(ops)) {
        const body = op.requestBody?.content['application/json'];
        for (const [name, ex] of Object.entries(body?.examples ?? {})) {
          const validate = ajv.compile(body!.schema);
          expect(validate(ex.value), `${method} ${path} ${name}: ${ajv.errorsText(validate.errors)}`).toBe(
            true,
          );
          const route = routes.find(
            (r) => r.method === method.toUpperCase() && r.url.replace(/:([A-Za-z]+)/g, '{$1}') === path,
          )!;
          expect(() => parseInput(route.body!, ex.value), `${method} ${path} ${name}`).not.toThrow();
          checked++;
        }
      }
    expect(checked).toBeGreaterThanOrEqual(15);
  });

  it('a client that keeps failing authentication is answered 429 with Retry-After, even with the right token', async () => {
    const locked = await createAdminServer({
      ctx: { ...app, config: { ...app.config, admin: { ...app.config.admin, authFailuresPerMinute: 3 } } },
      runner: createRunner(app),
    });
    const lockedUrl = await locked.listen('127.0.0.1:0');
    try {
      const get = async (token: string) => {
        const res = await request(`${lockedUrl}/v1/mandates`, {
          headers: { authorization: `Bearer ${token}` },
        });
        await res.body.text();
        return { status: res.statusCode, retryAfter: res.headers['retry-after'] };
      };
      expect((await get(TOKEN)).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await get('guess')).status).toBe(403);
      const blocked = await get('guess');
      expect(blocked.status).toBe(429);
      expect(Number(blocked.retryAfter)).toBeGreaterThan(0);
      expect((await get(TOKEN)).status).toBe(429);
    } finally {
      await locked.close();
    }
  });

  it('an expired session cookie or a missing token is not a guess; only a wrong token counts', async () => {
    const locked = await createAdminServer({
      ctx: { ...app, config: { ...app.config, admin: { ...app.config.admin, authFailuresPerMinute: 3 } } },
      runner: createRunner(app),
    });
    const lockedUrl = await locked.listen('127.0.0.1:0');
    try {
      const get = async (headers: Record<string, string>) => {
        const res = await request(`${lockedUrl}/v1/mandates`, { headers });
        await res.body.text();
        return res.statusCode;
      };
      // an operator's console tab, reloaded 21 times after its session expired
      for (let i = 0; i < 21; i++)
        expect(await get({ cookie: 'rebill_session=expired-session-id' })).toBe(401);
      for (let i = 0; i < 5; i++) expect(await get({})).toBe(401);
      expect(await get({ authorization: `Bearer ${TOKEN}` })).toBe(200);
      for (let i = 0; i < 3; i++) expect(await get({ authorization: 'Bearer guess' })).toBe(403);
      expect(await get({ authorization: `Bearer ${TOKEN}` })).toBe(429);
    } finally {
      await locked.close();
    }
  });

  it('counts IPv6 clients per /64, and all clients together within a global bound', () => {
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(clientKey('203.0.113.9')).toBe('203.0.113.9');
    const lockout = createAuthLockout(3);
    const t = 1_000_000;
    // three guesses from three addresses of one /64: the fourth address is blocked too
    for (const host of ['1', '2', 'ffff:1']) lockout.failed(`2001:db8:1:2::${host}`, t);
    expect(lockout.blockedFor('2001:db8:1:2:9::9', t + 1)).toBe(60_000 - 1);
    expect(lockout.blockedFor('2001:db8:1:3::1', t + 1)).toBe(0);
    expect(lockout.allBlockedFor(t + 1)).toBe(0);
    // guesses spread over many /64s (two each, under the per-client limit) meet the global bound
    const spread = 3 * GLOBAL_FAILURE_FACTOR - 3;
    for (let i = 0; i < spread; i++) lockout.failed(`2001:db8:${(i >> 1).toString(16)}:ff::1`, t + 2);
    expect(lockout.blockedFor('2001:db8:0:ff::1', t + 3)).toBe(0);
    expect(lockout.allBlockedFor(t + 3)).toBe(60_000 - 3);
    // and a minute later everyone may try again
    expect(lockout.allBlockedFor(t + 60_000)).toBe(0);
    expect(lockout.blockedFor('2001:db8:1:2::1', t + 60_000)).toBe(0);
  });

  it('every route but /healthz and the webhook rejects a missing (401) and a wrong (403) token', async () => {
    const ops = operations();
    const open = ops.filter((o) => !o.bearer).map((o) => o.path);
    expect(open.sort()).toEqual(['/healthz', '/webhooks/worldpay']);
    for (const o of ops.filter((x) => x.bearer)) {
      const path = o.path.replace(/\{[A-Za-z]+\}/g, '1');
      const body = o.method === 'POST' ? {} : undefined;
      const missing = await call(o.method, path, { token: null, body });
      expect([o.path, missing.status, missing.body.error?.code]).toEqual([o.path, 401, 'unauthorized']);
      const wrong = await call(o.method, path, { token: 'tok-a-012345678X', body });
      expect([o.path, wrong.status, wrong.body.error?.code]).toEqual([o.path, 403, 'forbidden']);
    }
    expect((await call('GET', '/healthz', { token: null })).body).toEqual({ ok: true });
    // the second configured token works too
    expect((await call('GET', '/v1/runs', { token: 'tok-b-9876543210' })).status).toBe(200);
  });

  it('creates, lists, shows, pauses, resumes and cancels a mandate', async () => {
    const v = await w.verify();
    const created = await call('POST', '/v1/mandates', {
      body: {
        customerRef: 'api-1',
        intent: 'subscription',
        amount: 1500,
        currency: 'GBP',
        narrative: 'API gym',
        interval: '1 month',
        start: T0.toISOString(),
        credential: { link: v.href },
      },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as number;
    expect(created.body).toMatchObject({ customerRef: 'api-1', status: 'active', amount: 1500 });
    const list = await call('GET', '/v1/mandates?customerRef=api-1&status=active&limit=10');
    expect(list.status).toBe(200);
    expect(list.body.items.map((m: { id: number }) => m.id)).toEqual([id]);
    expect((await call('GET', `/v1/mandates/${id}`)).body.links[0].href).toBe(v.href);
    expect((await call('POST', `/v1/mandates/${id}/pause`, { body: {} })).body.status).toBe('paused');
    expect((await call('POST', `/v1/mandates/${id}/pause`, { body: {} })).body.status).toBe('paused');
    expect((await call('POST', `/v1/mandates/${id}/resume`, { body: {} })).body.status).toBe('active');
    const atEnd = await call('POST', `/v1/mandates/${id}/cancel`, { body: { atPeriodEnd: true } });
    expect(atEnd.body).toMatchObject({ status: 'active', cancelAtPeriodEnd: true });
    expect((await call('POST', `/v1/mandates/${id}/cancel`, { body: {} })).body.status).toBe('cancelled');
    const again = await call('POST', `/v1/mandates/${id}/resume`, { body: {} });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('conflict');
    expect((await call('GET', '/v1/mandates/999999')).status).toBe(404);
    expect((await call('GET', '/v1/mandates/abc')).body.error.field).toBe('id');
  });

  it('queues a charge on an unscheduled mandate, runs billing through the API and shows the charge', async () => {
    const created = await call('POST', '/v1/mandates', {
      body: {
        customerRef: 'api-2',
        intent: 'unscheduled',
        amount: 700,
        currency: 'EUR',
        narrative: 'API top-up',
        credential: { cardNumber: PAN, expiryMonth: 12, expiryYear: 2030 },
      },
    });
    expect(created.status).toBe(201);
    // the card number never comes back
    expect(JSON.stringify(created.body)).not.toContain(PAN);
    expect(created.body.credential).toMatchObject({ lastFour: '1111', holdsCardData: true });
    const id = created.body.id as number;
    const queued = await call('POST', `/v1/mandates/${id}/charges`, { body: { amount: 725 } });
    expect(queued.status).toBe(201);
    const run = await call('POST', '/v1/runs', { body: { asOf: T1.toISOString(), mandateId: id } });
    expect(run.status).toBe(202);
    let status = run.body.status as string;
    let shown: Res | undefined;
    for (let i = 0; i < 200 && status === 'running'; i++) {
      shown = await call('GET', `/v1/runs/${run.body.id}`);
      status = shown.body.status;
      if (status === 'running') await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe('completed');
    expect(shown?.body).toMatchObject({ trigger: 'api', mandateId: id, counts: { authorized: 1 } });
    const runs = await call('GET', '/v1/runs');
    expect(runs.body.items[0].id).toBe(run.body.id);
    const charges = await call('GET', `/v1/charges?mandateId=${id}`);
    expect(charges.body.items).toHaveLength(1);
    const charge = charges.body.items[0];
    expect(charge).toMatchObject({ amount: 725, currency: 'EUR' });
    expect(['settling', 'settled']).toContain(charge.state);
    expect((await call('GET', `/v1/charges/${charge.id}`)).body.actions[0].kind).toBe('settle');
    const events = await call('POST', `/v1/charges/${charge.id}/query`);
    expect(events.body).toMatchObject({ found: true, charge: { state: 'settled' } });
    // more than settled is refused before Worldpay is asked
    const refund = await call('POST', `/v1/charges/${charge.id}/partial-refund`, { body: { amount: 726 } });
    expect(refund.status).toBe(409);
    expect(
      (await call('POST', `/v1/charges/${charge.id}/partial-refund`, { body: { amount: 25 } })).body,
    ).toMatchObject({ outcome: 'accepted', amount: 25 });
  });

  it('filters charges by due date and retries a refused one now', async () => {
    const v = await w.verify();
    w.sandbox.script({ match: { chainId: v.chainId }, outcomes: [{ type: 'refuse', code: '51' }] });
    const created = await call('POST', '/v1/mandates', {
      body: {
        customerRef: 'api-retry',
        intent: 'unscheduled',
        amount: 900,
        currency: 'GBP',
        narrative: 'API retry',
        credential: { link: v.href },
      },
    });
    const id = created.body.id as number;
    await call('POST', `/v1/mandates/${id}/charges`, {});
    const run = await call('POST', '/v1/runs', { body: { asOf: T1.toISOString(), mandateId: id } });
    for (let i = 0; i < 200; i++) {
      if ((await call('GET', `/v1/runs/${run.body.id}`)).body.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const [charge] = (await call('GET', `/v1/charges?mandateId=${id}`)).body.items;
    expect(charge.state).toBe('retry_scheduled');
    const due = new Date(charge.dueAt).getTime();
    const iso = (t: number) => new Date(t).toISOString();
    const within = await call(
      'GET',
      `/v1/charges?mandateId=${id}&dueFrom=${iso(due)}&dueTo=${iso(due + 1000)}`,
    );
    expect(within.body.items.map((c: { id: number }) => c.id)).toEqual([charge.id]);
    const before = await call('GET', `/v1/charges?mandateId=${id}&dueTo=${iso(due)}`);
    expect(before.body.items).toEqual([]);
    expect((await call('GET', '/v1/charges?dueFrom=yesterday')).body.error).toMatchObject({
      field: 'dueFrom',
    });
    // retry-now: the sandbox's script is spent, so the second attempt is authorized
    const retried = await call('POST', `/v1/charges/${charge.id}/retry-now`, { body: {} });
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ counts: { attempted: 1, authorized: 1, refused: 0 } });
    const again = await call('POST', `/v1/charges/${charge.id}/retry-now`, { body: {} });
    expect(again.status).toBe(409);
    expect(again.body.error.message).toMatch(/nothing to retry/);
  });

  it('replays the first response for a repeated Idempotency-Key and creates one mandate', async () => {
    const v = await w.verify();
    const body = {
      customerRef: 'api-idem',
      intent: 'subscription',
      amount: 990,
      currency: 'USD',
      narrative: 'Idempotent',
      interval: '1 week',
      start: T0.toISOString(),
      credential: { link: v.href },
    };
    const first = await call('POST', '/v1/mandates', { body, key: 'idem-1' });
    const second = await call('POST', '/v1/mandates', { body: { ...body }, key: 'idem-1' });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect((await listMandates(w.t.database, { customerRef: 'api-idem' })).items).toHaveLength(1);
    const other = await call('POST', '/v1/mandates', { body: { ...body, amount: 991 }, key: 'idem-1' });
    expect(other.status).toBe(422);
    expect((await listMandates(w.t.database, { customerRef: 'api-idem' })).items).toHaveLength(1);
    // a refused request is replayed as refused too
    const bad = await call('POST', '/v1/mandates/999999/pause', { body: {}, key: 'idem-2' });
    const badAgain = await call('POST', '/v1/mandates/999999/pause', { body: {}, key: 'idem-2' });
    expect([bad.status, badAgain.status]).toEqual([404, 404]);
    // keys older than a day are pruned (the daemon does it each tick); recent ones stay
    await w.t.database.rows(
      sql`update idempotency_keys set created_at = now() - interval '25 hours' where key = 'idem-2'`,
    );
    expect(await pruneIdempotencyKeys(w.t.database)).toBe(1);
    const left = await w.t.database.rows(sql`select key from idempotency_keys where key like 'idem-%'`);
    expect(left.map((r) => r.key)).toEqual(['idem-1']);
  });

  it('PATCH and DELETE honour Idempotency-Key as POST does: of two concurrent PATCHes one applies', async () => {
    const v = await w.verify();
    const created = await call('POST', '/v1/mandates', {
      body: {
        customerRef: 'api-idem-patch',
        intent: 'subscription',
        amount: 990,
        currency: 'USD',
        narrative: 'Idempotent',
        interval: '1 month',
        start: T0.toISOString(),
        credential: { link: v.href },
      },
    });
    const path = `/v1/mandates/${created.body.id}`;
    const patch = { amount: 1490, effective: '2026-09-01T00:00:00Z' };
    const both = await Promise.all([
      call('PATCH', path, { body: patch, key: 'idem-patch' }),
      call('PATCH', path, { body: { ...patch }, key: 'idem-patch' }),
    ]);
    // One applies; the other waited and got its answer, or was told it is still in progress.
    const [applied, other] = both.sort((a, b) => a.status - b.status);
    expect(applied!.status).toBe(200);
    expect(other!.status === 200 ? other!.body : other!.body.error.code).toEqual(
      other!.status === 200 ? applied!.body : 'idempotency_in_progress',
    );
    const scheduled = async () => (await call('GET', `${path}/changes`)).body.items;
    expect(await scheduled()).toHaveLength(1);
    const again = await call('PATCH', path, { body: patch, key: 'idem-patch' });
    expect([again.status, again.body, again.headers['idempotent-replayed']]).toEqual([
      200,
      applied!.body,
      'true',
    ]);
    const changed = await call('PATCH', path, { body: { ...patch, amount: 1500 }, key: 'idem-patch' });
    expect(changed.status).toBe(422);
    expect(await scheduled()).toHaveLength(1);
    // A DELETE retried with its key gets its first answer, not "already cancelled".
    const [change] = await scheduled();
    const cancel = `${path}/changes/${change.id}`;
    const first = await call('DELETE', cancel, { key: 'idem-delete' });
    const retried = await call('DELETE', cancel, { key: 'idem-delete' });
    expect(first.status).toBe(200);
    expect([retried.status, retried.body, retried.headers['idempotent-replayed']]).toEqual([
      200,
      first.body,
      'true',
    ]);
    expect((await call('DELETE', cancel)).status).toBe(409);
    const doc = server.openapi as {
      paths: Record<string, Record<string, { parameters: { name: string }[] }>>;
    };
    for (const [route, method] of [
      ['/v1/mandates/{id}', 'patch'],
      ['/v1/mandates/{id}/changes/{changeId}', 'delete'],
    ] as const)
      expect(doc.paths[route]![method]!.parameters.map((p) => p.name)).toContain('Idempotency-Key');
  });

  it('names the bad field in a validation error', async () => {
    const bad = await call('POST', '/v1/mandates', {
      body: {
        customerRef: 'api-bad',
        intent: 'subscription',
        amount: -5,
        currency: 'GBP',
        narrative: 'Bad',
        interval: '1 month',
        credential: { link: 'https://example.com/x' },
      },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'validation_error', field: 'amount' });
    const card = await call('POST', '/v1/mandates', {
      body: {
        customerRef: 'api-bad',
        intent: 'unscheduled',
        amount: 5,
        currency: 'GBP',
        narrative: 'Bad',
        credential: { cardNumber: '4444333322221112', expiryMonth: 1, expiryYear: 2030 },
      },
    });
    expect(card.status).toBe(400);
    expect(card.body.error.field).toBe('credential.cardNumber');
    expect(JSON.stringify(card.body)).not.toContain('4444333322221112');
    const run = await call('POST', '/v1/runs', { body: { limit: 0 } });
    expect(run.body.error.field).toBe('limit');
    expect((await call('GET', '/v1/charges?state=x&bogus=1')).status).toBe(400);
  });

  it('serves Prometheus metrics behind the token', async () => {
    const res = await call('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/rebill_retry_backlog \d+/);
    expect(res.body).toMatch(/rebill_unknown_attempts \d+/);
  });

  it('refuses to start with no token configured, naming REBILL_ADMIN_TOKENS', async () => {
    const bare = { ...app, config: { ...app.config, admin: { ...app.config.admin, tokens: [] } } };
    const err = await createAdminServer({ ctx: bare, runner: createRunner(bare) }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('REBILL_ADMIN_TOKENS');
  });
});
