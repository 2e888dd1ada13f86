import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type App, openApp } from '../../src/app.ts';
import { createMandate, showMandate } from '../../src/billing/mandates/index.ts';
import { getCharge } from '../../src/billing/operator/charges.ts';
import { paymentAction } from '../../src/billing/operator/payments.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { fixedClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { num } from '../../src/db/values.ts';
import { formatMoney } from '../../src/domain/money.ts';
import { createWorldpayGateway } from '../../src/gateways/worldpay/index.ts';
import { normalisePaymentStatus, WORLDPAY_EVENT_TYPES } from '../../src/gateways/worldpay/status.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { type Sandbox, startSandbox } from '../../src/sandbox/server.ts';
import { addFormats } from '../support/ajv.ts';
import { cliEnv, runCli } from '../support/cli.ts';
import { sharedFile } from '../support/shared.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * Every Worldpay event type through the webhook receiver, over loopback HTTP against a real
 * database: each moves the charge through its machine or is kept as a fact, a dispute is
 * recorded once, a chargeback pauses the card's mandates (or, under `notify`, only tells), an
 * unknown type is kept and logged, and the sandbox sends chargebacks end to end.
 */

const T0 = new Date('2026-05-01T09:00:00Z');
const T1 = new Date('2026-05-01T10:00:00Z');
const SECRET = 'events-secret-0123456789';
const TOKEN = 'tok';

const sign = (raw: string) => `k1/SHA256/${createHmac('sha256', SECRET).update(raw).digest('hex')}`;

/** The Events API file, found beside the main checkout or beside the worktrees' folder. */
const eventsFile = sharedFile('worldpay-openapi/worldpay-events-openapi.yaml');
type Json = Record<string, unknown>;

/** camelCase as the events query's `lastEvent` spells it: `chargedBack` -> `Charged Back`. */
const titleCase = (t: string) =>
  t
    .replace(/([A-Z])/g, ' $1')
    .replace(/^./, (c) => c.toUpperCase())
    .replace(' For ', ' for ');

/** What each documented type does to a charge that is `settling`. */
const EXPECTED: Record<(typeof WORLDPAY_EVENT_TYPES)[number], { state: string; dispute?: string }> = {
  sentForAuthorization: { state: 'settling' },
  authorized: { state: 'settling' },
  sentForSettlement: { state: 'settling' },
  settled: { state: 'settled' },
  settlementFailed: { state: 'settle_failed' },
  cancelled: { state: 'cancelled' },
  error: { state: 'settling' },
  expired: { state: 'settling' },
  refused: { state: 'settling' },
  sentForRefund: { state: 'refunded' },
  refunded: { state: 'refunded' },
  refundFailed: { state: 'settling' },
  tokenCreated: { state: 'settling' },
  settlementInstructed: { state: 'settling' },
  settlementRejected: { state: 'settle_failed' },
  chargedBack: { state: 'settling', dispute: 'charged_back' },
  cancelledByCustomer: { state: 'cancelled' },
  requestExpired: { state: 'settling' },
  informationRequested: { state: 'settling', dispute: 'information_requested' },
};

