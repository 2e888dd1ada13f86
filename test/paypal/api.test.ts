import { sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRunner } from '../../src/billing/run/runner.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { loseNextAnswer, movePaypalAt, paypalAtSandbox, refundsSent } from '../support/paypal.ts';
import { startWorld, type World } from '../support/world.ts';

const NOW = new Date('2026-06-01T10:00:00Z');
const TOKEN = 'tok-paypal-0123456789';

/** Whatever JSON.parse gives: the tests read response bodies field by field. */
type Json = ReturnType<typeof JSON.parse>;

describe('PayPal payments through the admin API, against the sandbox', () => {
  let w: World;
  let server: AdminServer;
  let url: string;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN, WORLDPAY_WEBHOOK_ALLOW_UNSIGNED: '1' } });
    const app = await w.app(NOW);
    server = await createAdminServer({ ctx: app, runner: createRunner(app) });
    url = await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    await server?.close();
    await w?.close();
  });

  async function call(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Json }> {
    const res = await request(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    return { status: res.statusCode, body: await res.body.json() };
  }

  async function track(amount: number, lastEvent?: 'authorized', extra: Record<string, unknown> = {}) {
    const s = await paypalAtSandbox(w, { amount, currency: 'GBP', ...(lastEvent ? { lastEvent } : {}) });
    const r = await call('POST', '/v1/paypal-payments', {
      eventsLink: s.eventsLink,
      amount,
      currency: 'GBP',
      customerRef: 'cust-api',
      ...extra,
    });
    expect(r.status).toBe(201);
    return { ...s, id: r.body.id as number };
  }

  it('tracks three payments, refunds by the rules, and never sends a refund twice', async () => {
    const a = await track(5000);
    const b = await track(2000, 'authorized');
    const c = await track(3000);
    const list = await call('GET', '/v1/paypal-payments?customerRef=cust-api');
    expect(list.body.items.map((p: Json) => p.id)).toEqual([c.id, b.id, a.id]);

    // Two partial refunds, each sent once with its own reference; a third over what is left is refused.
    const p1 = await call('POST', `/v1/paypal-payments/${a.id}/partial-refund`, {
      amount: 1000,
      currency: 'GBP',
    });
    const p2 = await call('POST', `/v1/paypal-payments/${a.id}/partial-refund`, { amount: 1500 });
    expect([p1.status, p2.status]).toEqual([200, 200]);
    expect(p1.body.reference).not.toBe(p2.body.reference);
    const p3 = await call('POST', `/v1/paypal-payments/${a.id}/partial-refund`, { amount: 2600 });
    expect(p3.status).toBe(409);
    expect(p3.body.error.message).toMatch(/would exceed what is left, 25\.00 GBP/);
    const wrong = await call('POST', `/v1/paypal-payments/${a.id}/partial-refund`, {
      amount: 10,
      currency: 'EUR',
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.field).toBe('currency');
    expect(refundsSent(w, a.paymentId).map((e) => [e.amount, e.reference])).toEqual([
      [1000, p1.body.reference],
      [1500, p2.body.reference],
    ]);

    // Still authorized: refused before sending; refunded once the sandbox moves it on.
    const early = await call('POST', `/v1/paypal-payments/${b.id}/refund`, {});
    expect(early.status).toBe(409);
    expect(early.body.error.message).toMatch(/latest event is authorized/);
    expect(refundsSent(w, b.paymentId)).toEqual([]);
    await movePaypalAt(w, b.eventsLink, 'sentForSettlement');
    const later = await call('POST', `/v1/paypal-payments/${b.id}/refund`);
    expect(later.status).toBe(200);
    expect(later.body).toMatchObject({ outcome: 'accepted', amount: 2000 });
    expect(refundsSent(w, b.paymentId)).toHaveLength(1);

    // The answer is lost: the operator retries three ways; Worldpay sees one refund.
    await loseNextAnswer(w, c.paymentId, 'refund');
    const lost = await call('POST', `/v1/paypal-payments/${c.id}/refund`);
    expect(lost.body.outcome).toBe('unknown');
    expect((await call('POST', `/v1/paypal-payments/${c.id}/refund`)).status).toBe(409);
    expect((await call('POST', `/v1/paypal-payments/${c.id}/partial-refund`, { amount: 1 })).status).toBe(
      409,
    );
    const shown = await call('GET', `/v1/paypal-payments/${c.id}`);
    expect(shown.body).toMatchObject({
      lastEvent: 'sentForRefund',
      refunded: 3000,
      left: 0,
      asked: { asked: true },
    });
    expect(refundsSent(w, c.paymentId)).toHaveLength(1);
  });

  it('names the field of a bad track request and stores nothing', async () => {
    const r = await call('POST', '/v1/paypal-payments', {
      eventsLink: 'https://elsewhere.example/payments/alternative/action/paypal/events/x',
      amount: 100,
      currency: 'GBP',
    });
    expect(r.status).toBe(400);
    expect(r.body.error.field).toBe('eventsLink');
    const missing = await call('POST', '/v1/paypal-payments', { amount: 100, currency: 'GBP' });
    expect(missing.status).toBe(400);
    expect(missing.body.error.field).toBe('eventsLink');
    expect((await call('GET', '/v1/paypal-payments/999999')).status).toBe(404);
  });

  /** Worldpay's events webhook, as its events service POSTs it. */
  async function webhook(eventId: string, details: Record<string, unknown>) {
    const res = await request(`${url}/webhooks/worldpay`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.worldpay.events-v1.hal+json' },
      body: JSON.stringify({
        eventId,
        eventTimestamp: NOW.toISOString(),
        eventDetails: { classification: 'payment', ...details },
      }),
    });
    return (await res.body.json()) as { outcome: string };
  }

  const stateOf = async (id: number) =>
    (await call('GET', `/v1/paypal-payments/${id}`)).body.refunds.map((r: Json) => [r.reference, r.state]);

  it("Worldpay's webhooks settle a refund in doubt by its reference, and name a payment by its transactionReference", async () => {
    const d = await track(4000, undefined, { transactionReference: 'checkout-pp-77' });
    await loseNextAnswer(w, d.paymentId, 'partialRefund');
    const lost = await call('POST', `/v1/paypal-payments/${d.id}/partial-refund`, { amount: 1000 });
    expect(lost.body.outcome).toBe('unknown');
    // The query shows sentForSettlement: nothing settles it there.
    expect(await stateOf(d.id)).toEqual([[lost.body.reference, 'requested']]);

    const first = await webhook('evt-pp-1', {
      transactionReference: 'checkout-pp-77',
      type: 'sentForRefund',
      reference: lost.body.reference,
      amount: { value: 1000, currencyCode: 'GBP' },
    });
    expect(first.outcome).toBe('applied');
    expect(
      (
        await webhook('evt-pp-1', {
          transactionReference: 'checkout-pp-77',
          type: 'sentForRefund',
          reference: lost.body.reference,
        })
      ).outcome,
    ).toBe('duplicate');
    const after = await call('GET', `/v1/paypal-payments/${d.id}`);
    expect(after.body).toMatchObject({ refunded: 1000, pending: 0, left: 3000 });

    // A refundFailed naming only the payment fails its latest accepted refund.
    const full = await call('POST', `/v1/paypal-payments/${d.id}/refund`);
    expect(full.body.outcome).toBe('accepted');
    expect(
      (await webhook('evt-pp-2', { transactionReference: 'checkout-pp-77', type: 'refundFailed' })).outcome,
    ).toBe('applied');
    expect(await stateOf(d.id)).toEqual([
      [lost.body.reference, 'accepted'],
      [full.body.reference, 'failed'],
    ]);
    const types = await w.t.database.rows<{ type: string }>(
      sql`select type from events where data->'paypalPayment'->>'id' = ${String(d.id)} order by seq`,
    );
    expect(types.map((t) => t.type)).toEqual([
      'paypal_payment.tracked',
      'paypal_payment.refund_requested',
      'paypal_payment.refunded',
      'paypal_payment.refund_requested',
      'paypal_payment.refunded',
      'paypal_payment.refund_failed',
    ]);
    expect(
      (await webhook('evt-pp-3', { transactionReference: 'nobody-knows', type: 'refunded' })).outcome,
    ).toBe('unknown_reference');
  });
});
