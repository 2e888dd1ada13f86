import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FirstPaymentMade, type Sandbox, startSandbox } from '../../src/sandbox/server.js';

// The sandbox's Card Payments v7 side over real HTTP: the merchant- and customer-initiated
// endpoints, the first-payments control route, scripts per card/token/network token, Account
// Updater answers, lost answers and the recovery query, and settle -> refund through the links.

const AUTH = 'Basic ' + Buffer.from('sandbox:sandbox').toString('base64');
const V7 = 'application/vnd.worldpay.payments-v7+json';
const HEADERS = { authorization: AUTH, 'content-type': V7, accept: V7 };
const START = Date.parse('2026-03-01T09:00:00Z');
const MASTERCARD = '5555555555554444';
const VISA = '4444333322221111';

// The fields the tests read from response bodies: a mapped type over known keys keeps deep reads
// typed without `any`; leaves are used as strings (hrefs, codes) or compared.
type JsonKey =
  | 'outcome'
  | 'paymentId'
  | 'scheme'
  | 'reference'
  | 'token'
  | 'href'
  | 'schemeReference'
  | 'refusalCode'
  | 'errorName'
  | 'message'
  | 'validationErrors'
  | 'updatedPaymentInstrument'
  | 'accountUpdaterMessage'
  | 'expiryDate'
  | 'lastEvent'
  | '_links'
  | 'cardPayments:settle'
  | 'cardPayments:partialSettle'
  | 'cardPayments:cancel'
  | 'cardPayments:reverse'
  | 'cardPayments:events'
  | 'cardPayments:refund'
  | 'cardPayments:partialRefund';
type Json = { readonly [K in JsonKey]: Json } & string;

interface Answer {
  status: number;
  contentType: string;
  body: Json;
}

