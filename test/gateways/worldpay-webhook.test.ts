import { createHmac, randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, openApp } from '../../src/app.ts';
import { createMandate, showMandate } from '../../src/billing/mandates/index.ts';
import { getCharge } from '../../src/billing/operator/charges.ts';
import { paymentAction } from '../../src/billing/operator/payments.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { fixedClock } from '../../src/clock.ts';
import { num } from '../../src/db/values.ts';
import { createWorldpayGateway } from '../../src/gateways/worldpay/index.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { type Sandbox, startSandbox } from '../../src/sandbox/server.ts';
import { startWorld, type World } from '../support/world.ts';

const T0 = new Date('2026-05-01T09:00:00Z');
const T1 = new Date('2026-05-01T10:00:00Z');
const OLD = 'old-secret-0123456789';
const NEW = 'new-secret-9876543210';

const sign = (raw: string, secret: string, keyId: string) =>
  `${keyId}/SHA256/${createHmac('sha256', secret).update(raw).digest('hex')}`;

describe('Worldpay webhook receiver', () => {
  let w: World;
  let app: App;
  let server: AdminServer;
  let url: string;
  let n = 0;
  const metrics = { m: undefined as ReturnType<typeof createMetrics> | undefined };
  beforeAll(async () => {
    w = await startWorld({
      env: { WORLDPAY_WEBHOOK_SECRETS: `k1:${OLD},k2:${NEW}`, REBILL_ADMIN_TOKENS: 'tok' },
    });
    app = await w.app(T1);
    metrics.m = createMetrics(w.t.database);
    server = await createAdminServer({ ctx: app, runner: createRunner(app), metrics: metrics.m });
    url = await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    await server?.close();
    await w?.close();
  });

  /** A charge whose settle was accepted (state settling) and its transaction reference. */
  async function settlingCharge(a: App = app): Promise<{ chargeId: number; reference: string }> {
    const v = await w.verify();
    const m = await createMandate(a, {
      customerRef: `wh-${++n}`,
      intent: 'subscription',
      amount: 2500,
      currency: 'EUR',
      narrative: 'Webhook test',
      interval: '1 month',
      start: T0,
      settleMode: 'none',
      credential: { link: v.href },
    });
    await runBilling(a, { asOf: T1, trigger: 'test', mandateId: m.id });
    const d = await showMandate(w.t.database, m.id);
    const chargeId = d.charges[0]!.id;
    await paymentAction(a, chargeId, 'settle');
    return { chargeId, reference: d.charges[0]!.attempts[0]!.reference };
  }

  const event = (reference: string, type: string, eventId = randomUUID()) =>
    JSON.stringify({
      eventId,
      eventTimestamp: '2026-05-01T10:05:00Z',
      eventDetails: { classification: 'payment', transactionReference: reference, type },
    });

  async function post(raw: string, signature?: string) {
    const res = await request(`${url}/webhooks/worldpay`, {
      method: 'POST',
      headers: {
        'content-type': 'application/vnd.worldpay.events-v1.hal+json',
        ...(signature ? { 'event-signature': signature } : {}),
      },
      body: raw,
    });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  }

  const eventsOf = async (eventId: string) =>
    num(
      (await w.t.database.rows(sql`select count(*) as n from payment_events where event_id = ${eventId}`))[0]
        ?.n,
    );

  it('rejects a bad or missing signature with 400 and applies nothing', async () => {
    const { chargeId, reference } = await settlingCharge();
    const id = randomUUID();
    const raw = event(reference, 'settled', id);
    expect((await post(raw, sign(raw, 'wrong-secret', 'k2'))).status).toBe(400);
    expect((await post(raw)).status).toBe(400);
    // a signature over other bytes (the body was altered) does not pass either
    expect((await post(raw, sign(`${raw} `, NEW, 'k2'))).status).toBe(400);
    // signed with a key id that has no configured secret
    expect((await post(raw, sign(raw, NEW, 'k9'))).status).toBe(400);
    expect(await eventsOf(id)).toBe(0);
    expect((await getCharge(w.t.database, chargeId)).state).toBe('settling');
  });

  it('applies a good event once even when it is delivered twice', async () => {
    const { chargeId, reference } = await settlingCharge();
    const id = randomUUID();
    const raw = event(reference, 'settled', id);
    const first = await post(raw, sign(raw, NEW, 'k2'));
    expect(first).toEqual({ status: 200, body: { ok: true, outcome: 'applied' } });
    const again = await post(raw, sign(raw, NEW, 'k2'));
    expect(again).toEqual({ status: 200, body: { ok: true, outcome: 'duplicate' } });
    expect(await eventsOf(id)).toBe(1);
    const c = await getCharge(w.t.database, chargeId);
    expect(c.state).toBe('settled');
    expect(c.events.filter((e) => e.source === 'webhook')).toHaveLength(1);
    const text = await metrics.m!.render();
    expect(text).toMatch(/rebill_webhook_events_total\{outcome="duplicate"\} [1-9]/);
  });

  it('accepts several signatures in any order, old and new key during a rotation', async () => {
    const { chargeId, reference } = await settlingCharge();
    const raw = event(reference, 'sentForSettlement');
    const bogus = `k2/SHA256/${'0'.repeat(64)}`;
    expect((await post(raw, `${bogus}, ${sign(raw, OLD, 'k1')}`)).status).toBe(200);
    const raw2 = event(reference, 'settled');
    expect((await post(raw2, `${sign(raw2, 'x', 'k7')},${sign(raw2, NEW, 'k2')}`)).status).toBe(200);
    expect((await getCharge(w.t.database, chargeId)).state).toBe('settled');
  });

  it('tolerates out-of-order delivery: settled then sentForSettlement leaves the charge settled', async () => {
    const { chargeId, reference } = await settlingCharge();
    const settled = event(reference, 'settled');
    const late = event(reference, 'sentForSettlement');
    expect((await post(settled, sign(settled, NEW, 'k2'))).body.outcome).toBe('applied');
    expect((await post(late, sign(late, NEW, 'k2'))).body.outcome).toBe('recorded');
    const c = await getCharge(w.t.database, chargeId);
    expect(c.state).toBe('settled');
    expect(c.events.map((e) => e.lastEvent)).toEqual(['settled', 'sentForSettlement']);
  });

  it('answers 200 for an unknown transaction reference so Worldpay stops redelivering', async () => {
    const raw = event('rb-no-such-reference', 'settled');
    expect(await post(raw, sign(raw, NEW, 'k2'))).toEqual({
      status: 200,
      body: { ok: true, outcome: 'unknown_reference' },
    });
  });

  it('rejects a signed body that is not an event', async () => {
    const raw = JSON.stringify({ hello: 'world' });
    expect((await post(raw, sign(raw, NEW, 'k2'))).status).toBe(400);
  });

  it('end to end: the sandbox delivers signed events to the receiver and the charge ends settled', async () => {
    let sandbox: Sandbox | undefined;
    let appB: App | undefined;
    try {
      sandbox = await startSandbox({
        port: 0,
        webhook: { url: `${url}/webhooks/worldpay`, secret: NEW, keyId: 'k2' },
      });
      const gw = createWorldpayGateway({
        url: sandbox.url,
        username: 'sandbox',
        password: 'sandbox',
        entity: 'default',
        maxInFlight: 8,
        requestsPerSecond: 0,
        connectTimeoutMs: 2000,
        requestTimeoutMs: 2000,
        logger: silentLogger,
      });
      // This app's Worldpay is the second sandbox: its links are on that origin.
      appB = await openApp(
        { ...w.config, worldpay: { ...w.config.worldpay, url: sandbox.url } },
        {
          database: w.t.database,
          clock: fixedClock(T1),
          logger: silentLogger,
          gateways: { worldpay: gw },
        },
      );
      const res = await request(`${sandbox.url}/_sandbox/verifications`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      const v = (await res.body.json()) as { href: string };
      const m = await createMandate(appB, {
        customerRef: 'wh-e2e',
        intent: 'subscription',
        amount: 990,
        currency: 'EUR',
        narrative: 'Webhook e2e',
        interval: '1 month',
        start: T0,
        credential: { link: v.href },
      });
      // auto-settle: authorize, then settle; the settlement then completes at the sandbox
      const r = await runBilling(appB, { asOf: T1, trigger: 'test', mandateId: m.id });
      expect(r.counts).toMatchObject({ authorized: 1, settleRequested: 1 });
      await sandbox.webhooksDrained();
      const d = await showMandate(w.t.database, m.id);
      expect(d.charges[0]?.state).toBe('settled');
      const c = await getCharge(w.t.database, d.charges[0]!.id);
      expect(
        c.events
          .filter((e) => e.source === 'webhook')
          .map((e) => e.lastEvent)
          .sort(),
      ).toEqual(['authorized', 'sentForSettlement', 'settled']);
      expect(sandbox.stats().webhooks.failedAttempts).toBe(0);
    } finally {
      await appB?.close();
      await sandbox?.close();
    }
  });
});
