import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/server.js';

const AUTH = 'Basic ' + Buffer.from('sandbox:sandbox').toString('base64');
const V6 = 'application/vnd.worldpay.payments-v6+json';
const HEADERS = {
  authorization: AUTH,
  'content-type': V6,
  accept: 'application/vnd.worldpay.payments-v6.hal+json',
};
const START = Date.parse('2026-03-01T09:00:00Z');

// The fields the tests read from response bodies. A mapped type over known keys keeps deep reads
// typed without `any`; leaves are used as strings (hrefs, codes).
type JsonKey =
  | '_links'
  | 'href'
  | 'outcome'
  | 'code'
  | 'description'
  | 'refusalCode'
  | 'refusalDescription'
  | 'advice'
  | 'refusalAdvice'
  | 'errorName'
  | 'validationErrors'
  | 'jsonPath'
  | 'lastEvent'
  | 'paymentInstrument'
  | 'type'
  | 'card'
  | 'paymentAccountReference'
  | 'payments:cancel'
  | 'payments:settle'
  | 'payments:partialSettle'
  | 'payments:events'
  | 'payments:refund'
  | 'payments:partialRefund'
  | 'payments:recurringAuthorize'
  | 'payments:migrateRecurringAuthorize'
  | 'action:events'
  | 'action:refund'
  | 'action:partialRefund'
  | 'paymentId';
type Json = { readonly [K in JsonKey]: Json } & string;

interface BodyOverrides {
  instrument?: Record<string, unknown>;
  value?: Record<string, unknown>;
  instruction?: Record<string, unknown>;
  entity?: string;
}

function authBody(transactionReference: string, overrides: BodyOverrides = {}): Record<string, unknown> {
  return {
    transactionReference,
    merchant: { entity: overrides.entity ?? 'default' },
    instruction: {
      narrative: { line1: 'Mind Palace Ltd' },
      paymentInstrument: {
        type: 'card/plain',
        cardNumber: '4444333322221111',
        cardExpiryDate: { month: 12, year: 2035 },
        ...overrides.instrument,
      },
      value: { currency: 'GBP', amount: 1000, ...overrides.value },
      intent: 'subscription',
      ...overrides.instruction,
    },
  };
}

async function post(url: string, body?: unknown, headers: Record<string, string> = HEADERS) {
  const res = await request(url, {
    method: 'POST',
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    body: (text ? JSON.parse(text) : undefined) as Json,
  };
}

async function get(url: string, headers: Record<string, string> = HEADERS) {
  const res = await request(url, { headers });
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as Json };
}

async function control(sandbox: Sandbox, path: string, body: unknown) {
  return post(sandbox.url + path, body, { 'content-type': 'application/json' });
}

async function verify(sandbox: Sandbox, cardHolderName?: string): Promise<{ chainId: string; href: string }> {
  const res = await control(sandbox, '/_sandbox/verifications', {
    cardNumber: '4444333322221111',
    cardHolderName,
  });
  return res.body as unknown as { chainId: string; href: string };
}

