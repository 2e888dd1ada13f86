import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.ts';
import { ContractError, GatewayError, RequestRejectedError } from '../../src/gateways/errors.ts';
import {
  backoffDelay,
  createHttpClient,
  type HttpResponse,
  parseRetryAfter,
  splitHref,
} from '../../src/gateways/http.ts';
import type { AuthorizeResult, QueryResult } from '../../src/gateways/types.ts';
import {
  createWorldpayGateway,
  normalisePaymentStatus,
  parseRefusal,
  type WorldpayAuthorizeRequest,
  type WorldpayGateway,
  WorldpayRequestError,
} from '../../src/gateways/worldpay/index.ts';
import { mapAuthorizeResponse, mapQueryResponse, parseLinks } from '../../src/gateways/worldpay/responses.ts';
import {
  normaliseNarrative,
  validateEntity,
  validateMoney,
  validatePartialReference,
  validateTransactionReference,
} from '../../src/gateways/worldpay/validation.ts';
import { type Sandbox, startSandbox } from '../../src/sandbox/server.ts';

const origin = 'https://try.access.worldpay.com';
const seedLinks = {
  'payments:cancel': { href: `${origin}/payments/authorizations/cancellations/eyJrIjoiazNhYjYzMiJ9` },
  'payments:events': { href: `${origin}/payments/events/eyJrIjoiazNhYjYzMiJ9` },
  curies: [{ name: 'payments', href: `${origin}/rels/payments/{rel}`, templated: true }],
  'payments:recurringAuthorize': { href: `${origin}/payments/authorizations/recurring/eyJrIjoiazNhYjYzMiJ9` },
};