async function post(url: string, body?: unknown, headers: Record<string, string> = HEADERS): Promise<Answer> {
  const res = await request(url, {
    method: 'POST',
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    contentType: String(res.headers['content-type']),
    body: (text ? JSON.parse(text) : undefined) as Json,
  };
}

async function get(url: string): Promise<Answer> {
  const res = await request(url, { headers: { authorization: AUTH, accept: V7 } });
  return {
    status: res.statusCode,
    contentType: String(res.headers['content-type']),
    body: (await res.body.json()) as Json,
  };
}

type Instrument =
  | { type: 'card/token'; href: string }
  | {
      type: 'card/plain';
      cardNumber: string;
      expiryDate: { month: number; year: number };
      cardHolderName?: string;
    }
  | { type: 'card/networkToken'; tokenNumber: string; expiryDate: { month: number; year: number } };

function mitBody(
  transactionReference: string,
  paymentInstrument: Instrument,
  schemeReference: string | undefined,
  extra: {
    amount?: number;
    entity?: string;
    requestAccountUpdater?: boolean;
    agreement?: object;
    autoSettle?: boolean;
  } = {},
): Record<string, unknown> {
  const instruction: Record<string, unknown> = {
    requestAutoSettlement: { enabled: extra.autoSettle ?? false },
    value: { amount: extra.amount ?? 250, currency: 'GBP' },
    narrative: { line1: 'Mind Palace Ltd' },
    paymentInstrument,
    customerAgreement: extra.agreement ?? { type: 'subscription', schemeReference },
  };
  if (extra.requestAccountUpdater !== undefined)
    instruction.requestAccountUpdater = extra.requestAccountUpdater;
  return { transactionReference, merchant: { entity: extra.entity ?? 'default' }, instruction };
}

function citBody(
  transactionReference: string,
  cardNumber: string,
  tokenCreation: boolean,
): Record<string, unknown> {
  const instruction: Record<string, unknown> = {
    requestAutoSettlement: { enabled: false },
    value: { amount: 100, currency: 'GBP' },
    narrative: { line1: 'Mind Palace Ltd' },
    paymentInstrument: {
      type: 'card/plain',
      cardNumber,
      cardHolderName: 'Sherlock Holmes',
      expiryDate: { month: 5, year: 2035 },
    },
    customerAgreement: { type: 'subscription', storedCardUsage: 'first' },
  };
  if (tokenCreation) instruction.tokenCreation = { type: 'worldpay' };
  return { transactionReference, channel: 'ecom', merchant: { entity: 'default' }, instruction };
}

describe('worldpay sandbox, Card Payments v7', () => {
  let clock = START;
  let sandbox: Sandbox;
  let mit: string;

  beforeAll(async () => {
    sandbox = await startSandbox({ now: () => clock });
    mit = sandbox.url + '/cardPayments/merchantInitiatedTransactions';
  });
  afterAll(() => sandbox.close());
  beforeEach(() => {
    clock = START;
    sandbox.reset();
  });

  async function firstPayment(input: Record<string, unknown> = {}): Promise<FirstPaymentMade> {
    const res = await post(
      sandbox.url + '/_sandbox/v7/first-payments',
      { cardNumber: MASTERCARD, expiryMonth: 9, expiryYear: 2029, ...input },
      { 'content-type': 'application/json' },
    );
    expect(res.status).toBe(201);
    return res.body as unknown as FirstPaymentMade;
  }

  async function script(rule: unknown): Promise<void> {
    const res = await post(sandbox.url + '/_sandbox/script', rule, { 'content-type': 'application/json' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }

  const token = (first: FirstPaymentMade): Instrument => ({ type: 'card/token', href: first.tokenHref });

  it('a first payment issues a token, a network token and a scheme reference a MIT carries byte for byte', async () => {
    const first = await firstPayment({ networkToken: true, cardHolderName: 'Sherlock Holmes' });
    expect(first).toMatchObject({ lastFour: '4444', expiryMonth: 9, expiryYear: 2029 });
    expect(first.tokenHref).toMatch(new RegExp(`^${sandbox.url}/tokens/`));
    // Mastercard's trace id ends in spaces, as in Worldpay's own example.
    expect(first.schemeReference).toMatch(/^MCC[A-Z0-9]{9} {2}$/);
    expect(first.networkToken!.number).toMatch(/^5555[0-9]{12}$/);
    expect(first.networkToken!.number).not.toBe(MASTERCARD);
    expect(first.networkToken!.expiryYear).toBe(2030);

    const res = await post(mit, mitBody('mit-1', token(first), first.schemeReference));
    expect(res.status).toBe(201);
    expect(res.contentType).toContain(V7);
    expect(res.body).toMatchObject({
      outcome: 'authorized',
      transactionReference: 'mit-1',
      paymentInstrument: {
        type: 'card/token+masked',
        cardBin: '555555',
        lastFour: '4444',
        cardBrand: 'mastercard',
      },
    });
    expect(res.body.scheme.reference).toMatch(/^MCC[A-Z0-9]{9} {2}$/);
    expect(res.body.paymentId).toMatch(/^[A-Za-z0-9_-]{21,36}$/);
    expect(Object.keys(res.body._links).sort()).toEqual([
      'cardPayments:cancel',
      'cardPayments:events',
      'cardPayments:partialSettle',
      'cardPayments:reverse',
      'cardPayments:settle',
      'curies',
    ]);
    expect(res.body._links['cardPayments:settle'].href).toMatch(
      new RegExp(`^${sandbox.url}/payments/settlements/eyJ`),
    );

    const entry = sandbox.ledger().at(-1)!;
    expect(entry).toMatchObject({
      op: 'authorize',
      api: 'v7',
      transactionReference: 'mit-1',
      amount: 250,
      currency: 'GBP',
      customerAgreementType: 'subscription',
      instrumentType: 'card/token',
      lastFour: '4444',
      expiryMonth: 9,
      expiryYear: 2029,
      requestAccountUpdater: false,
      outcome: 'authorized',
    });
    expect(entry.schemeReference).toBe(first.schemeReference);

    // The network token and the plain card are the same card.
    const nt = first.networkToken!;
    const byToken = await post(
      mit,
      mitBody(
        'mit-2',
        {
          type: 'card/networkToken',
          tokenNumber: nt.number,
          expiryDate: { month: nt.expiryMonth, year: nt.expiryYear },
        },
        first.schemeReference,
      ),
    );
    expect(byToken.body).toMatchObject({
      outcome: 'authorized',
      paymentInstrument: { type: 'card/networkToken+masked' },
    });
    expect(sandbox.ledger().at(-1)).toMatchObject({ instrumentType: 'card/networkToken', expiryYear: 2030 });
    // Never a full card or token number in the ledger.
    const ledger = JSON.stringify(sandbox.ledger());
    expect(ledger).not.toContain(MASTERCARD);
    expect(ledger).not.toContain(nt.number);
  });

  it('a scheme reference sent with trailing spaces is recorded as sent, and one trimmed is recorded trimmed', async () => {
    const first = await firstPayment();
    await post(mit, mitBody('sr-1', token(first), first.schemeReference.trimEnd()));
    expect(sandbox.ledger().at(-1)!.schemeReference).toBe(first.schemeReference.trimEnd());
    expect(sandbox.ledger().at(-1)!.schemeReference).not.toBe(first.schemeReference);
  });

  it('the customer-initiated endpoint makes the first payment, with a token only when asked', async () => {
    const cit = sandbox.url + '/cardPayments/customerInitiatedTransactions';
    const withToken = await post(cit, citBody('cit-1', VISA, true));
    expect(withToken.status).toBe(201);
    expect(withToken.body).toMatchObject({
      outcome: 'authorized',
      paymentInstrument: { type: 'card/plain+masked', lastFour: '1111', cardBrand: 'visa' },
      token: { cardNumber: '444433******1111', cardExpiryDate: { month: 5, year: 2035 } },
    });
    const schemeReference = withToken.body.scheme.reference;
    expect(schemeReference).toMatch(/^[0-9]{15}$/);
    expect(withToken.body.token.schemeReference).toBe(schemeReference);
    expect(JSON.stringify(withToken.body)).not.toContain(VISA);

    const repeat = await post(
      mit,
      mitBody('cit-mit-1', { type: 'card/token', href: withToken.body.token.href }, schemeReference),
    );
    expect(repeat.body.outcome).toBe('authorized');
    expect(sandbox.ledger().at(-1)).toMatchObject({
      lastFour: '1111',
      expiryYear: 2035,
      instrumentType: 'card/token',
    });

    const withoutToken = await post(cit, citBody('cit-2', '4917610000000000', false));
    expect(withoutToken.body.outcome).toBe('authorized');
    expect(withoutToken.body.token).toBeUndefined();
    expect(sandbox.ledger().find((e) => e.transactionReference === 'cit-1')).toMatchObject({
      op: 'firstPayment',
      api: 'v7',
      customerAgreementType: 'subscription',
    });
  });

  it('answers every outcome 201: refusals scripted per card number carry refusalCode, description and advice', async () => {
    const first = await firstPayment();
    // A token made by a first payment matches its card's number.
    await script({
      match: { cardNumber: MASTERCARD },
      outcomes: [
        { type: 'refuse', code: '51', adviceCode: '02' },
        { type: 'error', status: 503, retryAfterSeconds: 5 },
      ],
    });
    const refused = await post(mit, mitBody('out-1', token(first), first.schemeReference));
    expect(refused.status).toBe(201);
    expect(refused.body).toMatchObject({
      outcome: 'refused',
      refusalCode: '51',
      refusalDescription: 'LIMIT EXCEEDED',
      advice: { code: '02' },
    });
    expect(refused.body._links).toBeUndefined();
    expect(sandbox.ledger().at(-1)).toMatchObject({ outcome: 'refused', code: '51', api: 'v7' });

    const failed = await post(mit, mitBody('out-2', token(first), first.schemeReference));
    expect(failed.status).toBe(503);
    expect(failed.body.errorName).toBe('serviceUnavailable');

    // Script used up: authorized again.
    expect((await post(mit, mitBody('out-3', token(first), first.schemeReference))).body.outcome).toBe(
      'authorized',
    );
  });

  it('scripts match a token href, a network token and a plain card, each only its own', async () => {
    const a = await firstPayment({ networkToken: true });
    const b = await firstPayment({ cardNumber: VISA, expiryMonth: 1, expiryYear: 2031 });
    await script({ match: { tokenHref: a.tokenHref }, outcomes: [{ type: 'refuse', code: '5' }] });
    await script({
      match: { networkToken: a.networkToken!.number },
      outcomes: [{ type: 'refuse', code: '34' }],
    });
    await script({ match: { cardNumber: VISA }, outcomes: [{ type: 'refuse', code: '41' }] });

    const plainB = mitBody(
      'sc-1',
      { type: 'card/plain', cardNumber: VISA, expiryDate: { month: 1, year: 2031 } },
      b.schemeReference,
    );
    expect((await post(mit, plainB)).body.refusalCode).toBe('41');
    expect((await post(mit, mitBody('sc-2', token(a), a.schemeReference))).body.refusalCode).toBe('5');
    // The token rule is used up; the network token rule also matches a charge by a's token.
    expect((await post(mit, mitBody('sc-3', token(a), a.schemeReference))).body.refusalCode).toBe('34');
    expect((await post(mit, mitBody('sc-4', token(a), a.schemeReference))).body.outcome).toBe('authorized');
  });

  it("a first payment's magic cardholder name decides its later charges, as on Try", async () => {
    const first = await firstPayment({ cardHolderName: 'REFUSEDRC79MAC01' });
    const res = await post(mit, mitBody('magic-1', token(first), first.schemeReference));
    expect(res.body).toMatchObject({ outcome: 'refused', refusalCode: '79', advice: { code: '01' } });
  });

  it('answers 400 bodyDoesNotMatchSchema naming each bad field by jsonPath, recording nothing but the rejection', async () => {
    const res = await post(mit, {
      transactionReference: 'bad ref with spaces',
      merchant: {},
      instruction: {
        value: { amount: 2.5, currency: 'GBP' },
        narrative: { line1: 'x'.repeat(25) },
        paymentInstrument: {
          type: 'card/plain',
          cardNumber: '4444-3333',
          expiryDate: { month: 13, year: 2035 },
        },
        customerAgreement: { type: 'installment' },
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.errorName).toBe('bodyDoesNotMatchSchema');
    const errors = (
      res.body.validationErrors as unknown as Array<{ errorName: string; jsonPath: string }>
    ).map((e) => `${e.jsonPath} ${e.errorName}`);
    expect(errors).toEqual(
      expect.arrayContaining([
        '$.transactionReference stringFailedRegexCheck',
        '$.merchant.entity fieldIsMissing',
        '$.instruction.requestAutoSettlement fieldIsMissing',
        '$.instruction.value.amount fieldMustBeInteger',
        '$.instruction.narrative.line1 stringIsTooLong',
        '$.instruction.paymentInstrument.cardNumber stringFailedRegexCheck',
        '$.instruction.paymentInstrument.expiryDate.month integerIsTooLarge',
        '$.instruction.customerAgreement.installmentType fieldIsMissing',
      ]),
    );
    // The card number is never echoed.
    expect(JSON.stringify(res.body)).not.toContain('4444-3333');

    const badType = await post(
      mit,
      mitBody('bad-2', { type: 'card/checkout' } as unknown as Instrument, undefined, {
        agreement: { type: 'noSuch' },
      }),
    );
    expect(badType.body.validationErrors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          errorName: 'fieldHasInvalidValue',
          jsonPath: '$.instruction.paymentInstrument.type',
        }),
        expect.objectContaining({
          errorName: 'fieldHasInvalidValue',
          jsonPath: '$.instruction.customerAgreement.type',
        }),
      ]),
    );
    expect(sandbox.ledger().map((e) => e.outcome)).toEqual(['rejected', 'rejected']);
    expect(sandbox.stats().ops.authorize).toEqual({ rejected: 2 });
  });

  it('insists on the v7 media types and Basic auth', async () => {
    const first = await firstPayment();
    const body = mitBody('mt-1', token(first), first.schemeReference);
    const v6 = await post(mit, body, {
      ...HEADERS,
      'content-type': 'application/vnd.worldpay.payments-v6+json',
    });
    expect(v6.status).toBe(415);
    expect(v6.body.errorName).toBe('headerHasInvalidValue');
    const accept = await post(mit, body, {
      ...HEADERS,
      accept: 'application/vnd.worldpay.payments-v6.hal+json',
    });
    expect(accept.status).toBe(406);
    expect(accept.body.message).toContain('Accept');
    const noAuth = await post(mit, body, { 'content-type': V7, accept: V7 });
    expect(noAuth.status).toBe(401);
    expect(noAuth.body.errorName).toBe('accessDenied');
    expect(noAuth.contentType).toContain(V7);
    // Nothing was charged by the refused requests.
    expect(sandbox.ledger().filter((e) => e.op === 'authorize')).toEqual([]);
    expect((await post(mit, body)).status).toBe(201);
  });

  it('refuses a reused transaction reference per entity, across customer- and merchant-initiated payments', async () => {
    const first = await firstPayment();
    expect((await post(mit, mitBody('dup-1', token(first), first.schemeReference))).status).toBe(201);
    const again = await post(mit, mitBody('dup-1', token(first), first.schemeReference, { amount: 999 }));
    expect(again.status).toBe(400);
    expect(again.body.errorName).toBe('transactionReferenceIsADuplicate');
    const cit = await post(
      sandbox.url + '/cardPayments/customerInitiatedTransactions',
      citBody('dup-1', VISA, false),
    );
    expect(cit.status).toBe(400);
    expect(cit.body.errorName).toBe('transactionReferenceIsADuplicate');
    // Another entity has its own references.
    const other = await post(
      mit,
      mitBody('dup-1', token(first), first.schemeReference, { entity: 'OtherEntity' }),
    );
    expect(other.status).toBe(201);
    expect(sandbox.stats().duplicateReferences).toBe(2);
    expect(
      sandbox
        .ledger()
        .filter((e) => e.outcome === 'duplicate')
        .map((e) => e.amount),
    ).toEqual([999, 100]);
  });

  it('answers Account Updater results only when the request asked for them, or always in managed mode', async () => {
    const first = await firstPayment();
    const expiry = { message: 'TThe expiration date was changed', expiryMonth: 11, expiryYear: 2032 };
    await script({
      match: { tokenHref: first.tokenHref },
      outcomes: [
        { type: 'authorize', accountUpdater: expiry },
        { type: 'authorize', accountUpdater: expiry },
      ],
    });
    const notAsked = await post(mit, mitBody('au-1', token(first), first.schemeReference));
    expect(notAsked.body.outcome).toBe('authorized');
    expect(notAsked.body.updatedPaymentInstrument).toBeUndefined();
    expect(sandbox.ledger().at(-1)!.accountUpdaterMessage).toBeUndefined();

    const asked = await post(
      mit,
      mitBody('au-2', token(first), first.schemeReference, { requestAccountUpdater: true }),
    );
    expect(asked.body.updatedPaymentInstrument).toEqual({
      accountUpdaterMessage: 'TThe expiration date was changed',
      expiryDate: { month: 11, year: 2032 },
      cardBin: '555555',
      lastFour: '4444',
      cardBrand: 'mastercard',
      fundingType: 'credit',
    });
    expect(sandbox.ledger().at(-1)).toMatchObject({
      requestAccountUpdater: true,
      accountUpdaterMessage: 'TThe expiration date was changed',
    });
    // The card's expiry is the new one from now on.
    await post(mit, mitBody('au-3', token(first), first.schemeReference));
    expect(sandbox.ledger().at(-1)).toMatchObject({ expiryMonth: 11, expiryYear: 2032 });

    await script({
      match: { tokenHref: first.tokenHref },
      outcomes: [{ type: 'refuse', code: '5', accountUpdater: { message: 'The account was closed' } }],
    });
    const mode = await post(
      sandbox.url + '/_sandbox/v7/account-updater',
      { mode: 'managed' },
      { 'content-type': 'application/json' },
    );
    expect(mode.body).toEqual({ mode: 'managed' });
    const closed = await post(mit, mitBody('au-4', token(first), first.schemeReference));
    expect(closed.body).toMatchObject({
      outcome: 'refused',
      refusalCode: '5',
      updatedPaymentInstrument: { accountUpdaterMessage: 'The account was closed' },
    });
    expect(closed.body.updatedPaymentInstrument.expiryDate).toBeUndefined();
  });

  it('an Account Updater new card number and network token belong to the same card afterwards', async () => {
    sandbox.accountUpdater('managed');
    const first = await firstPayment();
    const newNumber = '5555555555551111';
    await script({
      match: { cardNumber: MASTERCARD },
      outcomes: [
        {
          type: 'authorize',
          accountUpdater: {
            message: 'The account number was changed',
            cardNumber: newNumber,
            expiryMonth: 3,
            expiryYear: 2033,
            networkToken: { number: '5555000011112222', expiryMonth: 3, expiryYear: 2034 },
          },
        },
      ],
    });
    const res = await post(mit, mitBody('new-1', token(first), first.schemeReference));
    expect(res.body.updatedPaymentInstrument).toMatchObject({
      accountUpdaterMessage: 'The account number was changed',
      cardNumber: newNumber,
      lastFour: '1111',
      appliedNetworkToken: true,
      expiryDate: { month: 3, year: 2033 },
    });
    // A rule on the old number matches a charge by the new one, and by the new network token.
    await script({
      match: { cardNumber: MASTERCARD },
      outcomes: [
        { type: 'refuse', code: '54' },
        { type: 'refuse', code: '55' },
      ],
    });
    const plain = await post(
      mit,
      mitBody(
        'new-2',
        { type: 'card/plain', cardNumber: newNumber, expiryDate: { month: 3, year: 2033 } },
        first.schemeReference,
      ),
    );
    expect(plain.body.refusalCode).toBe('54');
    const nt = await post(
      mit,
      mitBody(
        'new-3',
        { type: 'card/networkToken', tokenNumber: '5555000011112222', expiryDate: { month: 3, year: 2034 } },
        first.schemeReference,
      ),
    );
    expect(nt.body.refusalCode).toBe('55');
    expect(JSON.stringify(sandbox.ledger())).not.toContain(newNumber);
  });

  it('refuses scripts it cannot play: an unknown updater message, a malformed card match', async () => {
    const control = { 'content-type': 'application/json' };
    const misspelt = await post(
      sandbox.url + '/_sandbox/script',
      {
        match: { any: true },
        outcomes: [{ type: 'authorize', accountUpdater: { message: 'Card updated' } }],
      },
      control,
    );
    expect(misspelt.status).toBe(400);
    expect(misspelt.body.message).toContain('accountUpdater.message');
    const badCard = await post(
      sandbox.url + '/_sandbox/script',
      { match: { cardNumber: '4444 3333' }, outcomes: [{ type: 'authorize' }] },
      control,
    );
    expect(badCard.status).toBe(400);
    expect(badCard.body.message).toContain('match.cardNumber');
    const badMode = await post(sandbox.url + '/_sandbox/v7/account-updater', { mode: 'on' }, control);
    expect(badMode.status).toBe(400);
    const badFirst = await post(
      sandbox.url + '/_sandbox/v7/first-payments',
      { cardNumber: VISA, expiryMonth: 13, expiryYear: 2030 },
      control,
    );
    expect(badFirst.status).toBe(400);
    expect(badFirst.body.message).toContain('expiryMonth');
    expect(JSON.stringify(badFirst.body)).not.toContain(VISA);
  });

  it('commits a lost answer: the socket drops, the recovery query finds the v7 payment with its links', async () => {
    const first = await firstPayment();
    await script({ match: { transactionReference: 'lost-1' }, outcomes: [{ type: 'lost' }] });
    await expect(post(mit, mitBody('lost-1', token(first), first.schemeReference))).rejects.toThrow();
    expect(sandbox.ledger().at(-1)).toMatchObject({
      transactionReference: 'lost-1',
      outcome: 'authorized',
      responseLost: true,
    });

    const found = await get(`${sandbox.url}/payments/events?transactionRef=lost-1&entity=default`);
    expect(found.status).toBe(200);
    expect(found.contentType).toContain(V7);
    expect(found.body.lastEvent).toBe('Authorized');
    expect(found.body._links['cardPayments:settle'].href).toContain('/payments/settlements/');
    // The retry under the same reference is a duplicate: the payment exists once.
    expect((await post(mit, mitBody('lost-1', token(first), first.schemeReference))).status).toBe(400);
    expect((await get(`${sandbox.url}/payments/events?transactionRef=lost-2&entity=default`)).status).toBe(
      404,
    );
  });

  it('settles and refunds through the links each answer gives, with v7 media types and events', async () => {
    const first = await firstPayment();
    const auth = await post(mit, mitBody('sr-ok', token(first), first.schemeReference, { amount: 1000 }));
    const settle = await post(auth.body._links['cardPayments:settle'].href, undefined, HEADERS);
    expect(settle.status).toBe(202);
    expect(settle.contentType).toContain(V7);
    expect(Object.keys(settle.body._links).sort()).toEqual([
      'cardPayments:events',
      'cardPayments:partialRefund',
      'cardPayments:refund',
      'cardPayments:reverse',
      'curies',
    ]);
    const partial = await post(
      settle.body._links['cardPayments:partialRefund'].href,
      { value: { amount: 300, currency: 'GBP' }, reference: 'partial-1' },
      HEADERS,
    );
    expect(partial.status).toBe(202);
    expect(Object.keys(partial.body._links).sort()).toEqual([
      'cardPayments:events',
      'cardPayments:partialRefund',
      'curies',
    ]);
    const refund = await post(settle.body._links['cardPayments:refund'].href, undefined, HEADERS);
    expect(refund.status).toBe(202);
    expect(Object.keys(refund.body._links).sort()).toEqual(['cardPayments:events', 'curies']);
    const tooMuch = await post(
      partial.body._links['cardPayments:partialRefund'].href,
      { value: { amount: 1, currency: 'GBP' }, reference: 'partial-2' },
      HEADERS,
    );
    expect(tooMuch.status).toBe(409);

    const events = await get(refund.body._links['cardPayments:events'].href);
    expect(events.body.lastEvent).toBe('Sent for Refund');
    expect(sandbox.ledger().map((e) => `${e.op}:${e.outcome}`)).toEqual([
      'firstPayment:authorized',
      'authorize:authorized',
      'settle:accepted',
      'partialRefund:accepted',
      'refund:accepted',
      'partialRefund:invalidState',
    ]);
  });

  it('partially settles, cancels the rest, and reverses; the recovery query spells a cancellation as its schema does', async () => {
    const first = await firstPayment();
    const a = await post(mit, mitBody('ps-1', token(first), first.schemeReference, { amount: 1000 }));
    const ps = await post(
      a.body._links['cardPayments:partialSettle'].href,
      { value: { amount: 400, currency: 'GBP' }, reference: 'ps-part-1' },
      HEADERS,
    );
    expect(ps.status).toBe(202);
    expect(Object.keys(ps.body._links).sort()).toEqual([
      'cardPayments:cancel',
      'cardPayments:events',
      'cardPayments:partialRefund',
      'cardPayments:partialSettle',
      'cardPayments:refund',
      'cardPayments:reverse',
      'curies',
    ]);
    expect((await post(ps.body._links['cardPayments:cancel'].href, undefined, HEADERS)).status).toBe(202);

    const b = await post(mit, mitBody('ps-2', token(first), first.schemeReference));
    const cancel = await post(b.body._links['cardPayments:cancel'].href, undefined, HEADERS);
    expect(cancel.status).toBe(202);
    expect(Object.keys(cancel.body._links).sort()).toEqual(['cardPayments:events', 'curies']);
    expect((await get(cancel.body._links['cardPayments:events'].href)).body.lastEvent).toBe(
      'Sent for Cancellation',
    );
    const recovered = await get(`${sandbox.url}/payments/events?transactionRef=ps-2&entity=default`);
    expect(recovered.body.lastEvent).toBe('Send for Cancellation');

    const c = await post(mit, mitBody('ps-3', token(first), first.schemeReference));
    const reversal = await post(c.body._links['cardPayments:reverse'].href, undefined, HEADERS);
    expect(reversal.status).toBe(202);
    expect((await get(reversal.body._links['cardPayments:events'].href)).body.lastEvent).toBe(
      'Sent for Cancellation',
    );
  });

  it('auto settlement answers Sent for Settlement with the settled links', async () => {
    const first = await firstPayment();
    const res = await post(mit, mitBody('auto-1', token(first), first.schemeReference, { autoSettle: true }));
    expect(res.status).toBe(201);
    expect(res.body.outcome).toBe('Sent for Settlement');
    expect(res.body._links['cardPayments:refund']).toBeDefined();
    expect(res.body._links['cardPayments:settle']).toBeUndefined();
    expect((await get(res.body._links['cardPayments:events'].href)).body.lastEvent).toBe('Settled');
  });

  it('the in-process handle makes first payments and sets the updater mode', async () => {
    const first = sandbox.firstPayment({ cardNumber: VISA, expiryMonth: 2, expiryYear: 2030 });
    expect(first.schemeReference).toMatch(/^[0-9]{15}$/);
    expect(() => sandbox.firstPayment({ cardNumber: '12', expiryMonth: 2, expiryYear: 2030 })).toThrow(
      /cardNumber/,
    );
    sandbox.script({
      match: { tokenHref: first.tokenHref },
      outcomes: [{ type: 'authorize', accountUpdater: { message: 'No changes found' } }],
    });
    sandbox.accountUpdater('managed');
    const res = await post(mit, mitBody('ip-1', token(first), first.schemeReference));
    expect(res.body.updatedPaymentInstrument.accountUpdaterMessage).toBe('No changes found');
    // A reset puts the updater back in request mode.
    sandbox.reset();
    const again = sandbox.firstPayment({ cardNumber: VISA, expiryMonth: 2, expiryYear: 2030 });
    sandbox.script({
      match: { tokenHref: again.tokenHref },
      outcomes: [{ type: 'authorize', accountUpdater: { message: 'No changes found' } }],
    });
    expect(
      (await post(mit, mitBody('ip-2', token(again), again.schemeReference))).body.updatedPaymentInstrument,
    ).toBeUndefined();
  });
});

describe('worldpay sandbox, Card Payments v7 webhooks', () => {
  let receiver: Server;
  let receiverUrl: string;
  const deliveries: Array<{ raw: string; signature: string }> = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let raw = '';
      req.on('data', (chunk) => {
        raw += chunk;
      });
      req.on('end', () => {
        deliveries.push({ raw, signature: String(req.headers['event-signature']) });
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;
  });
  afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

  it('sends signed events for v7 payments through the same sender as v6', async () => {
    const secret = 'whsec-v7';
    const sandbox = await startSandbox({ webhook: { url: receiverUrl, secret, keyId: '3' } });
    try {
      const first = sandbox.firstPayment({ cardNumber: VISA, expiryMonth: 2, expiryYear: 2030 });
      const res = await post(
        sandbox.url + '/cardPayments/merchantInitiatedTransactions',
        mitBody('wh7-1', { type: 'card/token', href: first.tokenHref }, first.schemeReference, {
          amount: 777,
        }),
      );
      await post(res.body._links['cardPayments:settle'].href, undefined, HEADERS);
      await sandbox.webhooksDrained();
      const events = deliveries.map((d) => JSON.parse(d.raw).eventDetails);
      const mine = events.filter((e) => e.transactionReference === 'wh7-1');
      // Delivery order is not promised (as on Worldpay): compare as a set.
      expect(mine.map((e) => e.type).sort()).toEqual(['authorized', 'sentForSettlement', 'settled']);
      expect(mine[0]).toMatchObject({
        amount: { value: 777, currencyCode: 'GBP' },
        merchant: { entity: 'default' },
      });
      for (const d of deliveries) {
        expect(d.signature).toBe(`3/SHA256/${createHmac('sha256', secret).update(d.raw).digest('hex')}`);
      }
    } finally {
      await sandbox.close();
    }
  });
});