describe('Worldpay events: every type handled or kept, chargebacks and disputes', () => {
  let w: World;
  let app: App;
  let server: AdminServer;
  let url: string;
  const logLines: string[] = [];
  let n = 0;

  beforeAll(async () => {
    w = await startWorld({
      env: { WORLDPAY_WEBHOOK_SECRETS: `k1:${SECRET}`, REBILL_ADMIN_TOKENS: TOKEN },
    });
    const logger = pino({ level: 'info' }, { write: (line: string) => logLines.push(line) });
    app = await openApp(w.config, { database: w.t.database, clock: fixedClock(T1), logger });
    server = await createAdminServer({ ctx: app, runner: createRunner(app) });
    url = await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    await server?.close();
    await app?.close();
    await w?.close();
  });

  /** A mandate of `customerRef` on the card behind `href` (a new verification when not given). */
  async function mandate(a: App, customerRef: string, href?: string) {
    const link = href ?? (await w.verify()).href;
    const m = await createMandate(a, {
      customerRef,
      intent: 'subscription',
      amount: 2500,
      currency: 'EUR',
      narrative: 'Events test',
      interval: '1 month',
      start: T0,
      settleMode: 'none',
      credential: { link },
    });
    return { id: m.id, href: link };
  }

  /** A charge whose settle was accepted (state settling), its reference and its mandate. */
  async function settlingCharge(a: App = app, customerRef = `ev-${++n}`) {
    const m = await mandate(a, customerRef);
    await runBilling(a, { asOf: T1, trigger: 'test', mandateId: m.id });
    const d = await showMandate(w.t.database, m.id);
    const chargeId = d.charges[0]!.id;
    await paymentAction(a, chargeId, 'settle');
    return { chargeId, reference: d.charges[0]!.attempts[0]!.reference, mandateId: m.id, href: m.href };
  }

  const event = (
    reference: string,
    type: string,
    extra: Record<string, unknown> = {},
    eventId: string = randomUUID(),
  ) =>
    JSON.stringify({
      eventId,
      eventTimestamp: '2026-05-01T10:05:00Z',
      eventDetails: { classification: 'payment', transactionReference: reference, type, ...extra },
    });

  async function post(raw: string, to = url) {
    const res = await request(`${to}/webhooks/worldpay`, {
      method: 'POST',
      headers: {
        'content-type': 'application/vnd.worldpay.events-v1.hal+json',
        'event-signature': sign(raw),
      },
      body: raw,
    });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  }

  async function api(method: 'GET' | 'POST', p: string, to = url) {
    const res = await request(`${to}${p}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
      },
      ...(method === 'POST' ? { body: '{}' } : {}),
    });
    return { status: res.statusCode, body: (await res.body.json()) as Json };
  }

  const status = async (mandateId: number) =>
    (
      await w.t.database.rows<{ status: string; status_reason: string | null }>(
        sql`select status, status_reason from mandates where id = ${mandateId}`,
      )
    )[0]!;

  const eventsOfType = async (type: string, mandateId: number) =>
    w.t.database.rows<{ data: Json }>(
      sql`select data from events where type = ${type} and mandate_id = ${mandateId} order by id`,
    );

  it('the receiver knows every payment and chargeback type of the Events API file', () => {
    if (!existsSync(eventsFile))
      return expect.fail('worldpay-events-openapi.yaml not found beside the checkout');
    const doc = parse(readFileSync(eventsFile, 'utf8')) as { webhooks: Record<string, { post: Json }> };
    const documented = Object.entries(doc.webhooks)
      .filter(([, v]) => ['Payment', 'Chargeback'].includes((v.post.tags as string[])[0]!))
      .map(([k]) => k)
      // Top-ups of a prepaid balance are no recurring charge's: kept as unknown types.
      .filter((k) => !k.startsWith('topUp'));
    expect([...WORLDPAY_EVENT_TYPES].sort()).toEqual(documented.sort());
    for (const t of WORLDPAY_EVENT_TYPES) {
      expect(normalisePaymentStatus(t), t).not.toBe('other');
      expect(normalisePaymentStatus(titleCase(t)), titleCase(t)).toBe(normalisePaymentStatus(t));
    }
    expect(titleCase('sentForSettlement')).toBe('Sent for Settlement');
    expect(normalisePaymentStatus('topUpAccepted')).toBe('other');
  });

  it('every listed type posted to the receiver moves the charge or is kept as a fact', async () => {
    for (const [type, want] of Object.entries(EXPECTED)) {
      const { chargeId, reference } = await settlingCharge();
      const eventId = randomUUID();
      const res = await post(event(reference, type, {}, eventId));
      const moves = want.state !== 'settling' || want.dispute !== undefined;
      expect(res, type).toEqual({ status: 200, body: { ok: true, outcome: moves ? 'applied' : 'recorded' } });
      const c = await getCharge(w.t.database, chargeId);
      expect(c.state, type).toBe(want.state);
      expect(
        c.events.map((e) => [e.eventId, e.lastEvent]),
        type,
      ).toEqual([[eventId, type]]);
      expect(
        c.disputes.map((d) => d.status),
        type,
      ).toEqual(want.dispute ? [want.dispute] : []);
    }
    // A known type is no news for the operator: no warning of an unknown one.
    const warned = logLines.map((l) => JSON.parse(l) as Json).filter((l) => l.level === 40);
    expect(warned.filter((l) => Object.hasOwn(EXPECTED, String(l.type)))).toEqual([]);
  });

  it('takes the types as the events query spells them, in title case', async () => {
    const cases: [string, string, string | undefined][] = [
      ['Settlement Rejected', 'settle_failed', undefined],
      ['Cancelled By Customer', 'cancelled', undefined],
      ['Information Requested', 'settling', 'information_requested'],
      ['Charged Back', 'settling', 'charged_back'],
    ];
    for (const [type, state, dispute] of cases) {
      const { chargeId, reference } = await settlingCharge();
      expect((await post(event(reference, type))).body.outcome, type).toBe('applied');
      const c = await getCharge(w.t.database, chargeId);
      expect(c.state, type).toBe(state);
      expect(
        c.disputes.map((d) => d.status),
        type,
      ).toEqual(dispute ? [dispute] : []);
    }
  });

  it('keeps an unknown type (row and warning) and answers 200, for a known or an unknown payment', async () => {
    const { chargeId, reference } = await settlingCharge();
    const id = randomUUID();
    const raw = event(reference, 'chargebackReversed', { note: 'new in some later API' }, id);
    expect(await post(raw)).toEqual({ status: 200, body: { ok: true, outcome: 'recorded' } });
    const kept = await w.t.database.rows<{ last_event: string; payload: Json; attempt_id: number | null }>(
      sql`select last_event, payload, attempt_id from payment_events where event_id = ${id}`,
    );
    expect(kept).toHaveLength(1);
    expect(kept[0]!.last_event).toBe('chargebackReversed');
    expect(kept[0]!.payload).toEqual(JSON.parse(raw));
    expect((await getCharge(w.t.database, chargeId)).state).toBe('settling');
    const warned = logLines.map((l) => JSON.parse(l) as Json).filter((l) => l.eventId === id);
    expect(warned.some((l) => l.level === 40 && l.type === 'chargebackReversed')).toBe(true);

    // A payout's event: no payment of rebill's, kept all the same (once, however often it comes).
    const payoutId = randomUUID();
    const payout = event('payout-77', 'disbursed', {}, payoutId);
    for (let i = 0; i < 2; i++)
      expect(await post(payout)).toEqual({ status: 200, body: { ok: true, outcome: 'unknown_reference' } });
    const rows = await w.t.database.rows<{ last_event: string; attempt_id: number | null }>(
      sql`select last_event, attempt_id from payment_events where event_id = ${payoutId}`,
    );
    expect(rows).toEqual([{ last_event: 'disbursed', attempt_id: null }]);
    expect(
      logLines.map((l) => JSON.parse(l) as Json).some((l) => l.eventId === payoutId && l.level === 40),
    ).toBe(true);
  });

  it('a chargeback under the default policy records the dispute, pauses the card’s mandates and a resume clears it', async () => {
    expect(w.config.webhook.chargebackPolicy).toBe('pause');
    const customer = `cb-${++n}`;
    const disputed = await settlingCharge(app, customer);
    // Two more mandates on the same card (one credential), one on another card of the same
    // customer, one of another customer.
    const same1 = await mandate(app, customer, disputed.href);
    const same2 = await mandate(app, customer, disputed.href);
    const otherCard = await mandate(app, customer);
    const otherCustomer = await mandate(app, `cb-other-${n}`);

    // The issuer asks first: a dispute opens, the merchant hears of it, nothing is paused.
    const asked = event(disputed.reference, 'informationRequested', {
      classification: 'chargeback',
      amount: { value: 2500, currencyCode: 'EUR' },
    });
    expect((await post(asked)).body.outcome).toBe('applied');
    expect((await status(same1.id)).status).toBe('active');
    const opened = await eventsOfType('charge.disputed', disputed.mandateId);
    expect(opened).toHaveLength(1);
    expect(opened[0]!.data).toMatchObject({
      id: disputed.chargeId,
      dispute: { status: 'information_requested', amount: 2500, currency: 'EUR' },
    });

    // Then it takes the money back.
    const cbId = randomUUID();
    const cb = event(
      disputed.reference,
      'chargedBack',
      { amount: { value: 2000, currencyCode: 'EUR' }, reasonCode: '10.4', reason: 'Fraud, card absent' },
      cbId,
    );
    expect(await post(cb)).toEqual({ status: 200, body: { ok: true, outcome: 'applied' } });

    const shown = await api('GET', `/v1/charges/${disputed.chargeId}`);
    expect(shown.status).toBe(200);
    expect(shown.body.disputes).toEqual([
      {
        id: expect.any(Number),
        chargeId: disputed.chargeId,
        status: 'charged_back',
        amount: 2000,
        currency: 'EUR',
        reasonCode: '10.4',
        reason: 'Fraud, card absent',
        disputedAt: '2026-05-01T10:05:00.000Z',
        chargedBackAt: '2026-05-01T10:05:00.000Z',
        receivedAt: expect.any(String),
        policy: 'pause',
      },
    ]);
    // The list of disputes has it, filtered by status and by mandate.
    const listed = await api('GET', `/v1/disputes?status=charged_back&mandateId=${disputed.mandateId}`);
    expect(listed).toEqual({ status: 200, body: { items: shown.body.disputes, next: null } });
    expect(
      (await api('GET', `/v1/disputes?status=information_requested&mandateId=${disputed.mandateId}`)).body,
    ).toEqual({
      items: [],
      next: null,
    });
    const wrong = await api('GET', '/v1/disputes?status=won');
    expect(wrong.status).toBe(400);
    expect(JSON.stringify(wrong.body)).toContain('status');
    // The charge itself is not moved: the dispute is a fact beside it.
    expect((shown.body as { state: string }).state).toBe('settling');

    for (const m of [disputed.mandateId, same1.id, same2.id])
      expect(await status(m), `mandate ${m}`).toEqual({ status: 'paused', status_reason: 'chargeback' });
    expect((await status(otherCard.id)).status).toBe('active');
    expect((await status(otherCustomer.id)).status).toBe('active');
    for (const m of [same1.id, same2.id]) {
      const paused = await eventsOfType('mandate.paused', m);
      expect(paused).toHaveLength(1);
      expect(paused[0]!.data).toMatchObject({ status: 'paused', reason: 'chargeback' });
    }
    const back = await eventsOfType('charge.charged_back', disputed.mandateId);
    expect(back).toHaveLength(1);
    expect(back[0]!.data).toMatchObject({
      id: disputed.chargeId,
      dispute: { status: 'charged_back', amount: 2000 },
      pausedMandateIds: [disputed.mandateId, same1.id, same2.id].sort((a, b) => a - b),
    });

    // rebill charges show lists the dispute under the charge (and in its JSON).
    const cli = cliEnv(w);
    try {
      const shownCli = await runCli(['charges', 'show', String(disputed.chargeId)], cli.env);
      expect(shownCli.stderr).toBe('');
      expect(shownCli.code).toBe(0);
      const lines = shownCli.stdout.split('\n');
      const row = lines[lines.indexOf('disputes') + 3] ?? '';
      for (const cell of ['charged_back', formatMoney(2000, 'EUR'), '10.4', 'Fraud, card absent', 'pause'])
        expect(row).toContain(cell);
      const json = await runCli(['charges', 'show', String(disputed.chargeId), '--json'], cli.env);
      expect(JSON.parse(json.stdout).disputes).toEqual(shown.body.disputes);
    } finally {
      cli.dispose();
    }

    // A paused mandate is not charged: a run at the next cycle leaves it alone.
    const later = new Date('2026-06-01T10:00:00Z');
    const laterApp = await w.app(later);
    await runBilling(laterApp, { asOf: later, trigger: 'test', mandateId: same1.id });
    expect((await showMandate(w.t.database, same1.id)).charges.filter((c) => c.state !== 'skipped')).toEqual(
      [],
    );

    // Redelivered (same event id), and sent again under a new event id: nothing twice.
    expect((await post(cb)).body.outcome).toBe('duplicate');
    expect((await post(event(disputed.reference, 'chargedBack'))).body.outcome).toBe('recorded');
    expect((await post(asked)).body.outcome).toBe('duplicate');
    expect(
      num(
        (
          await w.t.database.rows(
            sql`select count(*) as n from disputes where charge_id = ${disputed.chargeId}`,
          )
        )[0]?.n,
      ),
    ).toBe(1);
    expect(await eventsOfType('charge.charged_back', disputed.mandateId)).toHaveLength(1);
    expect(await eventsOfType('charge.disputed', disputed.mandateId)).toHaveLength(1);
    expect(await eventsOfType('mandate.paused', same1.id)).toHaveLength(1);

    // An operator's resume clears it, as any pause.
    const resumed = await api('POST', `/v1/mandates/${same1.id}/resume`);
    expect(resumed.status).toBe(200);
    expect(await status(same1.id)).toEqual({ status: 'active', status_reason: 'resumed by operator' });
    expect(await eventsOfType('mandate.resumed', same1.id)).toHaveLength(1);
    expect((await status(same2.id)).status).toBe('paused');
  });

  it('refuses a dispute event whose amount is malformed, naming the field, and writes nothing', async () => {
    const { chargeId, reference } = await settlingCharge();
    const id = randomUUID();
    const res = await post(
      event(reference, 'chargedBack', { amount: { value: '20.00', currencyCode: 'EUR' } }, id),
    );
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('eventDetails.amount.value');
    const bad = await post(event(reference, 'chargedBack', { amount: { value: 2000, currencyCode: 'XYZ' } }));
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('eventDetails.amount.currencyCode');
    const c = await getCharge(w.t.database, chargeId);
    expect(c.events).toEqual([]);
    expect(c.disputes).toEqual([]);
  });

  it('under REBILL_CHARGEBACK_POLICY=notify a chargeback pauses nothing and still tells', async () => {
    const config = loadConfig({ ...w.env, REBILL_CHARGEBACK_POLICY: 'notify' });
    expect(config.webhook.chargebackPolicy).toBe('notify');
    const notifyApp = await openApp(config, {
      database: w.t.database,
      clock: fixedClock(T1),
      logger: silentLogger,
    });
    const notifyServer = await createAdminServer({ ctx: notifyApp, runner: createRunner(notifyApp) });
    try {
      const notifyUrl = await notifyServer.listen('127.0.0.1:0');
      const customer = `nt-${++n}`;
      const disputed = await settlingCharge(notifyApp, customer);
      const same = await mandate(notifyApp, customer, disputed.href);
      const res = await post(event(disputed.reference, 'chargedBack'), notifyUrl);
      expect(res.body.outcome).toBe('applied');
      expect((await status(disputed.mandateId)).status).toBe('active');
      expect((await status(same.id)).status).toBe('active');
      expect(await eventsOfType('mandate.paused', same.id)).toEqual([]);
      const back = await eventsOfType('charge.charged_back', disputed.mandateId);
      expect(back).toHaveLength(1);
      // Without an amount in the event, the dispute is for what was settled (here, the charge).
      expect(back[0]!.data).toMatchObject({
        dispute: { status: 'charged_back', amount: 2500, currency: 'EUR', policy: 'notify' },
        pausedMandateIds: [],
      });
    } finally {
      await notifyServer.close();
      await notifyApp.close();
    }
    expect(() => loadConfig({ ...w.env, REBILL_CHARGEBACK_POLICY: 'ignore' })).toThrow(
      /REBILL_CHARGEBACK_POLICY.*must be one of pause, notify/,
    );
  });

  it('end to end: the sandbox sends a signed dispute and a chargeback the receiver records', async () => {
    if (!existsSync(eventsFile))
      return expect.fail('worldpay-events-openapi.yaml not found beside the checkout');
    const doc = parse(readFileSync(eventsFile, 'utf8')) as { components: Json };
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema({ $id: 'events', components: doc.components });
    const schemaOf = (name: string) => ajv.getSchema(`events#/components/schemas/${name}`)!;
    let sandbox: Sandbox | undefined;
    let appB: App | undefined;
    try {
      sandbox = await startSandbox({
        port: 0,
        now: () => T1.getTime(),
        webhook: { url: `${url}/webhooks/worldpay`, secret: SECRET, keyId: 'k1' },
      });
      const control = async (p: string, body: unknown) => {
        const res = await request(`${sandbox!.url}${p}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { status: res.statusCode, body: (await res.body.json()) as Json };
      };
      // This app's Worldpay is the second sandbox: its links are on that origin.
      appB = await openApp(
        { ...w.config, worldpay: { ...w.config.worldpay, url: sandbox.url } },
        {
          database: w.t.database,
          clock: fixedClock(T1),
          logger: silentLogger,
          gateways: {
            worldpay: createWorldpayGateway({
              url: sandbox.url,
              username: 'sandbox',
              password: 'sandbox',
              entity: 'default',
              maxInFlight: 8,
              requestsPerSecond: 0,
              connectTimeoutMs: 2000,
              requestTimeoutMs: 2000,
              logger: silentLogger,
            }),
          },
        },
      );
      const v = (await control('/_sandbox/verifications', {})).body as { href: string };
      const customer = `e2e-${++n}`;
      const base = {
        customerRef: customer,
        intent: 'subscription',
        amount: 990,
        currency: 'EUR',
        narrative: 'Dispute e2e',
        interval: '1 month',
        start: T0,
        credential: { link: v.href },
      };
      const m = await createMandate(appB, base);
      const same = await createMandate(appB, { ...base, start: new Date('2026-05-20T00:00:00Z') });
      await runBilling(appB, { asOf: T1, trigger: 'test', mandateId: m.id });
      await sandbox.webhooksDrained();
      const charge = (await showMandate(w.t.database, m.id)).charges[0]!;
      expect(charge.state).toBe('settled');
      const reference = charge.attempts[0]!.reference;

      // The control route checks its input and the payment.
      expect(
        (await control('/_sandbox/disputes', { transactionReference: reference, type: 'won' })).status,
      ).toBe(400);
      expect(
        (await control('/_sandbox/disputes', { transactionReference: 'nope', type: 'chargedBack' })).status,
      ).toBe(404);
      expect(
        (
          await control('/_sandbox/disputes', {
            transactionReference: reference,
            type: 'chargedBack',
            amount: 991,
          })
        ).status,
      ).toBe(400);

      // A sandbox started without a webhook URL has nowhere to send it, and says so.
      const nowhere = await request(`${w.sandbox.url}/_sandbox/disputes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ transactionReference: reference, type: 'chargedBack' }),
      });
      expect(nowhere.statusCode).toBe(409);
      expect(((await nowhere.body.json()) as Json).errorName).toBe('webhookNotConfigured');

      const asked = await control('/_sandbox/disputes', {
        transactionReference: reference,
        type: 'informationRequested',
      });
      expect(asked.status).toBe(202);
      expect(schemaOf('informationRequestedChargeback')(asked.body)).toBe(true);
      await sandbox.webhooksDrained();
      expect((await getCharge(w.t.database, charge.id)).disputes.map((d) => d.status)).toEqual([
        'information_requested',
      ]);

      const cb = await control('/_sandbox/disputes', {
        transactionReference: reference,
        type: 'chargedBack',
        amount: 500,
        reasonCode: '13.1',
      });
      expect(cb.status).toBe(202);
      expect(schemaOf('chargedBack')(cb.body)).toBe(true);
      expect(cb.body).toMatchObject({
        eventDetails: {
          type: 'chargedBack',
          transactionReference: reference,
          amount: { value: 500, currencyCode: 'EUR' },
        },
      });
      await sandbox.webhooksDrained();
      expect(sandbox.stats().webhooks.failedAttempts).toBe(0);
      const c = await getCharge(w.t.database, charge.id);
      expect(c.state).toBe('settled');
      expect(c.disputes).toMatchObject([
        { status: 'charged_back', amount: 500, currency: 'EUR', reasonCode: '13.1', policy: 'pause' },
      ]);
      expect(c.events.map((e) => e.lastEvent)).toEqual(
        expect.arrayContaining(['informationRequested', 'chargedBack']),
      );
      expect((await status(m.id)).status).toBe('paused');
      expect(await status(same.id)).toEqual({ status: 'paused', status_reason: 'chargeback' });
    } finally {
      await appB?.close();
      await sandbox?.close();
    }
  });
});