function response(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return {
    status,
    headers: { 'wp-correlationid': 'corr-1', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    latencyMs: 7,
    attempts: 1,
  };
}

describe('outgoing validation', () => {
  it('accepts Worldpay reference characters and rejects the rest', () => {
    expect(validateTransactionReference('Memory265-13/08/1876')).toBe('Memory265-13/08/1876');
    expect(validateTransactionReference('a_b!@#$%*=.:?[]{}~+')).toBe('a_b!@#$%*=.:?[]{}~+');
    expect(() => validateTransactionReference('')).toThrow(ValidationError);
    expect(() => validateTransactionReference('x'.repeat(65))).toThrow(/1-64/);
    expect(() => validateTransactionReference('has space')).toThrow(/transactionReference/);
    expect(() => validateTransactionReference('caf\u00e9')).toThrow(ValidationError);
  });

  it('rejects ( ) ; with the firewall reason', () => {
    for (const ref of ['a(b', 'a)b', 'a;b']) {
      expect(() => validateTransactionReference(ref)).toThrow(/firewall/);
    }
  });

  it('checks the entity pattern', () => {
    expect(validateEntity('MindPalaceLtd')).toBe('MindPalaceLtd');
    expect(validateEntity('Mind Palace 2')).toBe('Mind Palace 2');
    expect(() => validateEntity(' leading')).toThrow(/merchant.entity/);
    expect(() => validateEntity('a-b')).toThrow(ValidationError);
    expect(() => validateEntity('x'.repeat(33))).toThrow(ValidationError);
  });

  it('replaces unsupported narrative characters with spaces, then insists on 24', () => {
    expect(normaliseNarrative('Mind Palace Ltd')).toBe('Mind Palace Ltd');
    expect(normaliseNarrative('Caf\u00e9 <Ltd>')).toBe('Caf   Ltd');
    expect(normaliseNarrative('x'.repeat(24))).toHaveLength(24);
    expect(() => normaliseNarrative('x'.repeat(25))).toThrow(/at most 24/);
    expect(() => normaliseNarrative('\u2603\u2603')).toThrow(ValidationError);
  });

  it('wants positive safe integer amounts and known ISO-4217 currencies', () => {
    expect(validateMoney({ amount: 250, currency: 'GBP' })).toEqual({ amount: 250, currency: 'GBP' });
    for (const amount of [0, -1, 2.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN]) {
      expect(() => validateMoney({ amount, currency: 'GBP' })).toThrow(/value.amount/);
    }
    expect(() => validateMoney({ amount: 1, currency: 'gbp' })).toThrow(/value.currency/);
    expect(() => validateMoney({ amount: 1, currency: 'ABC' })).toThrow(/not an ISO-4217/);
    expect(validateMoney({ amount: 1, currency: 'JPY' }).currency).toBe('JPY');
  });

  it('checks partial references', () => {
    expect(validatePartialReference('partial-settle-reference')).toBe('partial-settle-reference');
    expect(() => validatePartialReference('under_score')).toThrow(/reference/);
    expect(() => validatePartialReference('x'.repeat(129))).toThrow(ValidationError);
  });
});

describe('status and response mapping', () => {
  it('normalises lastEvent spellings leniently', () => {
    const cases: [string, string][] = [
      ['Authorized', 'authorized'],
      ['Sent for Settlement', 'sentForSettlement'],
      ['sentForSettlement', 'sentForSettlement'],
      ['SENT_FOR_SETTLEMENT', 'sentForSettlement'],
      ['Send for Cancellation', 'sentForCancellation'],
      ['Sent for Cancellation', 'sentForCancellation'],
      ['Refund failed', 'refundFailed'],
      ['Settlement failed', 'settlementFailed'],
      ['captureFailed', 'settlementFailed'],
      ['Sent for Refund', 'sentForRefund'],
      ['Refused', 'refused'],
      ['Expired', 'expired'],
      ['Error', 'error'],
      ['somethingNew', 'other'],
    ];
    for (const [raw, status] of cases) expect(normalisePaymentStatus(raw), raw).toBe(status);
    expect(normalisePaymentStatus(undefined)).toBe('other');
  });

  it('parses both refusal spellings', () => {
    expect(parseRefusal({ code: '33', description: 'CARD EXPIRED', refusalAdvice: { code: '01' } })).toEqual({
      code: '33',
      description: 'CARD EXPIRED',
      adviceCode: '01',
    });
    expect(
      parseRefusal({ refusalCode: '51', refusalDescription: 'LIMIT EXCEEDED', advice: { code: '02' } }),
    ).toEqual({ code: '51', description: 'LIMIT EXCEEDED', adviceCode: '02' });
  });

  it('maps the seed 201 authorized body, dropping curies', () => {
    const result = mapAuthorizeResponse(
      response(201, {
        outcome: 'authorized',
        riskFactors: [{ risk: 'not_matched', type: 'cvc' }],
        issuer: { authorizationCode: '0' },
        scheme: { reference: '1260019172' },
        _links: seedLinks,
      }),
      origin,
    );
    expect(result).toMatchObject({
      outcome: 'authorized',
      paymentId: seedLinks['payments:events'].href,
      nextRecurringLink: seedLinks['payments:recurringAuthorize'].href,
      schemeReference: '1260019172',
      authorizationCode: '0',
      httpStatus: 201,
      correlationId: 'corr-1',
      latencyMs: 7,
    });
    if (result.outcome !== 'authorized') throw new Error('not authorized');
    expect(Object.keys(result.links).sort()).toEqual([
      'payments:cancel',
      'payments:events',
      'payments:recurringAuthorize',
    ]);
    expect(result.riskFactors).toHaveLength(1);
  });

  it('takes payments:migrateRecurringAuthorize as the next link when that is what came back', () => {
    const links = {
      'payments:events': seedLinks['payments:events'],
      'payments:migrateRecurringAuthorize': { href: `${origin}/payments/authorizations/recurring/next` },
    };
    const result = mapAuthorizeResponse(response(201, { outcome: 'authorized', _links: links }), origin);
    expect(result.outcome === 'authorized' && result.nextRecurringLink).toBe(
      `${origin}/payments/authorizations/recurring/next`,
    );
  });

  it('resolves relative and bare-string links without rebuilding them', () => {
    expect(
      parseLinks({ 'cardPayments:settle': '/payments/settlements/full/a+b=', curies: [] }, origin),
    ).toEqual({
      'cardPayments:settle': `${origin}/payments/settlements/full/a+b=`,
    });
  });

  it('throws ContractError for responses that break the contract', () => {
    const cases = [
      response(201, {}),
      response(201, 'not json{'),
      response(201, { outcome: 'authorized' }),
      response(201, { outcome: 'refused' }),
      response(201, { outcome: 'maybe' }),
      response(302, ''),
    ];
    for (const res of cases) {
      const err = catchSync(() => mapAuthorizeResponse(res, origin));
      expect(err).toBeInstanceOf(ContractError);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as ContractError).correlationId).toBe('corr-1');
      expect((err as ContractError).name).toBe('ContractError');
    }
  });

  it('maps 5xx to unknown and 4xx to WorldpayRequestError with validationErrors', () => {
    expect(mapAuthorizeResponse(response(503, { errorName: 'serviceUnavailable' }), origin)).toEqual({
      outcome: 'unknown',
      reason: 'HTTP 503 serviceUnavailable',
      httpStatus: 503,
      correlationId: 'corr-1',
      latencyMs: 7,
    });
    const err = catchSync(() =>
      mapAuthorizeResponse(
        response(400, {
          errorName: 'bodyDoesNotMatchSchema',
          message: 'The json body provided does not match the expected schema',
          validationErrors: [
            { errorName: 'fieldIsMissing', message: 'Field is missing', jsonPath: '$.instruction.value' },
          ],
        }),
        origin,
      ),
    );
    expect(err).toBeInstanceOf(WorldpayRequestError);
    expect(err).toBeInstanceOf(RequestRejectedError);
    const e = err as WorldpayRequestError;
    expect(e.name).toBe('WorldpayRequestError');
    expect(e.status).toBe(400);
    expect(e.errorName).toBe('bodyDoesNotMatchSchema');
    expect(e.validationErrors).toEqual([
      { errorName: 'fieldIsMissing', message: 'Field is missing', jsonPath: '$.instruction.value' },
    ]);
  });

  it('maps a query 404 to not-found-yet and a missing lastEvent to ContractError', () => {
    expect(mapQueryResponse(response(404, { errorName: 'endpointNotFound' }), origin, 'q')).toMatchObject({
      found: false,
      httpStatus: 404,
    });
    expect(catchSync(() => mapQueryResponse(response(200, { _links: {} }), origin, 'q'))).toBeInstanceOf(
      ContractError,
    );
  });
});

