import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { paymentAction } from '../../src/billing/operator/payments.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { startWorld, type World } from '../support/world.ts';

const T0 = new Date('2026-05-01T09:00:00Z');
const T1 = new Date('2026-05-01T10:00:00Z');
const TOKEN = 'tok-search-0123456789';

/** Whatever JSON.parse gives: the tests read response bodies field by field. */
type Json = ReturnType<typeof JSON.parse>;

/**
 * The lists an operator searches: mandates and charges by id, transaction reference and customer
 * ref prefix; the event log newest first with cursors both ways; and a GET that only reads.
 */
describe('search, the event log and read-only GETs', () => {
  let w: World;
  let app: App;
  let server: AdminServer;
  let url: string;
  /** customer ref → mandate id */
  const byRef = new Map<string, number>();
  const mandateOf = (ref: string): number => byRef.get(ref)!;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN } });
    app = await w.app(T1);
    server = await createAdminServer({ ctx: app, runner: createRunner(app) });
    url = await server.listen('127.0.0.1:0');
    for (const ref of ['ada-1', 'ada-2', 'adam', 'bob', 'a%b', 'ADA-3']) {
      const v = await w.verify();
      const m = await createMandate(app, {
        customerRef: ref,
        intent: 'subscription',
        amount: 1000,
        currency: 'GBP',
        narrative: 'Search test',
        interval: '1 month',
        start: T0,
        credential: { link: v.href },
      });
      byRef.set(ref, m.id);
    }
    // Billed without following settlements: each charge is left settling, the sandbox settled.
    const r = await runBilling(app, { asOf: T1, trigger: 'test' });
    expect(r.counts.authorized).toBe(6);
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await w?.close();
  });

  async function call(method: 'GET' | 'POST', path: string): Promise<{ status: number; body: Json }> {
    const res = await request(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return { status: res.statusCode, body: JSON.parse(await res.body.text()) };
  }
  const get = async (path: string) => {
    const res = await call('GET', path);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  };
  const refsOf = (items: { customerRef: string }[]) => items.map((i) => i.customerRef).sort();
  const mandates = async (query: string) => refsOf((await get(`/v1/mandates?${query}`)).items);
  const charges = async (query: string) => refsOf((await get(`/v1/charges?${query}`)).items);

  it('finds customer refs by prefix, case-sensitively, with % and _ taken literally', async () => {
    expect(await mandates('customerRef=ada')).toEqual(['ada-1', 'ada-2', 'adam']);
    expect(await mandates('customerRef=ada-')).toEqual(['ada-1', 'ada-2']);
    expect(await mandates('customerRef=ada-1')).toEqual(['ada-1']);
    expect(await mandates('customerRef=ADA')).toEqual(['ADA-3']);
    expect(await mandates(`customerRef=${encodeURIComponent('a%')}`)).toEqual(['a%b']);
    expect(await mandates('customerRef=a_')).toEqual([]);
    expect(await mandates('customerRef=zed')).toEqual([]);
    // the charges list takes the same filter
    expect(await charges('customerRef=ada-')).toEqual(['ada-1', 'ada-2']);
    // the old spelling still answers, for one release
    expect(await mandates('customer=ada-')).toEqual(['ada-1', 'ada-2']);
    const empty = await call('GET', '/v1/mandates?customerRef=');
    expect(empty.status).toBe(400);
    expect(empty.body.error.field).toBe('customerRef');
  });

  it('q finds an id or a transaction reference exactly, or a customer ref by prefix', async () => {
    const all = (await get('/v1/charges?limit=100')).items as {
      id: number;
      mandateId: number;
      customerRef: string;
      transactionReference: string;
    }[];
    const bob = all.find((c) => c.customerRef === 'bob')!;
    expect(bob.transactionReference).toBeTruthy();
    // a charge id, a transaction reference, a customer ref prefix
    expect(await charges(`q=${bob.id}`)).toEqual(['bob']);
    expect(await charges(`q=${encodeURIComponent(bob.transactionReference)}`)).toEqual(['bob']);
    expect(await charges('q=ada')).toEqual(['ada-1', 'ada-2', 'adam']);
    // a reference is matched whole, never as a prefix
    expect(await charges(`q=${encodeURIComponent(bob.transactionReference.slice(0, -1))}`)).toEqual([]);
    // a settle's own reference names its charge too
    const ada = all.find((c) => c.customerRef === 'ada-1')!;
    const refund = await paymentAction(app, ada.id, 'partialRefund', { amount: 100 });
    expect(await charges(`q=${encodeURIComponent(refund.reference)}`)).toEqual(['ada-1']);
    // mandates: by the mandate's id, by a transaction reference of its charges, by prefix
    expect(await mandates(`q=${mandateOf('adam')}`)).toEqual(['adam']);
    expect(await mandates(`q=${encodeURIComponent(bob.transactionReference)}`)).toEqual(['bob']);
    expect(await mandates('q=bo')).toEqual(['bob']);
    // a number names an id, and a customer ref that starts with it
    expect(await mandates('q=999999')).toEqual([]);
  });

  it('the customer ref prefix is read through its index (text_pattern_ops), not a scan', async () => {
    const plan = await w.t.database.db.transaction(async (tx) => {
      await w.t.database.rows(sql`set local enable_seqscan = off`, tx);
      return w.t.database.rows<{ 'QUERY PLAN': string }>(
        sql`explain select id from customers cu where cu.ref like ${'ada%'}`,
        tx,
      );
    });
    const text = plan.map((r) => Object.values(r)[0]).join('\n');
    expect(text).toContain('customers_ref_prefix_idx');
    expect(text).toMatch(/Index Cond: \(\(ref ~>=~ 'ada'::text\) AND \(ref ~<~ 'adb'::text\)\)/);
  });

  it('lists events newest first, filtered by type and mandate, pages both ways, each with its payload', async () => {
    const newestFirst = (await get('/v1/events?limit=1000')).items as { id: string; type: string }[];
    const ids = newestFirst.map((e) => Number(e.id));
    expect(ids.length).toBeGreaterThan(12);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    // page by page with `next` (older): every event once, in the same order
    const walked: number[] = [];
    const pages: Json[] = [];
    let page = await get('/v1/events?limit=5');
    expect(page.previous).toBeNull();
    for (;;) {
      pages.push(page);
      walked.push(...page.items.map((e: { id: string }) => Number(e.id)));
      if (page.next === null) break;
      page = await get(`/v1/events?limit=5&before=${page.next}`);
    }
    expect(walked).toEqual(ids);
    // back with `previous` (newer): the same pages again
    const back = await get(`/v1/events?limit=5&after=${pages[2].previous}&order=desc`);
    expect(back).toEqual(pages[1]);
    const first = await get(`/v1/events?limit=5&after=${back.previous}&order=desc`);
    expect(first).toEqual(pages[0]);
    // a polling consumer's cursor keeps the oldest-first order
    const polled = await get('/v1/events?after=0&limit=1000');
    expect(polled.items.map((e: { id: string }) => Number(e.id))).toEqual([...ids].reverse());
    expect(polled.next).toBeNull();
    // filters
    const ofBob = (await get(`/v1/events?mandateId=${mandateOf('bob')}`)).items as {
      type: string;
      mandateId: number;
      data: { id?: number; customerRef?: string };
    }[];
    expect(ofBob.map((e) => e.type)).toEqual(['charge.authorized', 'mandate.created']);
    expect(ofBob.every((e) => e.mandateId === mandateOf('bob'))).toBe(true);
    const created = (await get('/v1/events?type=mandate.created')).items as {
      data: { customerRef: string };
    }[];
    expect(created.map((e) => e.data.customerRef)).toEqual(['ADA-3', 'a%b', 'bob', 'adam', 'ada-2', 'ada-1']);
    // one event, its payload whole
    const one = await get(`/v1/events/${ids[0]}`);
    expect(one).toEqual(newestFirst[0]);
    expect((await call('GET', '/v1/events/99999999')).status).toBe(404);
    expect((await call('GET', '/v1/events?order=sideways')).status).toBe(400);
  });

  it('GET /v1/charges/{id}/events reads what was recorded and writes nothing; POST .../query asks and applies', async () => {
    const [c] = (await get(`/v1/charges?mandateId=${mandateOf('adam')}`)).items as {
      id: number;
      state: string;
    }[];
    expect(c!.state).toBe('settling');
    const count = async () =>
      (
        await w.t.database.rows<{ n: number }>(
          sql`select (select count(*) from payment_events)::int + (select count(*) from audit_log)::int
                   + (select count(*) from events)::int as n`,
        )
      )[0]!.n;
    const before = await count();
    const read = await get(`/v1/charges/${c!.id}/events`);
    expect(read).toEqual({ chargeId: c!.id, items: [] });
    expect(await count()).toBe(before);
    expect((await get(`/v1/charges/${c!.id}`)).state).toBe('settling');
    // the POST is where the gateway is asked and its answer written
    const asked = await call('POST', `/v1/charges/${c!.id}/query`);
    expect(asked.status).toBe(200);
    expect(asked.body).toMatchObject({ found: true, applied: 'settled', charge: { state: 'settled' } });
    expect(await count()).toBeGreaterThan(before);
    const recorded = await get(`/v1/charges/${c!.id}/events`);
    expect(recorded.items).toEqual([expect.objectContaining({ source: 'query', lastEvent: 'Settled' })]);
  });
});
