import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FirstPaymentMade, type Sandbox, startSandbox } from '../../src/sandbox/server.js';
import { haveSpec, type Json, loadSpec, specFile } from '../support/openapi-v7.ts';

/**
 * Every kind of answer the sandbox gives for Card Payments v7 (201 authorized, refused, auto
 * settled, with Account Updater results; 400s, 401, 415; settle, partial settle, refund,
 * partial refund, cancel, reversal; events and recovery), validated with ajv against Worldpay's
 * v7 OpenAPI file, and the sandbox's request checks held against the file's request schemas:
 * what the file accepts the sandbox accepts, what it refuses the sandbox refuses.
 */

if (!haveSpec) console.warn(`worldpay-v7-openapi tests skipped: ${specFile} is missing`);

const AUTH = 'Basic ' + Buffer.from('sandbox:sandbox').toString('base64');
const V7 = 'application/vnd.worldpay.payments-v7+json';
const HEADERS = { authorization: AUTH, 'content-type': V7, accept: V7 };

interface Answer {
  status: number;
  contentType: string;
  body: Json;
}

async function post(url: string, body?: unknown, headers: Record<string, string> = HEADERS): Promise<Answer> {
  const res = await request(url, {
    method: 'POST',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    contentType: String(res.headers['content-type']),
    body: text ? JSON.parse(text) : {},
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

const link = (answer: Answer, rel: string): string =>
  ((answer.body._links as Record<string, { href: string }>)[`cardPayments:${rel}`] ?? { href: 'missing' })
    .href;

const MIT = '/cardPayments/merchantInitiatedTransactions';
const CIT = '/cardPayments/customerInitiatedTransactions';

describe.skipIf(!haveSpec)('sandbox v7 answers against the published Card Payments v7 OpenAPI', () => {
  let sandbox: Sandbox;
  let spec: ReturnType<typeof loadSpec>;
  let first: FirstPaymentMade;
  let seq = 0;
  const sent: Array<{ template: string; body: Json }> = [];

  function mitBody(instrument: Json, extra: Json = {}): Json {
    seq += 1;
    const instruction: Json = {
      requestAutoSettlement: { enabled: false },
      value: { amount: 1000, currency: 'GBP' },
      narrative: { line1: 'Mind Palace Ltd' },
      paymentInstrument: instrument,
      customerAgreement: { type: 'subscription', schemeReference: first.schemeReference },
      ...extra,
    };
    return { transactionReference: `contract-${seq}`, merchant: { entity: 'default' }, instruction };
  }

  async function mit(body: Json, headers?: Record<string, string>): Promise<Answer> {
    sent.push({ template: MIT, body });
    return post(sandbox.url + MIT, body, headers);
  }

  /** Checks an answer against the file: body schema and media type. */
  function conforms(answer: Answer, template: string, method: string): void {
    const validate = spec.response(template, method, answer.status);
    const ok = validate(answer.body);
    expect(validate.errors ?? [], JSON.stringify(answer.body)).toEqual([]);
    expect(ok).toBe(true);
    expect(spec.mediaTypes(template, method, answer.status).map((t) => t.replace(/^a+/, 'a'))).toContain(
      answer.contentType.split(';')[0],
    );
  }

  const token = () => ({ type: 'card/token', href: first.tokenHref });

  beforeAll(async () => {
    spec = loadSpec();
    sandbox = await startSandbox({ now: () => Date.parse('2026-03-01T09:00:00Z') });
  });
  afterAll(() => sandbox.close());
  beforeEach(() => {
    sandbox.reset();
    first = sandbox.firstPayment({
      cardNumber: '5555555555554444',
      expiryMonth: 9,
      expiryYear: 2029,
      networkToken: true,
    });
  });

  it('patches only the known errata of the file', () => {
    const kinds = new Set(spec.errata.map((e) => e.split(' ')[1]));
    expect([...kinds].sort()).toEqual(['currency', 'discriminator', 'pattern']);
    // The dropped patterns are the narrative lines' (and nothing a sandbox answer carries).
    expect(spec.errata.filter((e) => e.endsWith(' pattern')).every((e) => /narrative|line[12]/.test(e))).toBe(
      true,
    );
  });

  it('a schema check that can fail: the validators refuse what the file refuses', () => {
    const validate = spec.response(MIT, 'post', 201);
    expect(validate({ outcome: 'refused', refusalCode: 5 })).toBe(false);
    expect(validate({ outcome: 'authorized', scheme: {} })).toBe(false);
    expect(validate({ outcome: 'authorized', riskFactors: [{ type: 'cvc', risk: 'not_matched' }] })).toBe(
      false,
    );
    expect(
      validate({
        outcome: 'authorized',
        updatedPaymentInstrument: { accountUpdaterMessage: 'The expiration date was changed' },
      }),
    ).toBe(false);
    expect(validate({ outcome: 'sentForSettlement' })).toBe(false);
  });

  it('201 authorized by token, card and network token; refused with advice; auto settled', async () => {
    conforms(await mit(mitBody(token())), MIT, 'post');
    conforms(
      await mit(
        mitBody({
          type: 'card/plain',
          cardNumber: '5555555555554444',
          cardHolderName: 'Sherlock Holmes',
          expiryDate: { month: 9, year: 2029 },
        }),
      ),
      MIT,
      'post',
    );
    const nt = first.networkToken!;
    conforms(
      await mit(
        mitBody({
          type: 'card/networkToken',
          tokenNumber: nt.number,
          expiryDate: { month: nt.expiryMonth, year: nt.expiryYear },
        }),
      ),
      MIT,
      'post',
    );
    sandbox.script({ match: { any: true }, outcomes: [{ type: 'refuse', code: '51', adviceCode: '02' }] });
    const refused = await mit(mitBody(token()));
    expect(refused.body.outcome).toBe('refused');
    conforms(refused, MIT, 'post');
    const auto = await mit(mitBody(token(), { requestAutoSettlement: { enabled: true } }));
    expect(auto.body.outcome).toBe('Sent for Settlement');
    conforms(auto, MIT, 'post');
  });

  it('201 with every Account Updater answer, authorized or refused', async () => {
    const messages = [
      'TThe expiration date was changed',
      'The account number was changed',
      'The account was closed',
      'Contact the cardholder for updated information',
      'No changes found',
    ] as const;
    sandbox.script({
      match: { tokenHref: first.tokenHref },
      outcomes: [
        { type: 'authorize', accountUpdater: { message: messages[0], expiryMonth: 1, expiryYear: 2033 } },
        {
          type: 'authorize',
          accountUpdater: {
            message: messages[1],
            cardNumber: '5555555555551111',
            expiryMonth: 2,
            expiryYear: 2034,
            networkToken: { number: '5555000011112222', expiryMonth: 2, expiryYear: 2035 },
          },
        },
        { type: 'refuse', code: '5', accountUpdater: { message: messages[2] } },
        { type: 'refuse', code: '5', adviceCode: '03', accountUpdater: { message: messages[3] } },
        { type: 'authorize', accountUpdater: { message: messages[4] } },
      ],
    });
    for (const message of messages) {
      const answer = await mit(mitBody(token(), { requestAccountUpdater: true }));
      expect((answer.body.updatedPaymentInstrument as Json).accountUpdaterMessage).toBe(message);
      conforms(answer, MIT, 'post');
    }
  });

  it('201 customer-initiated first payment with token creation', async () => {
    const body = {
      transactionReference: 'contract-cit-1',
      channel: 'ecom',
      merchant: { entity: 'default' },
      instruction: {
        requestAutoSettlement: { enabled: false },
        value: { amount: 100, currency: 'GBP' },
        narrative: { line1: 'Mind Palace Ltd' },
        paymentInstrument: {
          type: 'card/plain',
          cardNumber: '4444333322221111',
          cardHolderName: 'Sherlock Holmes',
          expiryDate: { month: 5, year: 2035 },
        },
        customerAgreement: { type: 'subscription', storedCardUsage: 'first' },
        tokenCreation: { type: 'worldpay' },
      },
    };
    sent.push({ template: CIT, body });
    const answer = await post(sandbox.url + CIT, body);
    expect(answer.status).toBe(201);
    conforms(answer, CIT, 'post');
  });

  it('400 schema errors and duplicates, 401 and 415 answer in the file error shapes', async () => {
    const bad = await post(sandbox.url + MIT, { transactionReference: 'x', merchant: {}, instruction: {} });
    expect(bad.status).toBe(400);
    conforms(bad, MIT, 'post');
    const body = mitBody(token());
    await mit(body);
    const duplicate = await mit(body);
    expect(duplicate.status).toBe(400);
    conforms(duplicate, MIT, 'post');
    const unauthorized = await post(sandbox.url + MIT, body, { 'content-type': V7, accept: V7 });
    expect(unauthorized.status).toBe(401);
    conforms(unauthorized, MIT, 'post');
    const wrongType = await post(sandbox.url + MIT, body, { ...HEADERS, 'content-type': 'application/json' });
    expect(wrongType.status).toBe(415);
    conforms(wrongType, MIT, 'post');
  });

  it('settle, partial settle, refund, partial refund, cancel, reversal and both event queries', async () => {
    const a = await mit(mitBody(token()));
    const partialSettle = await post(link(a, 'partialSettle'), {
      value: { amount: 400, currency: 'GBP' },
      reference: 'contract-ps-1',
    });
    expect(partialSettle.status).toBe(202);
    conforms(partialSettle, '/payments/settlements/partials/{linkData}', 'post');
    const partialRefund = await post(link(partialSettle, 'partialRefund'), {
      value: { amount: 100, currency: 'GBP' },
      reference: 'contract-pr-1',
    });
    expect(partialRefund.status).toBe(202);
    conforms(partialRefund, '/payments/settlements/refunds/partials/{linkData}', 'post');

    const b = await mit(mitBody(token()));
    const settle = await post(link(b, 'settle'));
    expect(settle.status).toBe(202);
    conforms(settle, '/payments/settlements/{linkData}', 'post');
    const refund = await post(link(settle, 'refund'));
    expect(refund.status).toBe(202);
    conforms(refund, '/payments/settlements/refunds/full/{linkData}', 'post');
    const events = await get(link(refund, 'events'));
    expect(events.body.lastEvent).toBe('Sent for Refund');
    conforms(events, '/payments/events/{linkData}', 'get');

    const c = await mit(mitBody(token()));
    const cancel = await post(link(c, 'cancel'));
    expect(cancel.status).toBe(202);
    conforms(cancel, '/payments/authorizations/cancellations/{linkData}', 'post');
    const recovered = await get(
      `${sandbox.url}/payments/events?transactionRef=${c.body.transactionReference}&entity=default`,
    );
    expect(recovered.body.lastEvent).toBe('Send for Cancellation');
    conforms(recovered, '/payments/events', 'get');

    const d = await mit(mitBody(token()));
    const reversal = await post(link(d, 'reverse'));
    expect(reversal.status).toBe(202);
    conforms(reversal, '/payments/sales/reversals/{linkData}', 'post');
  });

  it('every request body the tests sent is valid by the file', () => {
    const accepted = sent.filter(({ body }) => body.transactionReference !== 'x');
    expect(accepted.length).toBeGreaterThan(10);
    for (const { template, body } of accepted) {
      const validate = spec.request(template, 'post');
      const ok = validate(body);
      expect(validate.errors ?? [], JSON.stringify(body.instruction)).toEqual([]);
      expect(ok).toBe(true);
    }
  });

  it('the sandbox refuses what the file refuses, naming the field the file names', async () => {
    const validate = spec.request(MIT, 'post');
    const base = () =>
      mitBody(token()) as { transactionReference: string; merchant: Json; instruction: Json };
    const broken: Array<[string, (b: ReturnType<typeof base>) => void]> = [
      [
        'transactionReference',
        (b) => {
          b.transactionReference = 'has spaces';
        },
      ],
      [
        'merchant',
        (b) => {
          delete (b as Partial<typeof b>).merchant;
        },
      ],
      [
        'merchant.entity',
        (b) => {
          b.merchant.entity = 'x'.repeat(33);
        },
      ],
      [
        'instruction.value.amount',
        (b) => {
          (b.instruction.value as Json).amount = '10';
        },
      ],
      [
        'instruction.value.currency',
        (b) => {
          (b.instruction.value as Json).currency = 'GB';
        },
      ],
      [
        'instruction.narrative',
        (b) => {
          delete b.instruction.narrative;
        },
      ],
      [
        'instruction.narrative.line1',
        (b) => {
          (b.instruction.narrative as Json).line1 = 'x'.repeat(25);
        },
      ],
      [
        'instruction.requestAutoSettlement',
        (b) => {
          delete b.instruction.requestAutoSettlement;
        },
      ],
      [
        'instruction.requestAccountUpdater',
        (b) => {
          b.instruction.requestAccountUpdater = 'yes';
        },
      ],
      [
        'instruction.paymentInstrument.href',
        (b) => {
          b.instruction.paymentInstrument = { type: 'card/token' };
        },
      ],
      [
        'instruction.paymentInstrument.cardNumber',
        (b) => {
          b.instruction.paymentInstrument = {
            type: 'card/plain',
            cardNumber: '44443333',
            expiryDate: { month: 1, year: 2030 },
          };
        },
      ],
      [
        'instruction.paymentInstrument.expiryDate',
        (b) => {
          b.instruction.paymentInstrument = {
            type: 'card/networkToken',
            tokenNumber: '5555000011112222',
          };
        },
      ],
      [
        'instruction.customerAgreement.type',
        (b) => {
          b.instruction.customerAgreement = { type: 'weekly' };
        },
      ],
      [
        'instruction.customerAgreement.installmentType',
        (b) => {
          b.instruction.customerAgreement = { type: 'installment', installmentType: 'latinAmerica' };
        },
      ],
      [
        'instruction.customerAgreement.schemeReference',
        (b) => {
          b.instruction.customerAgreement = { type: 'unscheduled', schemeReference: '' };
        },
      ],
    ];
    for (const [field, breakIt] of broken) {
      const body = base();
      breakIt(body);
      expect(validate(body), `the file refuses a bad ${field}`).toBe(false);
      const answer = await post(sandbox.url + MIT, body);
      expect(answer.status, field).toBe(400);
      const paths = (answer.body.validationErrors as Array<{ jsonPath: string }>).map((e) => e.jsonPath);
      expect(paths, field).toContain(`$.${field}`);
      // ajv names the same place (its instancePath, or the parent of a missing property).
      const ajvPaths = (validate.errors ?? []).map((e) =>
        e.keyword === 'required'
          ? `${e.instancePath}/${(e.params as { missingProperty: string }).missingProperty}`
          : e.instancePath,
      );
      expect(ajvPaths, field).toContain(`/${field.replaceAll('.', '/')}`);
    }
  });
});
