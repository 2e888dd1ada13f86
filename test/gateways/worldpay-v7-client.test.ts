import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.ts';
import type { AuthorizeRequest, MitCard } from '../../src/gateways/types.ts';
import {
  createWorldpayGateway,
  type WorldpayGateway,
  WorldpayRequestError,
} from '../../src/gateways/worldpay/index.ts';

/**
 * The v7 adapter over real HTTP against a loopback server that answers what each case needs:
 * the request it builds, and every answer that breaks the contract turned into `unknown` with a
 * reason naming what is wrong (an unreadable 201 may still be a charge: never "refused").
 */

const V7 = 'application/vnd.worldpay.payments-v7+json';

describe('Worldpay v7 adapter (loopback server)', () => {
  let server: Server;
  let base: string;
  let next: { status: number; body: unknown } = { status: 201, body: {} };
  const seen: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
  let gw: WorldpayGateway;
  let updating: WorldpayGateway;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.statusCode = next.status;
        res.setHeader('content-type', V7);
        res.end(typeof next.body === 'string' ? next.body : JSON.stringify(next.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    gw = createWorldpayGateway({ url: base, username: 'u', password: 'p', entity: 'default', maxRetries: 0 });
    updating = createWorldpayGateway({
      url: base,
      username: 'u',
      password: 'p',
      entity: 'default',
      maxRetries: 0,
      accountUpdater: 'request',
    });
  });
  afterAll(async () => {
    await gw?.close();
    await updating?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  const card: MitCard = {
    type: 'card/plain',
    cardNumber: '4444333322221111',
    expiryMonth: 5,
    expiryYear: 2035,
  };
  const req = (over: Partial<AuthorizeRequest> = {}): AuthorizeRequest => ({
    reference: 'rb-1-0-1',
    instrument: { type: 'mit', card },
    value: { amount: 250, currency: 'GBP' },
    entity: 'default',
    narrative: 'MindPalace',
    intent: 'instalment',
    schemeReference: 'MCCOLXT1C0104  ',
    ...over,
  });
  const links = () => ({
    'cardPayments:settle': { href: `${base}/payments/settlements/full/abc` },
    'cardPayments:cancel': { href: `${base}/payments/authorizations/cancellations/abc` },
    'cardPayments:events': { href: `${base}/payments/events/abc` },
  });

  it('posts the merchant-initiated transaction in v7 media with the first scheme reference byte for byte', async () => {
    next = {
      status: 201,
      body: { outcome: 'authorized', scheme: { reference: 'OWN-REF' }, _links: links() },
    };
    const r = await gw.authorize(req());
    expect(r).toMatchObject({
      outcome: 'authorized',
      schemeReference: 'OWN-REF',
      paymentId: `${base}/payments/events/abc`,
    });
    const sent = seen.at(-1)!;
    expect(sent.url).toBe('/cardPayments/merchantInitiatedTransactions');
    expect([sent.headers['content-type'], sent.headers.accept]).toEqual([V7, V7]);
    expect(JSON.parse(sent.body)).toEqual({
      transactionReference: 'rb-1-0-1',
      merchant: { entity: 'default' },
      instruction: {
        requestAutoSettlement: { enabled: false },
        narrative: { line1: 'MindPalace' },
        value: { amount: 250, currency: 'GBP' },
        paymentInstrument: {
          type: 'card/plain',
          cardNumber: '4444333322221111',
          expiryDate: { month: 5, year: 2035 },
        },
        customerAgreement: {
          type: 'installment',
          installmentType: 'merchant',
          schemeReference: 'MCCOLXT1C0104  ',
        },
      },
    });
  });

  it('asks for the Account Updater only in request mode, and reads its answer', async () => {
    next = {
      status: 201,
      body: {
        outcome: 'refused',
        refusalCode: '51',
        refusalDescription: 'INSUFFICIENT FUNDS',
        advice: { code: '02' },
        updatedPaymentInstrument: {
          accountUpdaterMessage: 'TThe expiration date was changed',
          expiryDate: { month: 7, year: 2031 },
          lastFour: '1111',
        },
      },
    };
    const r = await updating.authorize(req({ intent: 'subscription' }));
    expect(JSON.parse(seen.at(-1)!.body).instruction.requestAccountUpdater).toBe(true);
    expect(r).toMatchObject({
      outcome: 'refused',
      code: '51',
      adviceCode: '02',
      updatedInstrument: {
        message: 'TThe expiration date was changed',
        expiryMonth: 7,
        expiryYear: 2031,
        lastFour: '1111',
      },
    });
    await gw.authorize(req({ intent: 'subscription' }));
    expect(JSON.parse(seen.at(-1)!.body).instruction).not.toHaveProperty('requestAccountUpdater');
  });

  it.each([
    [{ outcome: 'refused', refusalCode: 5 }, /refusalCode is not a string/],
    [{ outcome: 'refused' }, /refused without a refusalCode/],
    [{ outcome: 'authorized', _links: { 'cardPayments:settle': { href: '/x' } } }, /without an events link/],
    [
      { outcome: 'Sent for Settlement' },
      /unexpected merchant-initiated transaction outcome "Sent for Settlement"/,
    ],
    [{}, /has no outcome/],
    [
      {
        outcome: 'refused',
        refusalCode: '5',
        updatedPaymentInstrument: { accountUpdaterMessage: 'x', expiryDate: { month: 13, year: 2030 } },
      },
      /updatedPaymentInstrument\.expiryDate\.month is not a month/,
    ],
    [
      {
        outcome: 'refused',
        refusalCode: '5',
        updatedPaymentInstrument: { accountUpdaterMessage: 'x', cardNumber: '12ab' },
      },
      /updatedPaymentInstrument\.cardNumber is not 12-19 digits/,
    ],
    ['not json', /unparseable JSON/],
  ])('an answer that breaks the contract is unknown, naming what is wrong (%j)', async (body, reason) => {
    next = { status: 201, body };
    const r = await gw.authorize(req());
    expect(r.outcome).toBe('unknown');
    expect(r.outcome === 'unknown' && r.reason).toMatch(reason);
    expect(JSON.stringify(r)).not.toContain('4444333322221111');
  });

  it("a 400 is Worldpay's error, with its validation errors", async () => {
    next = {
      status: 400,
      body: {
        errorName: 'bodyDoesNotMatchSchema',
        message: 'The json body provided does not match the expected schema',
        validationErrors: [
          { errorName: 'fieldIsMissing', message: 'missing', jsonPath: '$.instruction.narrative' },
        ],
      },
    };
    const err = await gw.authorize(req()).catch((e) => e);
    expect(err).toBeInstanceOf(WorldpayRequestError);
    expect(err.validationErrors).toEqual([
      { errorName: 'fieldIsMissing', message: 'missing', jsonPath: '$.instruction.narrative' },
    ]);
  });

  it('a card or network token without the first scheme reference is refused before sending, naming the field', async () => {
    const before = seen.length;
    const err = await gw.authorize(req({ schemeReference: undefined })).catch((e) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.field).toBe('instruction.customerAgreement.schemeReference');
    expect(seen.length).toBe(before);
    // a token may go without one
    next = { status: 201, body: { outcome: 'refused', refusalCode: '5' } };
    const r = await gw.authorize(
      req({
        schemeReference: undefined,
        instrument: { type: 'mit', card: { type: 'card/token', href: `${base}/tokens/t1` } },
      }),
    );
    expect(r.outcome).toBe('refused');
    expect(JSON.parse(seen.at(-1)!.body).instruction.customerAgreement).toEqual({
      type: 'installment',
      installmentType: 'merchant',
    });
  });

  it('acts on a link by its relation, whatever its prefix, in the media type of the API that returned it', async () => {
    next = { status: 202, body: { _links: {} } };
    // The file's own examples name some v7 links `payments:`; a v7 payment's others say cardPayments:
    await gw.action({
      kind: 'reversal',
      links: {
        'cardPayments:reverse': `${base}/payments/sales/reversals/r1`,
        'cardPayments:events': `${base}/payments/events/r1`,
      },
      paymentId: `${base}/payments/events/r1`,
      reference: 'rev-1',
    });
    expect(seen.at(-1)).toMatchObject({ url: '/payments/sales/reversals/r1', headers: { accept: V7 } });
    await gw.action({
      kind: 'settle',
      links: { 'payments:settle': `${base}/payments/settlements/full/s1` },
      paymentId: `${base}/payments/events/s1`,
      reference: 'settle-1',
    });
    expect(seen.at(-1)).toMatchObject({
      url: '/payments/settlements/full/s1',
      headers: { accept: 'application/vnd.worldpay.payments-v6.hal+json' },
    });
  });
});