describe('transport helpers', () => {
  it('keeps the path of an href exactly as written', () => {
    const href = 'https://Try.Access.Worldpay.com/payments/authorizations/recurring/eyJr==.rT+a/b:c=%2F';
    expect(splitHref(href)).toEqual({
      origin: 'https://try.access.worldpay.com',
      path: '/payments/authorizations/recurring/eyJr==.rT+a/b:c=%2F',
    });
    expect(splitHref('http://127.0.0.1:8080?x=1').path).toBe('/?x=1');
  });

  it('reads Retry-After as seconds or a date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(['0'])).toBe(0);
    expect(parseRetryAfter('Sat, 21 Nov 2026 00:00:10 GMT', Date.parse('2026-11-21T00:00:00Z'))).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it('backs off with full jitter under a doubling cap', () => {
    expect(backoffDelay(0, 100, 5000, () => 0.999)).toBe(99);
    expect(backoffDelay(3, 100, 5000, () => 0.5)).toBe(400);
    expect(backoffDelay(10, 100, 5000, () => 0.999)).toBe(4995);
    expect(backoffDelay(4, 100, 5000, () => 0)).toBe(0);
  });
});

function catchSync(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

async function catchAsync(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('against the sandbox over loopback', () => {
  let sandbox: Sandbox;
  let gw: WorldpayGateway;
  let seq = 0;
  const entity = 'MindPalaceLtd';
  const card = {
    type: 'card/plain',
    cardNumber: '4444333322221111',
    expiryMonth: 12,
    expiryYear: 2035,
  } as const;

  const ref = (label: string) => `wp-${label}-${++seq}`;
  const ledgerFor = (reference: string) =>
    sandbox.ledger().filter((e) => e.transactionReference === reference);
  const requests = () => sandbox.stats().requests;

  function migrateRequest(
    reference: string,
    instrument: WorldpayAuthorizeRequest['instrument'] = { ...card, cardNumber: '4917610000000000' },
  ): WorldpayAuthorizeRequest {
    return {
      reference,
      instrument,
      value: { amount: 250, currency: 'GBP' },
      entity,
      narrative: 'Mind Palace Ltd',
      intent: 'subscription',
    };
  }

  async function control<T>(path: string, body: unknown): Promise<T> {
    const res = await fetch(sandbox.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as T;
  }

  async function authorized(reference = ref('auth')) {
    const result = await gw.authorize(migrateRequest(reference));
    if (result.outcome !== 'authorized') throw new Error(`expected authorized, got ${result.outcome}`);
    const sandboxPaymentId = ledgerFor(reference).find((e) => e.outcome === 'authorized')?.paymentId;
    return { ...result, reference, sandboxPaymentId };
  }

  beforeAll(async () => {
    sandbox = await startSandbox({ username: 'merchant', password: 's3cret' });
    gw = createWorldpayGateway({
      url: sandbox.url,
      username: 'merchant',
      password: 's3cret',
      entity,
      requestTimeoutMs: 5_000,
      retryBaseMs: 1,
      maxRetries: 3,
    });
  });

  afterAll(async () => {
    await gw?.close();
    await sandbox?.close();
  });

  it('discovers the migrateRecurring URL from the payments root once', async () => {
    const url = await gw.migrateUrl();
    expect(url).toBe(`${sandbox.url}/payments/authorizations/migrateRecurring`);
    const before = requests();
    expect(await gw.migrateUrl()).toBe(url);
    expect(requests()).toBe(before);
  });

  it('authorizes through a stored link, POSTing to the exact href', async () => {
    const verification = await control<{ chainId: string; href: string }>('/_sandbox/verifications', {
      cardNumber: card.cardNumber,
    });
    expect(verification.href).toMatch(/[+/:=]/);
    const reference = ref('link');
    const result = await gw.authorize({
      ...migrateRequest(reference, { type: 'link', href: verification.href }),
      credential: card,
    });
    expect(result.outcome).toBe('authorized');
    if (result.outcome !== 'authorized') return;
    const [entry] = ledgerFor(reference);
    expect(entry?.op).toBe('authorize');
    expect(entry?.chainId).toBe(verification.chainId);
    expect(entry?.stale).toBe(false);
    expect(sandbox.url + '/payments/authorizations/recurring/' + entry?.linkUsed).toBe(verification.href);
    expect(result.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.httpStatus).toBe(201);
    expect(result.paymentId).toBe(result.links['payments:events']);
    expect(result.links.curies).toBeUndefined();
    // Links rotate: the next charge must use the new one.
    expect(result.nextRecurringLink).toBeDefined();
    expect(result.nextRecurringLink).not.toBe(verification.href);
    // Without a credential the body carries no paymentInstrument; the link alone identifies the card.
    const next = await gw.authorize(
      migrateRequest(ref('link2'), { type: 'link', href: result.nextRecurringLink! }),
    );
    expect(next.outcome).toBe('authorized');
    expect(sandbox.stats().staleLinkUses).toBe(0);
  });

  it('migrates each instrument type', async () => {
    const instruments: WorldpayAuthorizeRequest['instrument'][] = [
      { ...card, cardNumber: '5555555555554444', cardHolderName: 'Ada Lovelace' },
      { type: 'card/token', href: 'https://try.access.worldpay.com/tokens/9f1b+2c=' },
      { type: 'card/networkToken+applepay', dpan: '4444333322221111', expiryMonth: 5, expiryYear: 2035 },
    ];
    for (const instrument of instruments) {
      const reference = ref('migrate');
      const result = await gw.authorize(migrateRequest(reference, instrument));
      expect(result.outcome, instrument.type).toBe('authorized');
      expect(ledgerFor(reference).map((e) => [e.op, e.outcome])).toEqual([['migrate', 'authorized']]);
      if (result.outcome === 'authorized') expect(result.nextRecurringLink).toMatch(/\/recurring\//);
    }
  });

  it('parses a v6 refusal from a magic cardholder name', async () => {
    const result = await gw.authorize(
      migrateRequest(ref('refused'), {
        ...card,
        cardNumber: '2221000000000009',
        cardHolderName: 'REFUSED33',
      }),
    );
    expect(result).toMatchObject({
      outcome: 'refused',
      code: '33',
      description: 'CARD EXPIRED',
      httpStatus: 201,
    });
  });

  it('parses scripted v6 and v7 refusals with advice codes', async () => {
    const v6 = ref('v6');
    const v7 = ref('v7');
    await control('/_sandbox/script', {
      match: { transactionReference: v6 },
      outcomes: [{ type: 'refuse', code: '51', adviceCode: '02', spelling: 'v6' }],
    });
    sandbox.script({
      match: { transactionReference: v7 },
      outcomes: [{ type: 'refuse', code: '79', adviceCode: '01', spelling: 'v7' }],
    });
    expect(await gw.authorize(migrateRequest(v6))).toMatchObject({
      outcome: 'refused',
      code: '51',
      description: 'LIMIT EXCEEDED',
      adviceCode: '02',
    });
    expect(await gw.authorize(migrateRequest(v7))).toMatchObject({
      outcome: 'refused',
      code: '79',
      description: 'LIFE CYCLE',
      adviceCode: '01',
    });
  });

  it('turns a response slower than the timeout into unknown without resending', async () => {
    const impatient = createWorldpayGateway({
      url: sandbox.url,
      username: 'merchant',
      password: 's3cret',
      entity,
      requestTimeoutMs: 150,
      retryBaseMs: 1,
    });
    try {
      const reference = ref('slow');
      sandbox.script({ match: { transactionReference: reference }, outcomes: [{ type: 'slow', ms: 1_000 }] });
      const result = await impatient.authorize(migrateRequest(reference));
      expect(result.outcome).toBe('unknown');
      if (result.outcome === 'unknown') expect(result.reason).toMatch(/time/);
      expect(ledgerFor(reference)).toHaveLength(1);
    } finally {
      await impatient.close();
    }
  });

  it('turns a lost response into unknown, then the recovery query finds the payment', async () => {
    const reference = ref('lost');
    sandbox.script({ match: { transactionReference: reference }, outcomes: [{ type: 'lost' }] });
    const result = await gw.authorize(migrateRequest(reference));
    expect(result.outcome).toBe('unknown');
    expect(ledgerFor(reference)).toHaveLength(1);
    expect(ledgerFor(reference)[0]?.responseLost).toBe(true);
    const found = await gw.queryByReference(reference, entity);
    expect(found).toMatchObject({
      found: true,
      status: 'authorized',
      rawStatus: 'Authorized',
      httpStatus: 200,
    });
    if (found.found === true) expect(found.links['payments:settle']).toBeDefined();
  });

  it('recovery query answers found:false for an unknown reference and URL-encodes its values', async () => {
    const result = await gw.queryByReference('no/such+ref=1', 'Mind Palace');
    expect(result).toMatchObject({ found: false, httpStatus: 404 });
  });

  it('returns unknown on a 500 and does not resend the authorization', async () => {
    const reference = ref('e500');
    sandbox.script({
      match: { transactionReference: reference },
      outcomes: [{ type: 'error', status: 500 }],
    });
    const result = await gw.authorize(migrateRequest(reference));
    expect(result).toMatchObject({
      outcome: 'unknown',
      reason: 'HTTP 500 internalErrorOccurred',
      httpStatus: 500,
    });
    expect(ledgerFor(reference)).toHaveLength(1);
  });

  it('returns unknown on 503 for an authorization: it may have been processed', async () => {
    const reference = ref('e503');
    sandbox.script({
      match: { transactionReference: reference },
      outcomes: [{ type: 'error', status: 503, retryAfterSeconds: 0 }],
    });
    expect((await gw.authorize(migrateRequest(reference))).outcome).toBe('unknown');
    expect(ledgerFor(reference)).toHaveLength(1);
  });

  it('backs off on 429 for an authorization (nothing was processed) and then succeeds', async () => {
    const reference = ref('e429');
    sandbox.script({
      match: { transactionReference: reference },
      outcomes: [
        { type: 'error', status: 429, retryAfterSeconds: 0 },
        { type: 'error', status: 429 },
      ],
    });
    const result = await gw.authorize(migrateRequest(reference));
    expect(result.outcome).toBe('authorized');
    expect(ledgerFor(reference).map((e) => e.httpStatus)).toEqual([429, 429, 201]);
  });

  it('gives up on persistent 429 with a typed error once retries run out', async () => {
    const reference = ref('e429x');
    sandbox.script({
      match: { transactionReference: reference },
      outcomes: Array.from({ length: 4 }, () => ({
        type: 'error' as const,
        status: 429,
        retryAfterSeconds: 0,
      })),
    });
    const err = await catchAsync(gw.authorize(migrateRequest(reference)));
    expect(err).toBeInstanceOf(WorldpayRequestError);
    expect((err as WorldpayRequestError).status).toBe(429);
    expect(ledgerFor(reference)).toHaveLength(4);
  });

  it('throws typed errors for 4xx: duplicate reference and bad credentials', async () => {
    const reference = ref('dup');
    await authorized(reference);
    const dup = await catchAsync(gw.authorize(migrateRequest(reference)));
    expect(dup).toBeInstanceOf(WorldpayRequestError);
    expect(dup).toMatchObject({ status: 400, errorName: 'transactionReferenceIsADuplicate' });
    expect((dup as WorldpayRequestError).correlationId).toBeDefined();
    expect((dup as WorldpayRequestError).message).not.toContain('4917610000000000');

    const wrong = createWorldpayGateway({ url: sandbox.url, username: 'merchant', password: 'nope', entity });
    try {
      const denied = await catchAsync(wrong.authorize(migrateRequest(ref('denied'))));
      expect(denied).toMatchObject({ name: 'WorldpayRequestError', status: 401, errorName: 'accessDenied' });
    } finally {
      await wrong.close();
    }
  });

  it('refuses bad values locally and sends nothing', async () => {
    const before = requests();
    const bad: WorldpayAuthorizeRequest[] = [
      { ...migrateRequest('has(paren)') },
      { ...migrateRequest(ref('v')), value: { amount: 0, currency: 'GBP' } },
      { ...migrateRequest(ref('v')), value: { amount: 100, currency: 'XYZ' } },
      { ...migrateRequest(ref('v')), narrative: 'A narrative that is far too long' },
      { ...migrateRequest(ref('v')), entity: 'bad-entity' },
      migrateRequest(ref('v'), { ...card, cardNumber: '4444-3333' }),
      migrateRequest(ref('v'), {
        type: 'link',
        href: 'https://elsewhere.example/payments/authorizations/recurring/x',
      }),
    ];
    for (const req of bad) {
      const err = await catchAsync(gw.authorize(req));
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).not.toContain('4444');
    }
    const auth = await authorized();
    const afterAuth = requests();
    const partial = await catchAsync(
      gw.action({
        kind: 'partialSettle',
        links: auth.links,
        paymentId: auth.paymentId,
        reference: 'bad_ref',
        value: { amount: 1, currency: 'GBP' },
      }),
    );
    expect(partial).toMatchObject({ name: 'ValidationError', field: 'reference' });
    expect(requests()).toBe(afterAuth);
    expect(afterAuth - before).toBe(1);
  });

  it('settles partially, then refunds partially, following the returned links', async () => {
    const auth = await authorized();
    const settled = await gw.action({
      kind: 'partialSettle',
      links: auth.links,
      paymentId: auth.paymentId,
      reference: 'ps-1',
      value: { amount: 100, currency: 'GBP' },
    });
    expect(settled).toMatchObject({ outcome: 'accepted', httpStatus: 202 });
    if (settled.outcome !== 'accepted') return;
    expect(settled.links['payments:partialRefund']).toBeDefined();
    const refunded = await gw.action({
      kind: 'partialRefund',
      links: settled.links,
      paymentId: auth.paymentId,
      reference: 'pr-1',
      value: { amount: 40, currency: 'GBP' },
    });
    expect(refunded.outcome).toBe('accepted');
    const entries = sandbox.ledger().filter((e) => e.paymentId === auth.sandboxPaymentId);
    expect(entries.map((e) => [e.op, e.reference, e.amount, e.outcome])).toEqual([
      ['migrate', undefined, 250, 'authorized'],
      ['partialSettle', 'ps-1', 100, 'accepted'],
      ['partialRefund', 'pr-1', 40, 'accepted'],
    ]);
  });

  it('settles in full, then refunds in full, and the events query follows', async () => {
    const auth = await authorized();
    const settled = await gw.action({
      kind: 'settle',
      links: auth.links,
      paymentId: auth.paymentId,
      reference: 's',
    });
    expect(settled.outcome).toBe('accepted');
    if (settled.outcome !== 'accepted') return;
    const status = await gw.query({ paymentId: auth.paymentId, links: settled.links });
    expect(status).toMatchObject({ found: true });
    if (status.found === true) expect(['sentForSettlement', 'settled']).toContain(status.status);
    const refunded = await gw.action({
      kind: 'refund',
      links: settled.links,
      paymentId: auth.paymentId,
      reference: 'r',
    });
    expect(refunded.outcome).toBe('accepted');
    const after = (await gw.query({ paymentId: auth.paymentId, links: {} })) as QueryResult;
    expect(after).toMatchObject({ found: true, status: 'sentForRefund', rawStatus: 'Sent for Refund' });
  });

  it('cancels an authorization and queries it through payments:events', async () => {
    const auth = await authorized();
    const before = await gw.query({ paymentId: auth.paymentId, links: auth.links });
    expect(before).toMatchObject({ found: true, status: 'authorized', rawStatus: 'Authorized' });
    const cancelled = await gw.action({
      kind: 'cancel',
      links: auth.links,
      paymentId: auth.paymentId,
      reference: 'c',
    });
    expect(cancelled.outcome).toBe('accepted');
    const after = await gw.query({ paymentId: auth.paymentId, links: auth.links });
    expect(after).toMatchObject({ found: true, status: 'sentForCancellation' });
    // No further action is offered, and asking for one is a clear local error.
    const err = await catchAsync(
      gw.action({
        kind: 'settle',
        links: after.found === true ? after.links : {},
        paymentId: auth.paymentId,
        reference: 'x',
      }),
    );
    expect(err).toMatchObject({ name: 'ValidationError', field: 'links' });
    expect((err as Error).message).toMatch(/payments:settle/);
  });

  it('posts a reversal to the payments:reversal link', async () => {
    const auth = await authorized();
    // The sandbox offers payments:reversal on sales only; the link data is the payment's own.
    const cancelHref = auth.links['payments:cancel']!;
    const reversal = cancelHref.replace(
      '/payments/authorizations/cancellations/',
      '/payments/sales/reversals/',
    );
    const result = await gw.action({
      kind: 'reversal',
      links: { ...auth.links, 'payments:reversal': reversal },
      paymentId: auth.paymentId,
      reference: 'rev',
    });
    expect(result).toMatchObject({ outcome: 'accepted', httpStatus: 202 });
    expect(sandbox.ledger().at(-1)).toMatchObject({ op: 'reversal', outcome: 'accepted' });
  });

  it('retries an action on 429 but not on 503', async () => {
    const a = await authorized();
    sandbox.script({
      match: { transactionReference: a.reference, op: 'settle' },
      outcomes: [{ type: 'error', status: 429, retryAfterSeconds: 0 }],
    });
    expect(
      (await gw.action({ kind: 'settle', links: a.links, paymentId: a.paymentId, reference: 's' })).outcome,
    ).toBe('accepted');
    const settles = sandbox
      .ledger()
      .filter((e) => e.op === 'settle' && e.transactionReference === a.reference);
    expect(settles.map((e) => e.httpStatus)).toEqual([429, 202]);

    const b = await authorized();
    const bRef = b.reference;
    sandbox.script({
      match: { transactionReference: bRef, op: 'cancel' },
      outcomes: [{ type: 'error', status: 503 }],
    });
    const result = await gw.action({
      kind: 'cancel',
      links: b.links,
      paymentId: b.paymentId,
      reference: 'c',
    });
    expect(result).toMatchObject({ outcome: 'unknown', httpStatus: 503 });
    expect(sandbox.ledger().filter((e) => e.op === 'cancel' && e.transactionReference === bRef)).toHaveLength(
      1,
    );
  });

  it('throws a typed error when an action is refused by state or amount', async () => {
    const auth = await authorized();
    const err = await catchAsync(
      gw.action({
        kind: 'partialSettle',
        links: auth.links,
        paymentId: auth.paymentId,
        reference: 'too-much',
        value: { amount: 999_999, currency: 'GBP' },
      }),
    );
    expect(err).toMatchObject({
      name: 'WorldpayRequestError',
      status: 400,
      errorName: 'amountExceedsRemaining',
    });
  });

  it('drives the PayPal action: family', async () => {
    const create = () =>
      control<{ _links: Record<string, { href: string }> }>('/_sandbox/paypal', {
        amount: 500,
        currency: 'GBP',
      });
    const first = await create();
    const events = await gw.paypalEvents(first._links['action:events']!.href);
    expect(events).toMatchObject({
      found: true,
      status: 'sentForSettlement',
      rawStatus: 'sentForSettlement',
    });
    if (events.found !== true) return;
    const full = await gw.paypalRefund(events.links['action:refund']!);
    expect(full).toMatchObject({ outcome: 'accepted', httpStatus: 202 });
    expect(await gw.paypalEvents(first._links['action:events']!.href)).toMatchObject({
      found: true,
      status: 'sentForRefund',
    });

    const second = await create();
    const partial = await gw.paypalPartialRefund(
      second._links['action:partialRefund']!.href,
      { amount: 100, currency: 'GBP' },
      'pp-partial-1',
    );
    expect(partial).toMatchObject({ outcome: 'accepted', httpStatus: 202 });
    expect(sandbox.ledger().at(-1)).toMatchObject({
      op: 'partialRefund',
      reference: 'pp-partial-1',
      amount: 100,
    });
  });

  it('retries a throttled query after Retry-After and answers', async () => {
    const throttled = await startSandbox({
      username: 'merchant',
      password: 's3cret',
      rateLimit: { requestsPerSecond: 1 },
    });
    const client = createWorldpayGateway({
      url: throttled.url,
      username: 'merchant',
      password: 's3cret',
      entity,
      retryBaseMs: 1,
    });
    try {
      // Three queries sent together span at most two clock seconds, so at least two share one
      // and at least one is throttled (429, Retry-After: 1) and then retried.
      const results = await Promise.all(
        ['nothing-1', 'nothing-2', 'nothing-3'].map((r) => client.queryByReference(r, entity)),
      );
      expect(results.map((r) => r.found)).toEqual([false, false, false]);
      expect(throttled.stats().throttled).toBeGreaterThanOrEqual(1);
      expect(throttled.stats().requests).toBe(3 + throttled.stats().throttled);
    } finally {
      await client.close();
      await throttled.close();
    }
  });

  it('reports unknown, not an exception, when the server is gone', async () => {
    const gone = await startSandbox({ username: 'merchant', password: 's3cret' });
    const url = gone.url;
    await gone.close();
    const client = createWorldpayGateway({
      url,
      username: 'merchant',
      password: 's3cret',
      entity,
      retryBaseMs: 1,
      maxRetries: 1,
    });
    try {
      const result: AuthorizeResult = await client.authorize(
        migrateRequest(ref('gone'), { type: 'link', href: `${url}/payments/authorizations/recurring/x` }),
      );
      expect(result).toMatchObject({ outcome: 'unknown' });
      if (result.outcome === 'unknown') expect(result.reason).toMatch(/ECONNREFUSED.*not sent/);
      expect(await client.query({ paymentId: `${url}/payments/events/x`, links: {} })).toMatchObject({
        found: 'unknown',
      });
    } finally {
      await client.close();
    }
  });
});

describe('transport limits and logging (loopback recorder)', () => {
  type Handler = (req: IncomingMessage, res: ServerResponse) => void;
  let server: Server;
  let handler: Handler = (_req, res) => res.end('{}');
  let url: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => handler(req, res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('never has more than maxInFlight requests open', async () => {
    // The server answers only when two requests are waiting: a limiter that let more through
    // would show a third, one that let fewer through would hang.
    const pending: ServerResponse[] = [];
    let maxOpen = 0;
    handler = (_req, res) => {
      pending.push(res);
      maxOpen = Math.max(maxOpen, pending.length);
      if (pending.length === 2) for (const r of pending.splice(0)) r.end('{}');
    };
    const http = createHttpClient({ maxInFlight: 2 });
    try {
      const all = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          http.request({ url: `${url}/r/${i}`, method: 'GET', retry: 'idempotent', kind: 'test' }),
        ),
      );
      expect(all.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
      expect(maxOpen).toBe(2);
      expect(http.stats()).toMatchObject({ requests: 6, retries: 0, inFlight: 0 });
    } finally {
      await http.close();
    }
  });

  it('spaces request starts to requestsPerSecond', async () => {
    handler = (_req, res) => res.end('{}');
    const http = createHttpClient({ requestsPerSecond: 20 });
    try {
      const started = performance.now();
      await Promise.all(
        Array.from({ length: 5 }, () =>
          http.request({ url, method: 'GET', retry: 'idempotent', kind: 'test' }),
        ),
      );
      // Five starts at 20/s: the fifth may not start before four 50 ms gaps have passed. A
      // lower bound measured by the caller, so a slow machine cannot make it fail.
      expect(performance.now() - started).toBeGreaterThanOrEqual(195);
      expect(http.stats().requests).toBe(5);
    } finally {
      await http.close();
    }
  });

  it('bounds the response body', async () => {
    handler = (_req, res) => res.end('x'.repeat(4096));
    const http = createHttpClient({ maxBodyBytes: 1024 });
    try {
      const err = await catchAsync(http.request({ url, method: 'GET', retry: 'idempotent', kind: 'test' }));
      expect(err).toBeInstanceOf(ContractError);
      expect((err as Error).message).toMatch(/1024 bytes/);
    } finally {
      await http.close();
    }
  });

  it('retries a query on 503 honouring Retry-After, but an action only on 429', async () => {
    let calls = 0;
    handler = (_req, res) => {
      calls++;
      res.setHeader('wp-correlationid', `c-${calls}`);
      if (calls === 1) {
        res.writeHead(503, { 'retry-after': '0' });
        res.end('{"errorName":"serviceUnavailable"}');
      } else res.end(JSON.stringify({ lastEvent: 'Settled', _links: {} }));
    };
    const gw = createWorldpayGateway({ url, entity: 'E', retryBaseMs: 1 });
    try {
      const result = await gw.query({ paymentId: `${url}/payments/events/a+b`, links: {} });
      expect(result).toMatchObject({ found: true, status: 'settled', correlationId: 'c-2', httpStatus: 200 });
      expect(calls).toBe(2);

      calls = 0;
      const action = await gw.action({
        kind: 'settle',
        links: { 'payments:settle': `${url}/payments/settlements/full/a+b` },
        paymentId: 'p',
        reference: 's',
      });
      expect(action).toMatchObject({
        outcome: 'unknown',
        reason: 'HTTP 503 serviceUnavailable',
        correlationId: 'c-1',
      });
      expect(calls).toBe(1);
    } finally {
      await gw.close();
    }
  });

  it('carries Worldpay errorName and validationErrors on a 400', async () => {
    handler = (_req, res) => {
      res.writeHead(400, { 'wp-correlationid': 'bad-1' });
      res.end(
        JSON.stringify({
          errorName: 'bodyDoesNotMatchSchema',
          message: 'The json body provided does not match the expected schema',
          validationErrors: [
            { errorName: 'fieldHasInvalidValue', message: 'Reference already used', jsonPath: '$.reference' },
          ],
        }),
      );
    };
    const gw = createWorldpayGateway({ url, entity: 'E' });
    try {
      const err = await catchAsync(
        gw.action({
          kind: 'partialRefund',
          links: { 'payments:partialRefund': `${url}/payments/settlements/refunds/partials/x` },
          paymentId: 'p',
          reference: 'pr-1',
          value: { amount: 5, currency: 'GBP' },
        }),
      );
      expect(err).toBeInstanceOf(WorldpayRequestError);
      expect(err).toMatchObject({
        status: 400,
        correlationId: 'bad-1',
        errorName: 'bodyDoesNotMatchSchema',
        validationErrors: [
          { errorName: 'fieldHasInvalidValue', message: 'Reference already used', jsonPath: '$.reference' },
        ],
      });
      expect((err as WorldpayRequestError).latencyMs).toBeGreaterThanOrEqual(0);
    } finally {
      await gw.close();
    }
  });

  it('turns an unreadable authorization answer into unknown: it may still be a charge', async () => {
    handler = (_req, res) => {
      res.writeHead(201, { 'wp-correlationid': 'garbled' });
      res.end('{"outcome":"authori');
    };
    const gw = createWorldpayGateway({ url, entity: 'E' });
    try {
      const result = await gw.authorize({
        reference: 'garbled-1',
        entity: 'E',
        narrative: 'N',
        intent: 'unscheduled',
        value: { amount: 1, currency: 'EUR' },
        instrument: { type: 'link', href: `${url}/payments/authorizations/recurring/a+b` },
      });
      expect(result).toMatchObject({ outcome: 'unknown', httpStatus: 201, correlationId: 'garbled' });
      if (result.outcome === 'unknown') expect(result.reason).toMatch(/^ContractError: unparseable JSON/);
      // A query answer that breaks the contract is an error, not a guess.
      const err = await catchAsync(gw.query({ paymentId: `${url}/payments/events/a`, links: {} }));
      expect(err).toBeInstanceOf(ContractError);
    } finally {
      await gw.close();
    }
  });

  it('logs each call at debug with correlationId and kind, never card data or credentials', async () => {
    handler = (_req, res) => {
      res.writeHead(201, { 'wp-correlationid': 'log-corr' });
      res.end(
        JSON.stringify({
          outcome: 'authorized',
          _links: { 'payments:events': { href: `${url}/payments/events/x` } },
        }),
      );
    };
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const gw = createWorldpayGateway({ url, entity: 'E', username: 'merchant', password: 'hunter2', logger });
    try {
      const result = await gw.authorize({
        reference: 'log-1',
        entity: 'E',
        narrative: 'N',
        intent: 'unscheduled',
        value: { amount: 1, currency: 'EUR' },
        instrument: { type: 'card/plain', cardNumber: '5555555555554444', expiryMonth: 1, expiryYear: 2030 },
      });
      expect(result.outcome).toBe('authorized');
      const call = lines.map((l) => JSON.parse(l)).find((l) => l.kind === 'authorize.migrate');
      expect(call).toMatchObject({
        correlationId: 'log-corr',
        method: 'POST',
        httpStatus: 201,
        gateway: 'worldpay',
      });
      const all = lines.join('\n');
      expect(all).not.toContain('5555555555554444');
      expect(all).not.toContain('hunter2');
      expect(all).not.toContain(Buffer.from('merchant:hunter2').toString('base64'));
    } finally {
      await gw.close();
    }
  });
});
