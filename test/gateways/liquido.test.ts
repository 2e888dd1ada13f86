import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { ValidationError } from '../../src/errors.ts';
import { RequestRejectedError } from '../../src/gateways/errors.ts';
import {
  CaptureExceedsHoldError,
  createLiquidoGateway,
  LIQUIDO_RELS,
  LiquidoAuthError,
  liquidoGatewayFromConfig,
  UnsupportedOperationError,
} from '../../src/gateways/liquido/index.ts';
import type { AuthorizeRequest, Gateway } from '../../src/gateways/types.ts';
import { silentLogger } from '../../src/logger.ts';
import {
  LIQUIDO_SANDBOX_DEFAULTS,
  type LiquidoSandbox,
  liquidoSandbox,
  startLiquidoSandbox,
} from '../../src/sandbox/liquido/index.ts';
import { startSandbox } from '../../src/sandbox/server.ts';

const T0 = Date.parse('2026-11-21T00:00:00.000Z');
let clock = T0;
let sandbox: LiquidoSandbox;
let gateways: Gateway[] = [];
let cardId: string;

function gateway(over: Partial<Parameters<typeof createLiquidoGateway>[0]> = {}): Gateway {
  const g = createLiquidoGateway({
    url: sandbox.url,
    clientId: LIQUIDO_SANDBOX_DEFAULTS.clientId,
    clientSecret: LIQUIDO_SANDBOX_DEFAULTS.clientSecret,
    apiKey: LIQUIDO_SANDBOX_DEFAULTS.apiKey,
    subMerchantId: 'sub-1',
    now: () => new Date(clock),
    ...over,
  });
  gateways.push(g);
  return g;
}

function charge(reference: string, over: Partial<AuthorizeRequest> = {}): AuthorizeRequest {
  return {
    reference,
    instrument: { type: 'liquido/cardId', cardId },
    value: { amount: 1000, currency: 'PEN' },
    entity: 'default',
    narrative: 'Gym plan November',
    intent: 'subscription',
    customerRef: 'cust-1',
    ...over,
  };
}

const ops = (op: string) => sandbox.ledger().entries.filter((e) => e.op === op);

