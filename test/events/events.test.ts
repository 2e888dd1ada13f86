import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker } from '../../bench/lib/worker-cli.ts';
import { type App, openApp } from '../../src/app.ts';
import { cancelMandate, createMandate, getMandate, pauseMandate } from '../../src/billing/mandates/index.ts';
import { paymentAction } from '../../src/billing/operator/payments.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { fixedClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { num } from '../../src/db/values.ts';
import { appendEvent } from '../../src/events/append.ts';
import { createDeliverer, deliveryBody, retryDelay, signature } from '../../src/events/deliver.ts';
import {
  checkEndpointUrl,
  createEndpoint,
  listDeliveries,
  removeEndpoint,
} from '../../src/events/endpoints.ts';
import { startDeliveryLoop } from '../../src/events/loop.ts';
import { listEvents, sequenceEvents } from '../../src/events/sequence.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { rebillBin } from '../support/cli.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { withDatabase } from '../support/global-setup.ts';
import { startReceiver, verifySignature } from '../support/receiver.ts';
import { DAY } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

const T0 = new Date('2027-03-01T09:00:00Z');
const TOKEN = 'tok-events-0123456789';

/** A deterministic stream of numbers in [0, 1): the receiver's coin. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('events and webhooks', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({
      env: {
        REBILL_WEBHOOK_ALLOW_INSECURE: '1',
        REBILL_WEBHOOK_RETRY_SCHEDULE: '20ms,40ms',
        REBILL_WEBHOOK_TIMEOUT_MS: '300',
        REBILL_ADMIN_TOKENS: TOKEN,
      },
    });
  });
  afterAll(async () => w?.close());

  it('signs as documented, keeps one body per event, and backs off with jitter', () => {
    const body = deliveryBody({ id: 7, type: 'ping', createdAt: T0, data: { a: 1 } });
    expect(body).toBe('{"id":"7","type":"ping","createdAt":"2027-03-01T09:00:00.000Z","data":{"a":1}}');
    const header = signature(['whsec_a', 'whsec_b'], body, 1_800_000_000);
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$/);
    expect(verifySignature(header, body, ['whsec_b'], 1_800_000_100)).toBe(true);
    expect(verifySignature(header, body, ['whsec_c'], 1_800_000_100)).toBe(false);
    expect(verifySignature(header, `${body} `, ['whsec_a'], 1_800_000_100)).toBe(false);
    expect(verifySignature(header, body, ['whsec_a'], 1_800_000_400)).toBe(false);
    const minute = 60_000;
    const schedule = [minute, 5 * minute, 30 * minute];
    expect(retryDelay(schedule, 1, () => 0.5)).toBe(minute);
    expect(retryDelay(schedule, 2, () => 0)).toBe(0.9 * 5 * minute);
    expect(retryDelay(schedule, 9, () => 1)).toBe(1.1 * 30 * minute);
  });

  it('endpoint URLs: https only, no private, loopback or link-local address unless allowed', () => {
    expect(checkEndpointUrl('https://hooks.example.com/rebill', false)).toBe(
      'https://hooks.example.com/rebill',
    );
    for (const bad of [
      'http://hooks.example.com/x',
      'https://127.0.0.1/x',
      'https://localhost/x',
      'https://10.1.2.3/x',
      'https://172.16.0.1/x',
      'https://192.168.1.1/x',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/x',
      'https://[fd00::1]/x',
      'https://[::ffff:10.0.0.1]/x',
      'https://user:pass@hooks.example.com/x',
      'ftp://hooks.example.com/x',
      'not a url',
    ])
      expect(() => checkEndpointUrl(bad, false), bad).toThrow(/url/);
    expect(checkEndpointUrl('http://127.0.0.1:9/x', true)).toBe('http://127.0.0.1:9/x');
    expect(() => checkEndpointUrl('http://hooks.example.com/x', true)).toThrow(/https/);
  });

  it('IPv6 addresses that reach IPv4 space are judged by the IPv4 address they reach, or refused', () => {
    for (const bad of [
      'https://[64:ff9b::a9fe:a9fe]/latest/meta-data', // NAT64 to 169.254.169.254
      'https://[64:ff9b::a00:1]/x', // NAT64 to 10.0.0.1
      'https://[64:ff9b:1::a9fe:a9fe]/x', // local-use NAT64
      'https://[2002:a9fe:a9fe::1]/x', // 6to4 from 169.254.169.254
      'https://[2002:7f00:1::1]/x', // 6to4 from 127.0.0.1
      'https://[::a9fe:a9fe]/x', // IPv4-compatible
      'https://[::ffff:0:a9fe:a9fe]/x', // SIIT
      'https://[::ffff:a9fe:a9fe]/x', // IPv4-mapped
      'https://[fec0::1]/x', // site-local
      'https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x', // Teredo
      'https://[2001:db8::1]/x', // documentation
    ])
      expect(() => checkEndpointUrl(bad, false), bad).toThrow(/private or link-local/);
    for (const good of [
      'https://[2606:4700:4700::1111]/x',
      'https://[64:ff9b::808:808]/x', // NAT64 to 8.8.8.8: what an IPv6-only network's DNS64 answers
      'https://[2002:808:808::1]/x',
      'https://[::ffff:8.8.8.8]/x',
      'https://8.8.8.8/x',
    ])
      expect(checkEndpointUrl(good, false), good).toContain('https://');
  });

  it('refuses a transition address at delivery time too, and masks card numbers in a stored answer', async () => {
    const app = await w.app(T0);
    const strict = {
      ...app,
      config: { ...app.config, events: { ...app.config.events, webhookAllowInsecure: false } },
    };
    // an endpoint written before the registration check knew these ranges
    const [old] = await w.t.database.rows<{ id: number }>(
      sql`insert into webhook_endpoints (url, events, secret)
          values ('https://[64:ff9b::a9fe:a9fe]/latest/meta-data', '{ping}', 'whsec_test') returning id`,
    );
    await appendEvent(w.t.database, undefined, { type: 'ping', data: {}, endpointId: old!.id });
    const deliverer = createDeliverer(strict);
    await deliverer.deliverDue();
    await deliverer.close();
    const [refused] = (await listDeliveries(app, old!.id)).items;
    expect(refused).toMatchObject({ state: 'pending', lastStatus: null });
    expect(refused!.lastError).toContain('refused');
    await removeEndpoint(app, old!.id);
    // a loopback receiver (the test's own, insecure context) echoing card numbers
    const echo = await startReceiver();
    echo.answer =
      '{"echo":"4444 3333 2222 1111","card":"4929-3016-6131-8602","raw":"5555555555554444","order":42}';
    const ep = await createEndpoint(app, { url: echo.url, events: ['ping'] });
    await appendEvent(w.t.database, undefined, { type: 'ping', data: {}, endpointId: ep.id });
    const relaxed = createDeliverer(app);
    await relaxed.deliverDue();
    await relaxed.close();
    await echo.close();
    const [answered] = (await listDeliveries(app, ep.id)).items;
    expect(answered).toMatchObject({ state: 'delivered', lastStatus: 200 });
    expect(answered!.lastResponse).toBe(
      '{"echo":"[digits ending 1111]","card":"[digits ending 8602]","raw":"[digits ending 4444]","order":42}',
    );
    const stored = await w.t.database.rows<{ r: string }>(
      sql`select string_agg(coalesce(last_response, ''), ' ') as r from webhook_deliveries`,
    );
    for (const pan of ['4444 3333 2222 1111', '4929-3016-6131-8602', '5555555555554444'])
      expect(stored[0]!.r).not.toContain(pan);
  });

  // Two transactions at once: PGlite has one connection, where the held one would block the other.
  it.skipIf(!hasServer)('the cursor never skips an event that commits after a later one', async () => {
    const db = w.t.database;
    const before = await listEvents(db, { after: 0, limit: 1000 });
    const start = Number(before.items.at(-1)?.id ?? 0);
    // A transaction that writes an event and stays open while another one commits its own.
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let written!: () => void;
    const wrote = new Promise<void>((r) => {
      written = r;
    });
    const slow = db.db.transaction(async (tx) => {
      await appendEvent(db, tx, { type: 'ping', data: { n: 'slow' } });
      written();
      await held;
    });
    await wrote;
    await appendEvent(db, undefined, { type: 'ping', data: { n: 'fast' } });
    const during = await listEvents(db, { after: start, type: 'ping' });
    // the fast one is committed, but an older transaction is open: it waits, with no id yet
    expect(during.items).toEqual([]);
    release();
    await slow;
    const after = await listEvents(db, { after: start, type: 'ping' });
    expect(after.items.map((e) => e.data.n)).toEqual(['slow', 'fast']);
    expect(Number(after.items[1]!.id)).toBe(Number(after.items[0]!.id) + 1);
  });

  it.skipIf(!hasServer)('a transaction open in another database holds no event', async () => {
    const db = w.t.database;
    const base = process.env.DATABASE_URL!;
    const name = `rebill_other_${randomBytes(6).toString('hex')}`;
    const admin = postgres(base, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    const other = postgres(withDatabase(base, name), { max: 1, onnotice: () => {} });
    try {
      const start = Number((await listEvents(db, { after: 0, limit: 1000 })).items.at(-1)?.id ?? 0);
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      let began!: () => void;
      const open = new Promise<void>((r) => {
        began = r;
      });
      // an unrelated application's long transaction, with a transaction id, begun before the event
      const elsewhere = other.begin(async (tx) => {
        await tx`select pg_current_xact_id()`;
        began();
        await held;
      });
      await open;
      await appendEvent(db, undefined, { type: 'ping', data: { n: 'while another database works' } });
      const seen = await listEvents(db, { after: start, type: 'ping' });
      release();
      await elsewhere;
      expect(seen.items.map((e) => e.data.n)).toEqual(['while another database works']);
      // nothing is left waiting, and the metric says so
      const metrics = createMetrics(db);
      expect(await metrics.render()).toMatch(/^rebill_events_oldest_unsequenced_age_seconds 0$/m);
    } finally {
      await other.end();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  });

  it.skipIf(!hasServer)('the metric shows how long the oldest unsequenced event has waited', async () => {
    const db = w.t.database;
    await sequenceEvents(db);
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let written!: () => void;
    const wrote = new Promise<void>((r) => {
      written = r;
    });
    // a transaction of this database, open while a later one commits its event
    const slow = db.db.transaction(async (tx) => {
      await appendEvent(db, tx, { type: 'ping', data: { n: 'slow' } });
      written();
      await held;
    });
    await wrote;
    await appendEvent(db, undefined, { type: 'ping', data: { n: 'waits' } });
    await new Promise((r) => setTimeout(r, 1500));
    await sequenceEvents(db);
    const metrics = createMetrics(db);
    const age = Number(
      /^rebill_events_oldest_unsequenced_age_seconds (\S+)$/m.exec(await metrics.render())?.[1],
    );
    release();
    await slow;
    expect(age).toBeGreaterThanOrEqual(1.5);
    await sequenceEvents(db);
    expect(await metrics.render()).toMatch(/^rebill_events_oldest_unsequenced_age_seconds 0$/m);
  });

  it('a billing story reaches a flaky receiver: every event at least once, signed, in order per mandate, filtered by type', {
    timeout: 120_000,
  }, async () => {
    const app = await w.app(T0);
    const all = await startReceiver(2000);
    const refusals = await startReceiver(2000);
    const coin = rng(42);
    let downUntil = 0;
    all.behave = (n) => {
      if (n === 10) downUntil = n + 8; // a stretch where the receiver drops every connection
      if (n < downUntil) return 'reset';
      const x = coin();
      if (x < 0.05) return 'timeout';
      if (x < 0.3) return 'error';
      return 'ok';
    };
    const a = await createEndpoint(app, { url: all.url, events: ['*'], description: 'everything' });
    const b = await createEndpoint(app, { url: refusals.url, events: ['charge.refused'] });
    all.secrets.push(a.secret);
    refusals.secrets.push(b.secret);

    // M1 is refused once (51), retried and authorized, refunded, then paused.
    const v1 = await w.verify();
    const m1 = await createMandate(app, {
      customerRef: 'ev-1',
      intent: 'subscription',
      amount: 1500,
      currency: 'GBP',
      narrative: 'Events test',
      interval: '1 month',
      start: T0,
      credential: { link: v1.href },
    });
    // M2's card expires before its second charge: credential.expiring, then it is cancelled.
    const m2 = await createMandate(app, {
      customerRef: 'ev-2',
      intent: 'subscription',
      amount: 990,
      currency: 'GBP',
      narrative: 'Events test',
      interval: '1 month',
      start: T0,
      credential: { cardNumber: '4444333322221111', expiryMonth: 3, expiryYear: 2027 },
    });
    w.sandbox.script({ match: { chainId: v1.chainId }, outcomes: [{ type: 'refuse', code: '51' }] });
    await runBilling(app, { asOf: T0, trigger: 'test', followSettlements: true });
    const later = await w.app(new Date(T0.getTime() + 3 * DAY));
    await runBilling(later, {
      asOf: new Date(T0.getTime() + 3 * DAY),
      trigger: 'test',
      followSettlements: true,
    });
    const m1Charge = (
      await w.t.database.rows(
        sql`select id from charges where mandate_id = ${m1.id} and state in ('settling', 'settled')`,
      )
    )[0];
    expect(m1Charge).toBeDefined();
    await paymentAction(later, num(m1Charge!.id), 'refund');
    await pauseMandate(later, m1.id);
    // M2's next charge (April 1st) falls after its card's end of March: noticed 14 days ahead.
    const notice = await w.app(new Date('2027-03-20T09:00:00Z'));
    await runBilling(notice, { asOf: new Date('2027-03-20T09:00:00Z'), trigger: 'test' });
    await cancelMandate(notice, m2.id);

    // Deliver until nothing is pending (the retry schedule is 20-40 ms here).
    const deliverer = createDeliverer(later);
    for (let i = 0; i < 400; i++) {
      await deliverer.deliverDue();
      const pending = await w.t.database.rows(
        sql`select count(*)::int as n from webhook_deliveries where state = 'pending'`,
      );
      if (num(pending[0]!.n) === 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await deliverer.close();

    const events = await w.t.database.rows(
      sql`select id, type, mandate_id from events where id is not null and mandate_id in (${m1.id}, ${m2.id}) order by id`,
    );
    const types = new Set(events.map((e) => String(e.type)));
    for (const t of [
      'mandate.created',
      'charge.refused',
      'charge.retry_scheduled',
      'charge.authorized',
      'charge.refunded',
      'mandate.paused',
      'mandate.cancelled',
      'credential.expiring',
    ])
      expect(types, t).toContain(t);
    // every event of the story arrived at the '*' endpoint, signed
    const arrived = new Set(all.received.filter((r) => r.answered === 'ok').map((r) => r.eventId));
    for (const e of events) expect(arrived, `event ${e.id} ${e.type}`).toContain(String(e.id));
    expect(all.received.every((r) => r.signatureOk)).toBe(true);
    expect(all.received.some((r) => r.answered !== 'ok')).toBe(true);
    // per mandate in order: each first arrival of a mandate's events comes in id order
    const mandateOf = new Map(events.map((e) => [String(e.id), Number(e.mandate_id)]));
    const firstOk = new Map<string, number>();
    for (const [i, r] of all.received.entries())
      if (r.answered === 'ok' && !firstOk.has(r.eventId)) firstOk.set(r.eventId, i);
    for (const m of [m1.id, m2.id]) {
      const ids = [...firstOk.keys()].filter((id) => mandateOf.get(id) === m);
      const sorted = [...ids].sort((x, y) => Number(x) - Number(y));
      expect(ids, `mandate ${m}`).toEqual(sorted);
    }
    // the same event id always carries the same body
    const bodies = new Map<string, string>();
    for (const r of all.received) {
      const seen = bodies.get(r.eventId);
      if (seen !== undefined) expect(r.body).toBe(seen);
      bodies.set(r.eventId, r.body);
    }
    // the refusal-only endpoint got refusals and nothing else
    expect(refusals.received.length).toBeGreaterThan(0);
    expect(new Set(refusals.received.map((r) => r.type))).toEqual(new Set(['charge.refused']));
    const refused = JSON.parse(refusals.received[0]!.body);
    expect(refused.data.lastAttempt).toMatchObject({ refusalCode: '51', decision: 'retry' });
    expect(refused.data.nextAttemptAt).toBeTruthy();
    // no card number in any body
    for (const r of [...all.received, ...refusals.received]) expect(r.body).not.toContain('4444333322221111');
    // a mandate's event carries the mandate as the API shows it
    const lastOfM1 = JSON.parse(
      all.received.filter((r) => r.type === 'mandate.paused' && r.answered === 'ok').at(-1)!.body,
    );
    const { previous, reason, ...shown } = lastOfM1.data;
    expect(previous).toEqual({ status: 'active' });
    expect(reason).toBe('paused by operator');
    expect(shown).toEqual(JSON.parse(JSON.stringify(await getMandate(w.t.database, m1.id))));
    await all.close();
    await refusals.close();
  });

  it('an endpoint that failed every delivery for the give-up window is disabled, with an event; its deliveries fail', async () => {
    const app = await w.app(T0);
    const ep = await createEndpoint(app, { url: 'http://127.0.0.1:9/nobody', events: ['ping'] });
    await appendEvent(w.t.database, undefined, { type: 'ping', endpointId: ep.id, data: { n: 'dead' } });
    // it has been failing for four days (the window is three)
    await w.t.database.rows(
      sql`update webhook_endpoints set failing_since = now() - interval '4 days' where id = ${ep.id}`,
    );
    const deliverer = createDeliverer(app);
    const s = await deliverer.drain();
    await deliverer.close();
    expect(s.delivered).toBe(0);
    const row = await w.t.database.rows(
      sql`select status, status_reason from webhook_endpoints where id = ${ep.id}`,
    );
    expect(row[0]).toMatchObject({ status: 'disabled' });
    const pending = await w.t.database.rows(
      sql`select count(*)::int as n from webhook_deliveries where endpoint_id = ${ep.id} and state = 'pending'`,
    );
    expect(num(pending[0]!.n)).toBe(0);
    const ev = await listEvents(w.t.database, { type: 'webhook_endpoint.disabled' });
    expect(ev.items.some((e) => e.data.endpointId === ep.id)).toBe(true);
  });

  it.skipIf(!hasServer)(
    'two delivery loops on one PostgreSQL deliver each event once per endpoint',
    {
      timeout: 60_000,
    },
    async () => {
      const app = await w.app(T0);
      const r = await startReceiver();
      const ep = await createEndpoint(app, { url: r.url, events: ['ping'] });
      r.secrets.push(ep.secret);
      const replicas = [await w.app(T0), await w.app(T0)];
      for (let i = 0; i < 200; i++) await appendEvent(w.t.database, undefined, { type: 'ping', data: { i } });
      const loops = replicas.map((x) => startDeliveryLoop(x));
      for (let i = 0; i < 200; i++) {
        const left = await w.t.database.rows(
          sql`select count(*)::int as n from webhook_deliveries where endpoint_id = ${ep.id} and state = 'pending'`,
        );
        if (num(left[0]!.n) === 0 && r.received.length >= 200) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      await Promise.all(loops.map((l) => l.stop()));
      const ids = r.received.map((x) => x.eventId);
      expect(new Set(ids).size).toBe(200);
      // At least once: an attempt that timed out (300 ms here, on a cold burst of 128 requests)
      // may have reached the receiver and is tried again. What two loops must never do is send
      // one attempt twice: every POST is an attempt one claim recorded, and an event attempted
      // once was received once.
      const attempts = await w.t.database.rows<{ event_id: number; attempts: number; state: string }>(
        sql`select event_id, attempts, state from webhook_deliveries where endpoint_id = ${ep.id}`,
      );
      expect(attempts.every((d) => d.state === 'delivered')).toBe(true);
      expect(ids.length).toBeLessThanOrEqual(attempts.reduce((n, d) => n + d.attempts, 0));
      const received = new Map<number, number>();
      for (const id of ids) received.set(Number(id), (received.get(Number(id)) ?? 0) + 1);
      for (const d of attempts.filter((x) => x.attempts === 1)) expect(received.get(d.event_id)).toBe(1);
      await r.close();
    },
  );
  it.skipIf(hasServer)(`two delivery loops: ${serverSkipReason}`, () => {});

  describe('admin API', () => {
    let app: App;
    let server: AdminServer;
    let url: string;
    beforeAll(async () => {
      app = await w.app(T0);
      server = await createAdminServer({ ctx: app, runner: createRunner(app) });
      url = await server.listen('127.0.0.1:0');
    });
    afterAll(async () => server?.close());

    const call = async (method: string, path: string, body?: unknown, token: string | null = TOKEN) => {
      const res = await request(`${url}${path}`, {
        method: method as 'GET',
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.body.text();
      return { status: res.statusCode, body: text ? JSON.parse(text) : null, text };
    };

    it('manages endpoints: secret shown once, rotation signs with both, test pings, deliveries and resend', async () => {
      const r = await startReceiver();
      const created = await call('POST', '/v1/webhook-endpoints', {
        url: r.url,
        events: ['ping', 'charge.refused'],
        description: 'ops',
      });
      expect(created.status).toBe(201);
      expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
      const id = created.body.id as number;
      const shown = await call('GET', `/v1/webhook-endpoints/${id}`);
      expect(shown.body).toMatchObject({
        id,
        url: r.url,
        events: ['ping', 'charge.refused'],
        status: 'enabled',
      });
      expect(shown.text).not.toContain(created.body.secret);
      expect((await call('GET', '/v1/webhook-endpoints')).text).not.toContain(created.body.secret);
      const rotated = await call('POST', `/v1/webhook-endpoints/${id}/rotate-secret`, {});
      expect(rotated.status).toBe(200);
      expect(rotated.body.secret).not.toBe(created.body.secret);
      expect(rotated.body.previousSecretExpiresAt).toBeTruthy();
      const ping = await call('POST', `/v1/webhook-endpoints/${id}/test`, {});
      expect(ping.status).toBe(202);
      const deliverer = createDeliverer(app);
      await deliverer.drain();
      expect(r.received).toHaveLength(1);
      expect(r.received[0]!.type).toBe('ping');
      // both secrets sign during the rotation
      const sig = r.received[0]!;
      expect(sig.signature.match(/v1=/g)).toHaveLength(2);
      expect(verifySignature(sig.signature, sig.body, [created.body.secret], Date.now() / 1000)).toBe(true);
      expect(verifySignature(sig.signature, sig.body, [rotated.body.secret], Date.now() / 1000)).toBe(true);
      const deliveries = await call('GET', `/v1/webhook-endpoints/${id}/deliveries`);
      expect(deliveries.body.items[0]).toMatchObject({
        state: 'delivered',
        attempts: 1,
        lastStatus: 200,
        eventType: 'ping',
      });
      const resent = await call('POST', `/v1/webhook-deliveries/${deliveries.body.items[0].id}/resend`, {});
      expect(resent.status).toBe(202);
      await deliverer.drain();
      await deliverer.close();
      expect(r.received).toHaveLength(2);
      expect(r.received[1]!.body).toBe(r.received[0]!.body);
      const removed = await call('DELETE', `/v1/webhook-endpoints/${id}`);
      expect(removed.body.status).toBe('removed');
      expect((await call('GET', `/v1/webhook-endpoints/${id}`)).status).toBe(404);
      await r.close();
    });

    it('refuses bad endpoints naming the field, and writes nothing', async () => {
      const before = await w.t.database.rows(sql`select count(*)::int as n from webhook_endpoints`);
      for (const [body, field] of [
        [{ url: 'not a url', events: ['*'] }, 'url'],
        [{ url: 'http://hooks.example.com/x', events: ['*'] }, 'url'],
        [{ url: 'javascript:alert(1)', events: ['*'] }, 'url'],
        [{ url: 'https://hooks.example.com/x', events: ['charge.bogus'] }, 'events.0'],
        [{ url: 'https://hooks.example.com/x', events: [] }, 'events'],
        [{ url: 'https://hooks.example.com/x' }, 'events'],
        [{ url: 'https://hooks.example.com/x', events: ['*'], extra: 1 }, 'body'],
      ] as const) {
        const res = await call('POST', '/v1/webhook-endpoints', body);
        expect(res.status, res.text).toBe(400);
        expect(res.body.error.field, res.text).toBe(field);
      }
      expect(
        (
          await call(
            'POST',
            '/v1/webhook-endpoints',
            { url: 'https://hooks.example.com/x', events: ['*'] },
            null,
          )
        ).status,
      ).toBe(401);
      expect((await call('GET', '/v1/events?type=bogus')).status).toBe(400);
      // Where insecure endpoints are not allowed (the default), private and loopback addresses are refused.
      const strict = await openApp(loadConfig({ ...w.env, REBILL_WEBHOOK_ALLOW_INSECURE: '0' }), {
        database: w.t.database,
        clock: fixedClock(T0),
        logger: silentLogger,
      });
      const strictServer = await createAdminServer({ ctx: strict, runner: createRunner(strict) });
      const strictUrl = await strictServer.listen('127.0.0.1:0');
      for (const bad of [
        'https://10.0.0.1/x',
        'https://169.254.169.254/x',
        'https://localhost/x',
        'http://127.0.0.1/x',
      ]) {
        const res = await request(`${strictUrl}/v1/webhook-endpoints`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ url: bad, events: ['*'] }),
        });
        const body = (await res.body.json()) as { error: { field: string } };
        expect(res.statusCode, bad).toBe(400);
        expect(body.error.field).toBe('url');
      }
      await strictServer.close();
      const after = await w.t.database.rows(sql`select count(*)::int as n from webhook_endpoints`);
      expect(after).toEqual(before);
    });

    it('lists events by cursor, type and mandate', async () => {
      await sequenceEvents(w.t.database);
      const first = await call('GET', '/v1/events?limit=2');
      expect(first.status).toBe(200);
      expect(first.body.items).toHaveLength(2);
      // newest first: the next page is older
      const next = await call('GET', `/v1/events?before=${first.body.next}&limit=2`);
      expect(Number(next.body.items[0].id)).toBeLessThan(Number(first.body.items[1].id));
      const created = await call('GET', '/v1/events?type=mandate.created&limit=1000');
      expect(created.body.items.length).toBeGreaterThan(0);
      expect(created.body.items.every((e: { type: string }) => e.type === 'mandate.created')).toBe(true);
      const mid = created.body.items[0].mandateId;
      const ofMandate = await call('GET', `/v1/events?mandateId=${mid}&limit=1000`);
      expect(ofMandate.body.items.every((e: { mandateId: number }) => e.mandateId === mid)).toBe(true);
    });
  });
});

describe.skipIf(!hasServer)('webhook delivery across a killed daemon', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_WEBHOOK_ALLOW_INSECURE: '1', REBILL_ADMIN_TOKENS: TOKEN } });
  });
  afterAll(async () => w?.close());

  it('SIGKILL mid-delivery, restart: nothing lost, duplicates only of what was in flight, same id and body', {
    timeout: 120_000,
  }, async () => {
    const app = await w.app(T0);
    const r = await startReceiver();
    r.delayMs = 40;
    const ep = await createEndpoint(app, { url: r.url, events: ['ping'] });
    r.secrets.push(ep.secret);
    const N = 120;
    for (let i = 0; i < N; i++) await appendEvent(w.t.database, undefined, { type: 'ping', data: { i } });
    const env = {
      ...w.env,
      REBILL_ADMIN_ADDR: '127.0.0.1:0',
      REBILL_CRON: '0 0 1 1 *',
      REBILL_WEBHOOK_POLL_MS: '50',
      REBILL_WEBHOOK_RETRY_SCHEDULE: '100ms',
      REBILL_LOG_LEVEL: 'warn',
    };
    const first = startWorker({ argv: [rebillBin], dispose: () => {} }, ['daemon'], env);
    for (let i = 0; i < 600 && r.received.length < 30; i++) await new Promise((res) => setTimeout(res, 50));
    first.kill();
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');
    const beforeRestart = r.received.length;
    expect(beforeRestart).toBeGreaterThan(0);
    expect(beforeRestart).toBeLessThan(N);
    // What the killed daemon held comes back when its leases run out; here they are expired by hand.
    await w.t.database.rows(
      sql`update webhook_deliveries set lease_expires_at = now() - interval '1 second' where lease_owner is not null`,
    );
    const second = startWorker({ argv: [rebillBin], dispose: () => {} }, ['daemon'], env);
    try {
      for (let i = 0; i < 1200; i++) {
        const left = await w.t.database.rows(
          sql`select count(*)::int as n from webhook_deliveries where state = 'pending'`,
        );
        if (num(left[0]!.n) === 0) break;
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      second.kill();
      await second.done;
    }
    const delivered = await w.t.database.rows(
      sql`select count(*)::int as n from webhook_deliveries where endpoint_id = ${ep.id} and state = 'delivered'`,
    );
    expect(num(delivered[0]!.n)).toBe(N);
    const ids = new Set(r.received.map((x) => x.eventId));
    expect(ids.size).toBe(N);
    const duplicates = r.received.length - N;
    // at-least-once: only what was in flight when the first daemon died can arrive twice
    expect(duplicates).toBeLessThanOrEqual(64);
    const bodies = new Map<string, string>();
    for (const x of r.received) {
      expect(x.signatureOk).toBe(true);
      const seen = bodies.get(x.eventId);
      if (seen !== undefined) expect(x.body).toBe(seen);
      bodies.set(x.eventId, x.body);
    }
    await r.close();
  });
});

describe('event types are documented', () => {
  it('every type is in docs/events.md, the README and the OpenAPI document', async () => {
    const { readFileSync } = await import('node:fs');
    const { EVENT_TYPES } = await import('../../src/events/types.ts');
    const { openApiDocument } = await import('../../src/http/openapi.ts');
    const doc = readFileSync(new URL('../../docs/events.md', import.meta.url), 'utf8');
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const api = JSON.stringify(openApiDocument([], []));
    for (const t of Object.keys(EVENT_TYPES)) {
      expect(doc, t).toContain(`\`${t}\``);
      expect(api, t).toContain(`"${t}"`);
      if (t !== 'ping' && t !== 'webhook_endpoint.disabled')
        expect(readme, t).toMatch(new RegExp(t.split('.')[1]!));
    }
  });
});