describe('worldpay sandbox', () => {
  let clock = START;
  let sandbox: Sandbox;

  beforeAll(async () => {
    sandbox = await startSandbox({
      now: () => clock,
      plugins: [(app) => void app.get('/liquido/ping', async () => ({ pong: true }))],
    });
  });
  afterAll(() => sandbox.close());
  beforeEach(() => {
    clock = START;
    sandbox.reset();
  });

  async function authorized(reference: string, amount = 1000): Promise<Json> {
    const { href } = await verify(sandbox);
    const res = await post(href, authBody(reference, { value: { amount } }));
    expect(res.body.outcome).toBe('authorized');
    return res.body._links;
  }

  it('answers 401 accessDenied without valid Basic auth, with a correlation id', async () => {
    const res = await get(sandbox.url + '/payments', {
      authorization: 'Basic ' + Buffer.from('x:y').toString('base64'),
    });
    expect(res.status).toBe(401);
    expect(res.body.errorName).toBe('accessDenied');
    expect(res.headers['wp-correlationid']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('lists migrateRecurringAuthorize on the payments root', async () => {
    const res = await get(sandbox.url + '/payments');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('application/vnd.worldpay.payments-v6.hal+json');
    expect(res.body._links['payments:migrateRecurringAuthorize'].href).toBe(
      sandbox.url + '/payments/authorizations/migrateRecurring',
    );
  });

  it('answers 415 headerHasInvalidValue to a plain JSON content type', async () => {
    const res = await post(sandbox.url + '/payments/authorizations/migrateRecurring', authBody('mt-1'), {
      ...HEADERS,
      'content-type': 'application/json',
    });
    expect(res.status).toBe(415);
    expect(res.body.errorName).toBe('headerHasInvalidValue');
  });

  it('answers 400 bodyDoesNotMatchSchema naming each bad field by jsonPath', async () => {
    const body = authBody('bad ref with spaces', {
      value: { amount: 0, currency: 'gbp' },
      instruction: { narrative: { line1: 'x'.repeat(25) }, intent: 'sometimes' },
      instrument: { cardNumber: '4444-3333', cardExpiryDate: { month: 13, year: 2035 } },
      entity: '-bad',
    });
    const res = await post(sandbox.url + '/payments/authorizations/migrateRecurring', body);
    expect(res.status).toBe(400);
    expect(res.body.errorName).toBe('bodyDoesNotMatchSchema');
    const byPath = Object.fromEntries(
      (res.body.validationErrors as unknown as Json[]).map((e) => [e.jsonPath, e.errorName]),
    );
    expect(byPath).toEqual({
      '$.transactionReference': 'stringFailedRegexCheck',
      '$.merchant.entity': 'stringFailedRegexCheck',
      '$.instruction.narrative.line1': 'stringIsTooLong',
      '$.instruction.value.amount': 'integerIsTooSmall',
      '$.instruction.value.currency': 'stringFailedRegexCheck',
      '$.instruction.intent': 'fieldHasInvalidValue',
      '$.instruction.paymentInstrument.cardNumber': 'stringFailedRegexCheck',
      '$.instruction.paymentInstrument.cardExpiryDate.month': 'integerIsTooLarge',
    });
    const missing = await post(sandbox.url + '/payments/authorizations/migrateRecurring', { merchant: {} });
    expect(missing.body.validationErrors).toContainEqual(
      expect.objectContaining({ errorName: 'fieldIsMissing', jsonPath: '$.instruction' }),
    );
  });

  it('answers 400 transactionReferenceIsADuplicate to a reused reference and counts it', async () => {
    const first = await post(sandbox.url + '/payments/authorizations/migrateRecurring', authBody('dup-1'));
    expect(first.status).toBe(201);
    const again = await post(first.body._links['payments:recurringAuthorize'].href, authBody('dup-1'));
    expect(again.status).toBe(400);
    expect(again.body.errorName).toBe('transactionReferenceIsADuplicate');
    expect(sandbox.stats().duplicateReferences).toBe(1);
  });

  it('rotates the recurring link on every authorization and counts stale links', async () => {
    const { chainId, href: link1 } = await verify(sandbox);
    expect(link1).toMatch(/\/payments\/authorizations\/recurring\/[A-Za-z0-9+=]+\.[^.]*\+.*\/.*:.*=$/);
    const first = await post(link1, authBody('rot-1'));
    const link2 = first.body._links['payments:recurringAuthorize'].href;
    expect(link2).not.toBe(link1);
    const second = await post(link2, authBody('rot-2'));
    expect(second.status).toBe(201);
    const stale = await post(link1, authBody('rot-3'));
    expect(stale.status).toBe(201);
    const entries = sandbox.ledger().filter((e) => e.op === 'authorize');
    expect(entries.map((e) => [e.transactionReference, e.chainId, e.stale])).toEqual([
      ['rot-1', chainId, false],
      ['rot-2', chainId, false],
      ['rot-3', chainId, true],
    ]);
    expect(sandbox.stats().staleLinkUses).toBe(1);
    // A client that re-encodes the opaque part misses the resource, as on Worldpay.
    const reencoded = link2.replace('+', '%2B');
    expect((await post(reencoded, authBody('rot-4'))).status).toBe(404);
    expect(
      (await post(sandbox.url + '/payments/authorizations/recurring/nope', authBody('rot-5'))).body.errorName,
    ).toBe('endpointNotFound');
  });

  it('continues the chain of the same card on migrateRecurring and returns the Apple Pay PAR', async () => {
    const url = sandbox.url + '/payments/authorizations/migrateRecurring';
    const a = await post(url, authBody('mig-1'));
    const b = await post(url, authBody('mig-2'));
    expect(a.body._links['payments:recurringAuthorize'].href).not.toBe(
      b.body._links['payments:recurringAuthorize'].href,
    );
    const [ea, eb] = sandbox.ledger();
    expect(ea!.chainId).toBe(eb!.chainId);
    const apple = await post(
      url,
      authBody('mig-3', {
        instrument: { type: 'card/networkToken+applepay', cardNumber: undefined, dpan: '4444333322221111' },
      }),
    );
    expect(apple.status).toBe(201);
    expect(apple.body.paymentInstrument.type).toBe('card/network');
    expect(apple.body.paymentInstrument.card.paymentAccountReference).toMatch(/^[A-Z0-9]+$/);
  });

  it('carries magic cardholder names along the chain', async () => {
    const { href } = await verify(sandbox, 'REFUSED33');
    const refused = await post(href, authBody('mag-1'));
    expect(refused.status).toBe(201);
    expect(refused.body).toMatchObject({ outcome: 'refused', code: '33', description: 'CARD EXPIRED' });
    expect(refused.body._links).toBeUndefined();
    const again = await post(href, authBody('mag-2'));
    expect(again.body.code).toBe('33');

    const mac = await verify(sandbox, 'REFUSEDRC79MAC01');
    const withAdvice = await post(mac.href, authBody('mag-3'));
    expect(withAdvice.body).toMatchObject({ code: '79', refusalAdvice: { code: '01' } });

    const error = await verify(sandbox, 'ERROR');
    const failed = await post(error.href, authBody('mag-4'));
    expect(failed.status).toBe(500);
    expect(failed.body.errorName).toBe('internalErrorOccurred');

    const migrated = await post(
      sandbox.url + '/payments/authorizations/migrateRecurring',
      authBody('mag-5', { instrument: { cardNumber: '5555555555554444', cardHolderName: 'REFUSED' } }),
    );
    expect(migrated.body).toMatchObject({ outcome: 'refused', code: '5', description: 'REFUSED' });
  });

  it('plays scripted refusals in v6 and v7 spelling, reference rules before chain rules', async () => {
    const { chainId, href } = await verify(sandbox);
    sandbox.script({
      match: { chainId },
      outcomes: [{ type: 'refuse', code: '51', adviceCode: '02', spelling: 'v7' }],
    });
    await control(sandbox, '/_sandbox/script', {
      match: { transactionReference: 'scr-1' },
      outcomes: [{ type: 'refuse', code: '05', description: 'DO NOT HONOUR' }],
    });
    const v6 = await post(href, authBody('scr-1'));
    expect(v6.body).toMatchObject({ outcome: 'refused', code: '05', description: 'DO NOT HONOUR' });
    const v7 = await post(href, authBody('scr-2'));
    expect(v7.body).toMatchObject({
      outcome: 'refused',
      refusalCode: '51',
      refusalDescription: 'LIMIT EXCEEDED',
      advice: { code: '02' },
    });
    expect(v7.body.code).toBeUndefined();
    const ok = await post(href, authBody('scr-3'));
    expect(ok.body.outcome).toBe('authorized');
    const rejected = await control(sandbox, '/_sandbox/script', {
      match: {},
      outcomes: [{ type: 'authorize' }],
    });
    expect(rejected.status).toBe(400);
  });

  it('answers scripted 503 with Retry-After without recording a payment', async () => {
    const { href } = await verify(sandbox);
    sandbox.script({
      match: { any: true },
      outcomes: [{ type: 'error', status: 503, retryAfterSeconds: 7 }],
    });
    const res = await post(href, authBody('err-1'));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('7');
    expect(res.body.errorName).toBe('serviceUnavailable');
    const recovery = await get(sandbox.url + '/payments/events?transactionRef=err-1&entity=default');
    expect(recovery.status).toBe(404);
  });

  it('scripts manage operations by op, and unwraps slow outcomes', async () => {
    const links = await authorized('op-1');
    sandbox.script({
      match: { transactionReference: 'op-1', op: 'settle' },
      outcomes: [{ type: 'error', status: 500 }],
    });
    const failed = await post(links['payments:settle'].href);
    expect(failed.status).toBe(500);
    expect((await get(links['payments:events'].href)).body.lastEvent).toBe('Authorized');
    expect((await post(links['payments:settle'].href)).status).toBe(202);
    expect(
      sandbox
        .ledger()
        .filter((e) => e.op === 'settle')
        .map((e) => e.httpStatus),
    ).toEqual([500, 202]);

    const { chainId, href } = await verify(sandbox);
    sandbox.script({
      match: { chainId },
      outcomes: [{ type: 'slow', ms: 5, next: { type: 'refuse', code: '51' } }],
    });
    expect((await post(href, authBody('op-2'))).body).toMatchObject({ outcome: 'refused', code: '51' });
    // Over HTTP the spelling `then` is accepted too.
    const scripted = await post(
      sandbox.url + '/_sandbox/script',
      '{"match":{"chainId":"' +
        chainId +
        '"},"outcomes":[{"type":"slow","ms":5,"then":{"type":"refuse","code":"34"}}]}',
      { 'content-type': 'application/json' },
    );
    expect(scripted.status).toBe(200);
    expect((await post(href, authBody('op-3'))).body).toMatchObject({ outcome: 'refused', code: '34' });
  });

  it('commits a "lost" authorization: the socket drops, the ledger and recovery query know it', async () => {
    const { chainId, href } = await verify(sandbox);
    sandbox.script({ match: { chainId }, outcomes: [{ type: 'lost' }] });
    await expect(post(href, authBody('lost-1'))).rejects.toThrow();
    const entry = sandbox.ledger().find((e) => e.transactionReference === 'lost-1');
    expect(entry).toMatchObject({ outcome: 'authorized', responseLost: true, chainId });
    const recovery = await get(sandbox.url + '/payments/events?transactionRef=lost-1&entity=default');
    expect(recovery.status).toBe(200);
    expect(recovery.body.lastEvent).toBe('Authorized');
    expect(recovery.body._links['payments:settle'].href).toContain('/payments/settlements/full/');
    // The chain moved on: the link the lost response carried is now the newest, so `href` is stale.
    await post(href, authBody('lost-2'));
    expect(sandbox.ledger().at(-1)!.stale).toBe(true);
  });

  it('settles, and cancels only while authorized', async () => {
    const links = await authorized('sm-1');
    const settled = await post(links['payments:settle'].href);
    expect(settled.status).toBe(202);
    expect(Object.keys(settled.body._links).sort()).toEqual(
      ['curies', 'payments:events', 'payments:partialRefund', 'payments:refund'].sort(),
    );
    expect((await get(links['payments:events'].href)).body.lastEvent).toBe('Settled');
    const cancel = await post(links['payments:cancel'].href);
    expect(cancel.status).toBe(409);
    expect(cancel.body.errorName).toBe('actionNotAllowed');

    const other = await authorized('sm-2');
    expect((await post(other['payments:cancel'].href)).status).toBe(202);
    expect((await get(other['payments:events'].href)).body.lastEvent).toBe('Sent for Cancellation');
    expect((await post(other['payments:settle'].href)).status).toBe(409);
  });

  it('bounds partial settlements by the authorized amount and refunds by the settled amount', async () => {
    const links = await authorized('ps-1', 1000);
    const partial = (href: string, amount: number, reference: string, currency = 'GBP') =>
      post(href, { value: { amount, currency }, reference });
    const first = await partial(links['payments:partialSettle'].href, 600, 'ps-a');
    expect(first.status).toBe(202);
    expect(Object.keys(first.body._links)).toEqual([
      'payments:refund',
      'payments:partialRefund',
      'payments:partialSettle',
      'payments:cancel',
      'payments:events',
      'curies',
    ]);
    expect((await partial(links['payments:partialSettle'].href, 500, 'ps-b')).body.errorName).toBe(
      'amountExceedsRemaining',
    );
    expect((await partial(links['payments:partialSettle'].href, 100, 'ps-a')).body.errorName).toBe(
      'duplicateReference',
    );
    expect((await partial(links['payments:partialSettle'].href, 100, 'ps-c', 'EUR')).body.errorName).toBe(
      'currencyMismatch',
    );
    expect((await partial(links['payments:partialSettle'].href, 400, 'ps-d')).status).toBe(202);
    expect((await partial(links['payments:partialSettle'].href, 1, 'ps-e')).status).toBe(409);

    const refund = first.body._links['payments:partialRefund'].href;
    expect((await partial(refund, 700, 'rf-a')).status).toBe(202);
    expect((await partial(refund, 400, 'rf-b')).body.errorName).toBe('amountExceedsRemaining');
    const rest = await post(first.body._links['payments:refund'].href);
    expect(rest.status).toBe(202);
    expect(Object.keys(rest.body._links)).toEqual(['payments:events', 'curies']);
    expect((await partial(refund, 1, 'rf-c')).status).toBe(409);
    expect((await get(links['payments:events'].href)).body.lastEvent).toBe('Sent for Refund');
    const refunds = sandbox.ledger().filter((e) => e.op === 'partialRefund' && e.outcome === 'accepted');
    expect(refunds.map((e) => e.amount)).toEqual([700]);
  });

  it('turns a reversal into a cancel inside the window and a refund after it', async () => {
    const reversal = (links: Json) =>
      links['payments:events'].href.replace('/payments/events/', '/payments/sales/reversals/');
    const early = await authorized('rv-1');
    await post(early['payments:settle'].href);
    expect((await post(reversal(early))).status).toBe(202);
    expect((await get(early['payments:events'].href)).body.lastEvent).toBe('Sent for Cancellation');

    const late = await authorized('rv-2');
    await post(late['payments:settle'].href);
    clock += 16 * 60_000;
    expect((await post(reversal(late))).status).toBe(202);
    expect((await get(late['payments:events'].href)).body.lastEvent).toBe('Sent for Refund');
  });

  it('serves the PayPal action family for control-created payments', async () => {
    const created = await control(sandbox, '/_sandbox/paypal', { amount: 500, currency: 'EUR' });
    const events = await get(created.body._links['action:events'].href);
    expect(events.body.lastEvent).toBe('sentForSettlement');
    const refund = await post(created.body._links['action:partialRefund'].href, {
      value: { amount: 200, currency: 'EUR' },
      reference: 'pp-1',
    });
    expect(refund.status).toBe(202);
    expect(Object.keys(refund.body._links)).toEqual(['action:events', 'curies']);
    // Something is left: still sentForSettlement (seed 001's "query later"), refundable again.
    const after = await get(created.body._links['action:events'].href);
    expect(after.body.lastEvent).toBe('sentForSettlement');
    const over = await post(after.body._links['action:partialRefund'].href, {
      value: { amount: 301, currency: 'EUR' },
      reference: 'pp-2',
    });
    expect([over.status, over.body.errorName]).toEqual([400, 'amountExceedsRemaining']);
    expect((await post(after.body._links['action:refund'].href)).status).toBe(202);
    const done = await get(created.body._links['action:events'].href);
    expect(done.body.lastEvent).toBe('sentForRefund');
    expect(Object.keys(done.body._links)).toEqual(['action:events', 'curies']);
  });

  it('refuses a PayPal refund before sentForSettlement (409, in the ledger) until a test moves the last event', async () => {
    const created = await control(sandbox, '/_sandbox/paypal', { amount: 700, lastEvent: 'authorized' });
    const eventsHref = created.body._links['action:events'].href;
    expect(Object.keys(created.body._links)).toEqual(['action:events', 'curies']);
    expect((await get(eventsHref)).body.lastEvent).toBe('authorized');
    const refundHref = eventsHref.replace('/events/', '/refunds/full/');
    const early = await post(refundHref);
    expect([early.status, early.body.errorName]).toEqual([409, 'actionNotAllowed']);
    const paymentId = created.body.paymentId;
    expect(sandbox.ledger().filter((e) => e.paymentId === paymentId)).toMatchObject([
      { op: 'refund', outcome: 'invalidState', httpStatus: 409 },
    ]);
    expect(
      (await control(sandbox, '/_sandbox/paypal/events', { href: eventsHref, lastEvent: 'bogus' })).status,
    ).toBe(400);
    const moved = await control(sandbox, '/_sandbox/paypal/events', {
      href: eventsHref,
      lastEvent: 'sentForSettlement',
    });
    expect(moved.status).toBe(200);
    const now = await get(eventsHref);
    expect(now.body.lastEvent).toBe('sentForSettlement');
    expect((await post(now.body._links['action:refund'].href)).status).toBe(202);
  });

  it('mounts extra route plugins on the same server', async () => {
    const res = await request(sandbox.url + '/liquido/ping');
    expect(await res.body.json()).toEqual({ pong: true });
  });
});

describe('worldpay sandbox timing', () => {
  let clock = START;
  let sandbox: Sandbox;

  beforeAll(async () => {
    sandbox = await startSandbox({ now: () => clock, eventLagMs: 60_000, settleAfterMs: 5_000 });
  });
  afterAll(() => sandbox.close());

  it('lags the events and recovery queries behind each change', async () => {
    const { href } = await verify(sandbox);
    const res = await post(href, authBody('lag-1'));
    const recovery = sandbox.url + '/payments/events?transactionRef=lag-1&entity=default';
    expect((await get(recovery)).status).toBe(404);
    clock += 60_000;
    expect((await get(recovery)).body.lastEvent).toBe('Authorized');
    await post(res.body._links['payments:settle'].href);
    expect((await get(recovery)).body.lastEvent).toBe('Authorized');
    clock += 60_000;
    expect((await get(recovery)).body.lastEvent).toBe('Sent for Settlement');
    clock += 5_000;
    expect((await get(recovery)).body.lastEvent).toBe('Settled');
  });
});

describe('worldpay sandbox ledger', () => {
  it('keeps the newest ledgerLimit entries, serves them since a seq, and counts everything in stats', async () => {
    const sandbox = await startSandbox({ ledgerLimit: 10 });
    try {
      const { href } = await verify(sandbox);
      for (let i = 1; i <= 12; i++) await post(href, authBody(`led-${i}`));
      const all = await request(sandbox.url + '/_sandbox/ledger');
      const body = (await all.body.json()) as { entries: Array<{ seq: number }>; stats: { ops: Json } };
      expect(body.entries.map((e) => e.seq)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      expect(body.stats.ops).toEqual({ authorize: { authorized: 12 } });
      const since = await request(sandbox.url + '/_sandbox/ledger?since=10');
      const recent = (await since.body.json()) as {
        entries: Array<{ seq: number; transactionReference: string }>;
      };
      expect(recent.entries.map((e) => e.transactionReference)).toEqual(['led-11', 'led-12']);
      await control(sandbox, '/_sandbox/reset', {});
      expect(sandbox.ledger()).toEqual([]);
    } finally {
      await sandbox.close();
    }
  });
});

describe('worldpay sandbox throttling', () => {
  it('answers 429 with Retry-After beyond the rate limit', async () => {
    const sandbox = await startSandbox({ rateLimit: { requestsPerSecond: 2 } });
    try {
      // Five requests split over at most two one-second windows: one window holds three.
      const results = await Promise.all([1, 2, 3, 4, 5].map(() => get(sandbox.url + '/payments')));
      const throttled = results.filter((r) => r.status === 429);
      expect(throttled.length).toBeGreaterThan(0);
      expect(throttled[0]!.headers['retry-after']).toBe('1');
      expect(sandbox.stats().throttled).toBe(throttled.length);
    } finally {
      await sandbox.close();
    }
  });
});

describe('worldpay sandbox webhooks', () => {
  let receiver: Server;
  let receiverUrl: string;
  const deliveries: Array<{ raw: string; signature: string; contentType: string }> = [];
  let answers: number[] = [];

  beforeAll(async () => {
    receiver = createServer((req: IncomingMessage, res) => {
      let raw = '';
      req.on('data', (chunk) => {
        raw += chunk;
      });
      req.on('end', () => {
        deliveries.push({
          raw,
          signature: String(req.headers['event-signature']),
          contentType: String(req.headers['content-type']),
        });
        res.statusCode = answers.shift() ?? 200;
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;
  });
  afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

  it('signs each event and redelivers after a non-2xx until acknowledged', async () => {
    const secret = 'whsec-test';
    const sandbox = await startSandbox({
      webhook: { url: receiverUrl, secret, keyId: '7', retryBaseMs: 5, retryMaxMs: 20 },
    });
    try {
      answers = [500];
      const { href } = await verify(sandbox);
      await post(href, authBody('wh-1', { value: { amount: 250 } }));
      await sandbox.webhooksDrained();
      expect(deliveries).toHaveLength(2);
      expect(deliveries[1]!.raw).toBe(deliveries[0]!.raw);
      const { raw, signature, contentType } = deliveries[1]!;
      expect(contentType).toBe('application/vnd.worldpay.events-v1.hal+json');
      expect(signature).toBe(`7/SHA256/${createHmac('sha256', secret).update(raw).digest('hex')}`);
      const event = JSON.parse(raw);
      expect(event.eventId).toMatch(/^[0-9a-f-]{36}$/);
      expect(event.eventDetails).toMatchObject({
        classification: 'payment',
        transactionReference: 'wh-1',
        type: 'authorized',
        merchant: { entity: 'default' },
        amount: { value: 250, currencyCode: 'GBP' },
      });
      expect(sandbox.stats().webhooks).toEqual({ delivered: 1, failedAttempts: 1, pending: 0 });
    } finally {
      await sandbox.close();
    }
  });
});