/** A raw call to the sandbox, with a token of its own, for what the client refuses to send. */
async function rawPost(
  path: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const form = new URLSearchParams({
    client_id: LIQUIDO_SANDBOX_DEFAULTS.clientId,
    client_secret: LIQUIDO_SANDBOX_DEFAULTS.clientSecret,
    grant_type: 'client_credentials',
  });
  const tok = (await (
    await fetch(`${sandbox.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    })
  ).json()) as { access_token: string };
  const res = await fetch(sandbox.url + path, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${tok.access_token}`,
      'x-api-key': LIQUIDO_SANDBOX_DEFAULTS.apiKey,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

beforeEach(async () => {
  clock = T0;
  sandbox = await startLiquidoSandbox({ now: () => clock });
  cardId = sandbox.addCard({ cardHolderName: 'Ana Perez', last4: '4242' });
});

afterEach(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  gateways = [];
  await sandbox.close();
});

describe('token', () => {
  it('fetches one token for many concurrent and sequential calls', async () => {
    const g = gateway();
    const results = await Promise.all(
      ['a', 'b', 'c', 'd', 'e'].map((r) => g.authorize(charge(`rb-tok-${r}`))),
    );
    expect(results.map((r) => r.outcome)).toEqual(Array(5).fill('authorized'));
    await g.queryByReference('rb-tok-a', 'default');
    await g.action({ kind: 'settle', paymentId: 'rb-tok-b', links: {}, reference: 'rb-tok-b-s' });
    expect(sandbox.ledger().tokensIssued).toBe(1);
    expect(ops('token')).toHaveLength(1);
  });

  it('refreshes before expiry on the pinned clock, not before the margin', async () => {
    const g = gateway();
    await g.authorize(charge('rb-exp-1'));
    clock = T0 + (3600 - 61) * 1000; // still outside the 60 s margin
    await g.authorize(charge('rb-exp-2'));
    expect(sandbox.ledger().tokensIssued).toBe(1);
    clock = T0 + (3600 - 59) * 1000; // inside it: refreshed before the sandbox would refuse
    await g.authorize(charge('rb-exp-3'));
    expect(sandbox.ledger().tokensIssued).toBe(2);
    expect(sandbox.ledger().entries.some((e) => e.outcome === 'unauthorized')).toBe(false);
  });

  it('a token the server expired early gets one 401, one shared refresh, and the calls go through once', async () => {
    const g = gateway();
    await g.authorize(charge('rb-401-0'));
    sandbox.expireTokens();
    const results = await Promise.all([1, 2, 3, 4].map((i) => g.authorize(charge(`rb-401-${i}`))));
    expect(results.map((r) => r.outcome)).toEqual(Array(4).fill('authorized'));
    expect(sandbox.ledger().tokensIssued).toBe(2);
    const payments = sandbox.ledger().payments;
    expect(payments).toHaveLength(5);
    expect(ops('authorize').filter((e) => e.outcome === 'authorized')).toHaveLength(5);
  });

  it('bad client credentials: a typed error without the secret, nothing charged', async () => {
    const secret = 'wrong-secret-d41d8cd98f';
    const g = gateway({ clientSecret: secret });
    const err = await g.authorize(charge('rb-bad-1')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LiquidoAuthError);
    expect(err).toBeInstanceOf(RequestRejectedError);
    expect((err as LiquidoAuthError).status).toBe(401);
    expect((err as Error).message).not.toContain(secret);
    expect(JSON.stringify(err)).not.toContain(secret);
    expect(sandbox.ledger().payments).toHaveLength(0);
    expect(ops('token')[0]?.outcome).toBe('badCredentials');
  });

  it('a wrong api key: 403 as a typed error, not retried', async () => {
    const g = gateway({ apiKey: 'nope' });
    await expect(g.authorize(charge('rb-key-1'))).rejects.toMatchObject({
      name: 'LiquidoAuthError',
      status: 403,
    });
    expect(ops('authorize').map((e) => e.outcome)).toEqual(['forbidden']);
  });
});

describe('pre-authorization, capture, cancel', () => {
  it('pre-authorizes: AUTHORIZED, paymentId is the idempotencyKey, body in the shape of seed 004', async () => {
    const r = await gateway().authorize(charge('rb-m1-c1-a1'));
    expect(r).toMatchObject({ outcome: 'authorized', paymentId: 'rb-m1-c1-a1', httpStatus: 200 });
    if (r.outcome !== 'authorized') return;
    expect(Object.keys(r.links).sort()).toEqual(
      [LIQUIDO_RELS.cancel, LIQUIDO_RELS.capture, LIQUIDO_RELS.status].sort(),
    );
    expect(r.links[LIQUIDO_RELS.capture]).toBe(`${sandbox.url}/v1/payments/charges/card/capture/rb-m1-c1-a1`);
    const [p] = sandbox.ledger().payments;
    expect(p).toMatchObject({
      transferStatusCode: 200,
      idempotencyKey: 'rb-m1-c1-a1',
      paymentMethod: 'CREDIT_CARD',
      amount: 1000,
      currency: 'PEN',
      finalAmount: 1000,
      finalCurrency: 'PEN',
      country: 'PE',
      createTime: '2026-11-21 00:00:00 GMT+00:00',
      transferStatus: 'AUTHORIZED',
      description: 'Gym plan November',
      subMerchantId: 'sub-1',
      transferDetails: {
        card: { cardId, cardInfo: { cardHolderName: 'Ana Perez', last4: '4242', brand: 'VISA' } },
      },
    });
    expect(typeof p?.referenceId).toBe('string');
  });

  it('captures the full hold', async () => {
    const g = gateway();
    await g.authorize(charge('rb-full'));
    const r = await g.action({ kind: 'settle', paymentId: 'rb-full', links: {}, reference: 'rb-full-s' });
    expect(r).toMatchObject({ outcome: 'accepted', status: 'settled' });
    if (r.outcome === 'accepted') expect(r.links[LIQUIDO_RELS.capture]).toBeUndefined();
    expect(sandbox.ledger().payments[0]).toMatchObject({ transferStatus: 'SETTLED', finalAmount: 1000 });
    const q = await g.query({ paymentId: 'rb-full', links: {} });
    expect(q).toMatchObject({ found: true, status: 'settled', rawStatus: 'SETTLED' });
  });

  it('captures less than the hold', async () => {
    const g = gateway();
    await g.authorize(charge('rb-part'));
    const r = await g.action({
      kind: 'partialSettle',
      paymentId: 'rb-part',
      links: {},
      value: { amount: 600, currency: 'PEN' },
      reference: 'rb-part-s',
    });
    expect(r).toMatchObject({ outcome: 'accepted', status: 'settled' });
    expect(sandbox.ledger().payments[0]).toMatchObject({
      transferStatus: 'SETTLED',
      amount: 1000,
      finalAmount: 600,
    });
  });

  it('refuses a capture larger than the hold locally, without sending it, and the sandbox refuses it too', async () => {
    await gateway().authorize(charge('rb-over'));
    const over = {
      kind: 'partialSettle' as const,
      paymentId: 'rb-over',
      links: {},
      value: { amount: 1001, currency: 'PEN' },
      reference: 'rb-over-s',
    };
    // The client that authorized knows the hold.
    await expect(gateways[0]!.action(over)).rejects.toBeInstanceOf(CaptureExceedsHoldError);
    // A fresh client (e.g. after a restart) learns it with one status query.
    const fresh = gateway();
    const err = await fresh.action(over).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureExceedsHoldError);
    expect((err as Error).message).toBe('capture of 1001 PEN exceeds the 1000 PEN held by rb-over');
    await expect(fresh.action({ ...over, value: { amount: 500, currency: 'USD' } })).rejects.toBeInstanceOf(
      ValidationError,
    );
    expect(ops('capture')).toHaveLength(0);
    expect(ops('status')).toHaveLength(1);
    // Sent anyway, Liquido (the sandbox) says no and the hold stays.
    const raw = await rawPost('/v1/payments/charges/card/capture/rb-over', { amount: 1001 });
    expect(raw).toMatchObject({ status: 400, json: { error: 'amount_exceeds_hold' } });
    expect(sandbox.ledger().payments[0]?.transferStatus).toBe('AUTHORIZED');
  });

  it('cancels an authorized hold', async () => {
    const g = gateway();
    await g.authorize(charge('rb-cxl'));
    const r = await g.action({ kind: 'cancel', paymentId: 'rb-cxl', links: {}, reference: 'rb-cxl-c' });
    expect(r).toMatchObject({ outcome: 'accepted', status: 'cancelled' });
    if (r.outcome === 'accepted') expect(Object.keys(r.links)).toEqual([LIQUIDO_RELS.status]);
    expect(sandbox.ledger().payments[0]?.transferStatus).toBe('CANCELLED');
  });

  it('rejects a cancel after capture as a typed 4xx, leaving the payment settled', async () => {
    const g = gateway();
    await g.authorize(charge('rb-cap-cxl'));
    await g.action({ kind: 'settle', paymentId: 'rb-cap-cxl', links: {}, reference: 'rb-cap-cxl-s' });
    const err = await g
      .action({ kind: 'cancel', paymentId: 'rb-cap-cxl', links: {}, reference: 'rb-cap-cxl-c' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestRejectedError);
    expect(err).toMatchObject({ status: 400, errorName: 'invalid_state' });
    expect(sandbox.ledger().payments[0]?.transferStatus).toBe('SETTLED');
  });

  it('maps FAILED to refused with transferErrorMsg (magic card holder through the vault route)', async () => {
    const res = await fetch(`${sandbox.url}/_sandbox/liquido/cards`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cardHolderName: 'FAIL_INSUFFICIENT_FUNDS' }),
    });
    expect(res.status).toBe(201);
    const poor = ((await res.json()) as { cardId: string }).cardId;
    const r = await gateway().authorize(
      charge('rb-fail', { instrument: { type: 'liquido/cardId', cardId: poor } }),
    );
    expect(r).toMatchObject({
      outcome: 'refused',
      code: 'INSUFFICIENT_FUNDS',
      description: 'Insufficient funds',
    });
  });

  it('maps a scripted FAILED message to a stable code', async () => {
    sandbox.script({
      match: { cardId },
      outcomes: [{ type: 'fail', message: 'Tarjeta bloqueada por el banco' }],
    });
    const r = await gateway().authorize(charge('rb-fail-2'));
    expect(r).toMatchObject({
      outcome: 'refused',
      code: 'TARJETA_BLOQUEADA_POR_EL_BANCO',
      description: 'Tarjeta bloqueada por el banco',
    });
  });

  it('refuses what Liquido cannot do: refunds and reversals, and non-Liquido instruments', async () => {
    const g = gateway();
    for (const kind of ['refund', 'partialRefund', 'reversal'] as const) {
      await expect(g.action({ kind, paymentId: 'x', links: {}, reference: 'x-r' })).rejects.toBeInstanceOf(
        UnsupportedOperationError,
      );
    }
    await expect(
      g.authorize(charge('rb-link', { instrument: { type: 'link', href: 'https://x/y' } })),
    ).rejects.toBeInstanceOf(ValidationError);
    expect(sandbox.ledger().entries).toHaveLength(0);
  });
});

describe('unknown outcomes and idempotency', () => {
  it('a lost pre-authorization is unknown, resolved by queryByReference, with exactly one hold', async () => {
    const g = gateway();
    sandbox.script({ match: { idempotencyKey: 'rb-lost' }, outcomes: [{ type: 'lost' }] });
    const r = await g.authorize(charge('rb-lost'));
    expect(r.outcome).toBe('unknown');
    const q = await g.queryByReference('rb-lost', 'default');
    expect(q).toMatchObject({ found: true, status: 'authorized', rawStatus: 'AUTHORIZED' });
    if (q.found === true) expect(q.links[LIQUIDO_RELS.capture]).toBeDefined();
    const { payments } = sandbox.ledger();
    expect(payments.map((p) => p.idempotencyKey)).toEqual(['rb-lost']);
    expect(ops('authorize')).toEqual([
      expect.objectContaining({ outcome: 'authorized', responseWithheld: 'lost' }),
    ]);
  });

  it('a timed-out pre-authorization is unknown, never resent, and resolves by its key', async () => {
    const g = gateway({ requestTimeoutMs: 300 });
    sandbox.script({ match: { idempotencyKey: 'rb-slow' }, outcomes: [{ type: 'slow', ms: 10_000 }] });
    const r = await g.authorize(charge('rb-slow'));
    expect(r).toMatchObject({ outcome: 'unknown' });
    if (r.outcome === 'unknown') expect(r.reason).toMatch(/TimeoutError/);
    expect(await g.queryByReference('rb-slow', 'default')).toMatchObject({
      found: true,
      status: 'authorized',
    });
    expect(ops('authorize')).toHaveLength(1);
    expect(sandbox.ledger().payments).toHaveLength(1);
  });

  it('IN_PROGRESS is unknown at authorization and inProgress on query', async () => {
    const g = gateway();
    sandbox.script({ match: { idempotencyKey: 'rb-pend' }, outcomes: [{ type: 'pending' }] });
    expect(await g.authorize(charge('rb-pend'))).toMatchObject({
      outcome: 'unknown',
      reason: 'IN_PROGRESS at Liquido',
    });
    const q = await g.queryByReference('rb-pend', 'default');
    expect(q).toMatchObject({ found: true, status: 'inProgress', rawStatus: 'IN_PROGRESS' });
    if (q.found === true) expect(q.links[LIQUIDO_RELS.capture]).toBeUndefined();
  });

  it('a 5xx is unknown; the query then says not found and nothing is held', async () => {
    const g = gateway();
    sandbox.script({ match: { any: true }, outcomes: [{ type: 'error', status: 503 }] });
    const r = await g.authorize(charge('rb-503'));
    expect(r).toMatchObject({ outcome: 'unknown', reason: 'HTTP 503', httpStatus: 503 });
    expect(await g.queryByReference('rb-503', 'default')).toMatchObject({ found: false, httpStatus: 404 });
    expect(sandbox.ledger().payments).toHaveLength(0);
  });

  it('the same idempotencyKey again returns the same payment and holds once; a different body is 409', async () => {
    const g = gateway();
    const a = await g.authorize(charge('rb-same'));
    const b = await g.authorize(charge('rb-same'));
    expect(a).toMatchObject({ outcome: 'authorized', paymentId: 'rb-same' });
    expect(b).toMatchObject({ outcome: 'authorized', paymentId: 'rb-same' });
    expect(sandbox.ledger().payments).toHaveLength(1);
    expect(ops('authorize').map((e) => e.outcome)).toEqual(['authorized', 'replayed']);
    const err = await g
      .authorize(charge('rb-same', { value: { amount: 2000, currency: 'PEN' } }))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      name: 'RequestRejectedError',
      status: 409,
      errorName: 'idempotency_conflict',
    });
    expect(sandbox.ledger().payments).toHaveLength(1);
  });
});

describe('mounted in the rebill sandbox server', () => {
  it('serves the Liquido routes beside the Worldpay ones', async () => {
    const server = await startSandbox({ plugins: [liquidoSandbox({ tokenTtlSeconds: 60 })] });
    try {
      const card = await fetch(`${server.url}/_sandbox/liquido/cards`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      const id = ((await card.json()) as { cardId: string }).cardId;
      const g = gateway({ url: server.url });
      const r = await g.authorize(
        charge('rb-mounted', { instrument: { type: 'liquido/cardId', cardId: id } }),
      );
      expect(r).toMatchObject({ outcome: 'authorized' });
      const ledger = (await (await fetch(`${server.url}/_sandbox/liquido/ledger`)).json()) as {
        payments: { idempotencyKey: string }[];
        tokensIssued: number;
      };
      expect(ledger.payments.map((p) => p.idempotencyKey)).toEqual(['rb-mounted']);
      expect(ledger.tokensIssued).toBe(1);
    } finally {
      await Promise.all(gateways.map((g) => g.close()));
      gateways = [];
      await server.close();
    }
  });
});

describe('liquidoGatewayFromConfig', () => {
  it('names the missing variable when a Liquido mandate is charged without credentials', async () => {
    const config = loadConfig({
      LIQUIDO_URL: sandbox.url,
      LIQUIDO_CLIENT_ID: 'x',
      LIQUIDO_API_KEY: 'k',
    }).liquido;
    const g = liquidoGatewayFromConfig(config, silentLogger);
    const err = await g.authorize(charge('rb-cfg')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('LIQUIDO_CLIENT_SECRET');
    await g.close();
    expect(sandbox.ledger().entries).toHaveLength(0);
  });

  it('charges through the configured sandbox', async () => {
    const config = loadConfig({
      LIQUIDO_URL: sandbox.url,
      LIQUIDO_CLIENT_ID: LIQUIDO_SANDBOX_DEFAULTS.clientId,
      LIQUIDO_CLIENT_SECRET: LIQUIDO_SANDBOX_DEFAULTS.clientSecret,
      LIQUIDO_API_KEY: LIQUIDO_SANDBOX_DEFAULTS.apiKey,
      LIQUIDO_SUB_MERCHANT_ID: 'psp-sub-9',
      LIQUIDO_COUNTRY: 'CO',
    }).liquido;
    const g = liquidoGatewayFromConfig(config, silentLogger);
    gateways.push(g);
    expect(
      await g.authorize(charge('rb-cfg-ok', { value: { amount: 5000, currency: 'COP' } })),
    ).toMatchObject({
      outcome: 'authorized',
    });
    expect(sandbox.ledger().payments[0]).toMatchObject({ country: 'CO', subMerchantId: 'psp-sub-9' });
  });
});
