import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import { exitCodeFor } from '../../src/cli/output.ts';
import { ConfigError } from '../../src/config.ts';
import { DataDirInUseError } from '../../src/db/client.ts';
import { DecryptError, KeyError } from '../../src/domain/card-crypto.ts';
import { DunningConfigError } from '../../src/domain/dunning/config.ts';
import { InvalidTransitionError } from '../../src/domain/lifecycle.ts';
import {
  ConflictError,
  exitCodes,
  ForbiddenError,
  GatewayRejectedError,
  InvalidRequestError,
  NotFoundError,
  RebillError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
} from '../../src/errors.ts';
import {
  ClientClosedError,
  ConnectionError,
  ContractError,
  GatewayError,
  type GatewayErrorClasses,
  RequestRejectedError,
  TimeoutError,
} from '../../src/gateways/errors.ts';
import {
  LIQUIDO_ERRORS,
  LiquidoAuthError,
  UnsupportedOperationError,
} from '../../src/gateways/liquido/errors.ts';
import { CaptureExceedsHoldError } from '../../src/gateways/liquido/gateway.ts';
import { TokenUnavailableError } from '../../src/gateways/liquido/tokenSource.ts';
import { WorldpayRequestError } from '../../src/gateways/worldpay/errors.ts';
import {
  CsrfError,
  errorResponse,
  IdempotencyInProgressError,
  IdempotencyMismatchError,
  TooManyFailedAuthenticationsError,
} from '../../src/http/errors.ts';
import { type AdminServer, createAdminServer } from '../../src/http/server.ts';
import { LegacyInstrumentError } from '../../src/legacy/instrument.ts';
import { LegacyFileError } from '../../src/legacy/reader.ts';
import { runCli } from '../support/cli.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * Every kind of error carries what the API answers (status, code, whether the message goes
 * out) and what the CLI exits with; the README's API and CLI reference is the contract:
 * 400 validation_error (with the field when there is one), 401/403, 404 not_found,
 * 409 conflict, 422 idempotency_mismatch, 502 gateway_rejected, 503 unavailable, 500 internal
 * with no details; exit 2 invalid input, 3 not found, 4 conflict, 1 any other failure.
 */

const money = { amount: 100, currency: 'GBP' };

/** [error, type, httpStatus, exitCode, code, exposed] */
const kinds: [RebillError, string, number, number, string, boolean][] = [
  [new RebillError('boom'), 'RebillError', 500, 1, 'error', false],
  [new InvalidRequestError('--at: bad'), 'InvalidRequestError', 400, 2, 'validation_error', true],
  [new ValidationError('amount', 'bad'), 'ValidationError', 400, 2, 'validation_error', true],
  [new NotFoundError('mandate', 7), 'NotFoundError', 404, 3, 'not_found', true],
  [new ConflictError('no'), 'ConflictError', 409, 4, 'conflict', true],
  [new UnavailableError('later'), 'UnavailableError', 503, 1, 'unavailable', true],
  [new UnauthorizedError('who'), 'UnauthorizedError', 401, 1, 'unauthorized', true],
  [new ForbiddenError('not you'), 'ForbiddenError', 403, 1, 'forbidden', true],
  [new GatewayRejectedError('refused'), 'GatewayRejectedError', 502, 1, 'gateway_rejected', true],
  [new ConfigError('REBILL_X', 'bad'), 'ConfigError', 500, 2, 'config', true],
  [new DunningConfigError('schedule', 'bad'), 'DunningConfigError', 500, 1, 'config_error', false],
  [new CsrfError('no token'), 'CsrfError', 403, 1, 'csrf', true],
  [
    new TooManyFailedAuthenticationsError('wait'),
    'TooManyFailedAuthenticationsError',
    429,
    1,
    'too_many_failed_authentications',
    true,
  ],
  [new IdempotencyMismatchError('other'), 'IdempotencyMismatchError', 422, 4, 'idempotency_mismatch', true],
  [
    new IdempotencyInProgressError('busy'),
    'IdempotencyInProgressError',
    409,
    4,
    'idempotency_in_progress',
    true,
  ],
  [new DataDirInUseError('locked'), 'DataDirInUseError', 409, 4, 'conflict', true],
  [
    new InvalidTransitionError('charge', 'settled', 'pending'),
    'InvalidTransitionError',
    409,
    4,
    'conflict',
    true,
  ],
  [new LegacyFileError('bad header'), 'LegacyFileError', 400, 2, 'validation_error', true],
  [new LegacyInstrumentError('no href'), 'LegacyInstrumentError', 500, 1, 'error', false],
  [new DecryptError('tampered'), 'DecryptError', 500, 1, 'error', false],
  [new KeyError('short'), 'KeyError', 500, 1, 'error', false],
  [new GatewayError('odd'), 'GatewayError', 500, 1, 'gateway_error', false],
  [new ContractError('unreadable'), 'ContractError', 500, 1, 'gateway_error', false],
  [new TimeoutError('slow', { phase: 'response' }), 'TimeoutError', 500, 1, 'gateway_error', false],
  [
    new ConnectionError('reset', { reachedServer: true }),
    'ConnectionError',
    500,
    1,
    'gateway_transport',
    false,
  ],
  [new ClientClosedError(), 'ClientClosedError', 500, 1, 'gateway_transport', false],
  [new RequestRejectedError('no', { status: 400 }), 'RequestRejectedError', 500, 1, 'gateway_error', false],
  [new WorldpayRequestError('no', { status: 400 }), 'WorldpayRequestError', 500, 1, 'gateway_error', false],
  [new LiquidoAuthError('no', { status: 401 }), 'LiquidoAuthError', 500, 1, 'gateway_error', false],
  [new TokenUnavailableError('none'), 'TokenUnavailableError', 500, 1, 'gateway_error', false],
  [
    new UnsupportedOperationError('liquido', 'reverse'),
    'UnsupportedOperationError',
    500,
    1,
    'gateway_error',
    false,
  ],
  [new CaptureExceedsHoldError('p-1', money, money), 'CaptureExceedsHoldError', 409, 4, 'conflict', true],
];

describe('error kinds', () => {
  it.each(kinds.map((k) => [k[1], ...k] as const))(
    '%s: status, exit code, code and type come from its class',
    (_label, err, type, httpStatus, exitCode, code, exposed) => {
      expect(err).toBeInstanceOf(RebillError);
      expect(err).toBeInstanceOf(Error);
      expect({
        type: err.type,
        name: err.name,
        httpStatus: err.httpStatus,
        exitCode: err.exitCode,
        code: err.code,
        exposed: err.exposed,
      }).toEqual({ type, name: type, httpStatus, exitCode, code, exposed });
      // The instance reads its class: the statics are the same values.
      const kind = err.constructor as typeof RebillError;
      expect([kind.type, kind.httpStatus, kind.exitCode, kind.code]).toEqual([
        type,
        httpStatus,
        exitCode,
        code,
      ]);
      expect(exitCodeFor(err)).toBe(exitCode);
      const out = errorResponse(err);
      expect(out.status).toBe(exposed ? httpStatus : 500);
      if (!exposed) expect(out.body).toEqual({ error: { code: 'internal', message: 'internal error' } });
      else expect(out.body.error).toMatchObject({ code, message: err.message });
    },
  );

  it('hangs each kind from the right parent', () => {
    expect(new ValidationError('f', 'x')).toBeInstanceOf(InvalidRequestError);
    expect(new LegacyFileError('x')).toBeInstanceOf(InvalidRequestError);
    expect(new LegacyFileError('x')).not.toBeInstanceOf(ValidationError);
    expect(new CsrfError('x')).toBeInstanceOf(ForbiddenError);
    for (const e of [
      new IdempotencyMismatchError('x'),
      new IdempotencyInProgressError('x'),
      new DataDirInUseError('x'),
      new InvalidTransitionError('m', 'a', 'b'),
      new CaptureExceedsHoldError('p', money, money),
    ])
      expect(e).toBeInstanceOf(ConflictError);
    expect(new WorldpayRequestError('x', { status: 400 })).toBeInstanceOf(RequestRejectedError);
    expect(new LiquidoAuthError('x', { status: 401 })).toBeInstanceOf(RequestRejectedError);
    expect(new ClientClosedError()).toBeInstanceOf(ConnectionError);
    expect(new TokenUnavailableError('x')).toBeInstanceOf(GatewayError);
  });

  it('keeps the messages as they were written', () => {
    expect(new ValidationError('amount', 'must be greater than 0').message).toBe(
      'amount: must be greater than 0',
    );
    expect(new InvalidRequestError('--expiry: expected MM/YYYY').message).toBe('--expiry: expected MM/YYYY');
    expect(new NotFoundError('mandate', 7).message).toBe('mandate 7 not found');
    expect(new NotFoundError('no such console asset', null).message).toBe('no such console asset');
    expect(new ConfigError('REBILL_CRON', 'bad').message).toBe('REBILL_CRON: bad');
    const cause = new RequestRejectedError('no', { status: 409 });
    expect(new GatewayRejectedError('refused', { cause }).cause).toBe(cause);
  });

  it('names two statuses apart: status is the gateway answer, httpStatus the API answer', () => {
    const e = new WorldpayRequestError('Worldpay rejected it', { status: 400, correlationId: 'c-1' });
    expect(e.status).toBe(400);
    expect(e.httpStatus).toBe(500);
    expect(new TimeoutError('slow', { phase: 'connect' }).status).toBeUndefined();
    expect(new ContractError('odd', { httpStatus: 201 }).status).toBe(201);
  });

  it('makes anything else a 500 with no details and exit 1', () => {
    expect(exitCodeFor(new Error('x'))).toBe(exitCodes.failure);
    expect(exitCodeFor('x')).toBe(1);
    expect(errorResponse(new Error('select * from secrets'))).toEqual({
      status: 500,
      body: { error: { code: 'internal', message: 'internal error' } },
    });
  });
});

describe('the API error body of each kind', () => {
  const body = (err: unknown) => JSON.stringify(errorResponse(err).body);

  it('has the field only for a named field, after code and message', () => {
    expect(body(new ValidationError('amount', 'must be greater than 0'))).toBe(
      '{"error":{"code":"validation_error","message":"amount: must be greater than 0","field":"amount"}}',
    );
    expect(body(new InvalidRequestError('Idempotency-Key: give one'))).toBe(
      '{"error":{"code":"validation_error","message":"Idempotency-Key: give one"}}',
    );
    expect(body(new NotFoundError('mandate', 9))).toBe(
      '{"error":{"code":"not_found","message":"mandate 9 not found"}}',
    );
    expect(body(new ConfigError('REBILL_ADMIN_TOKENS', 'none'))).toBe(
      '{"error":{"code":"config","message":"REBILL_ADMIN_TOKENS: none"}}',
    );
    expect(errorResponse(new GatewayRejectedError('charge 1: refund rejected by the gateway: no'))).toEqual({
      status: 502,
      body: { error: { code: 'gateway_rejected', message: 'charge 1: refund rejected by the gateway: no' } },
    });
    expect(errorResponse(new UnavailableError('shutting down: no new runs are started'))).toEqual({
      status: 503,
      body: { error: { code: 'unavailable', message: 'shutting down: no new runs are started' } },
    });
  });

  it("keeps fastify's own client errors in the same envelope", () => {
    const tooLarge = Object.assign(new Error('Request body is too large'), { statusCode: 413 });
    expect(errorResponse(tooLarge)).toEqual({
      status: 413,
      body: { error: { code: 'body_too_large', message: 'Request body is too large', field: 'body' } },
    });
  });
});

describe('GatewayError.generate', () => {
  const exchange = { correlationId: 'c-9', latencyMs: 12 };

  it('makes a 4xx a rejected request with what the gateway said', () => {
    const err = GatewayError.generate(
      {
        ...exchange,
        status: 400,
        errorName: 'bodyDoesNotMatchSchema',
        validationErrors: [{ errorName: 'fieldHasInvalidValue', jsonPath: '$.reference' }],
      },
      'Worldpay rejected the authorization: HTTP 400',
    );
    expect(err).toBeInstanceOf(RequestRejectedError);
    expect(err).toMatchObject({
      name: 'RequestRejectedError',
      message: 'Worldpay rejected the authorization: HTTP 400',
      status: 400,
      correlationId: 'c-9',
      latencyMs: 12,
      errorName: 'bodyDoesNotMatchSchema',
      validationErrors: [{ errorName: 'fieldHasInvalidValue', jsonPath: '$.reference' }],
      aboutUs: false,
    });
  });

  it("uses the gateway's own classes: every Worldpay 4xx is a WorldpayRequestError", () => {
    const classes: GatewayErrorClasses = { rejected: WorldpayRequestError };
    for (const status of [400, 401, 403, 404, 429]) {
      const err = GatewayError.generate({ status }, `HTTP ${status}`, classes);
      expect(err).toBeInstanceOf(WorldpayRequestError);
      expect((err as RequestRejectedError).aboutUs).toBe([401, 403, 429].includes(status));
    }
  });

  it("makes Liquido's 401/403 our credentials and its other 4xx the request", () => {
    expect(GatewayError.generate({ status: 401 }, 'x', LIQUIDO_ERRORS)).toBeInstanceOf(LiquidoAuthError);
    expect(GatewayError.generate({ status: 403 }, 'x', LIQUIDO_ERRORS)).toBeInstanceOf(LiquidoAuthError);
    const bad = GatewayError.generate({ status: 422, errorName: 'invalid_amount' }, 'x', LIQUIDO_ERRORS);
    expect(bad).toBeInstanceOf(RequestRejectedError);
    expect(bad).not.toBeInstanceOf(LiquidoAuthError);
    expect(bad).toMatchObject({ status: 422, errorName: 'invalid_amount' });
  });

  it('words the message by what the answer is, and sends the rest to `other`', () => {
    const classes: GatewayErrorClasses = {
      credentials: LiquidoAuthError,
      credentialStatuses: [400, 401, 403],
      other: TokenUnavailableError,
    };
    const message = (kind: string) => `token: ${kind}`;
    const denied = GatewayError.generate({ status: 400 }, message, classes);
    expect(denied).toBeInstanceOf(LiquidoAuthError);
    expect(denied.message).toBe('token: credentials');
    const rejected = GatewayError.generate({ status: 404 }, message, classes);
    expect(rejected.constructor).toBe(RequestRejectedError);
    expect(rejected.message).toBe('token: rejected');
    const down = GatewayError.generate({ ...exchange, status: 503 }, message, classes);
    expect(down).toBeInstanceOf(TokenUnavailableError);
    expect(down).toMatchObject({ message: 'token: other', status: 503, correlationId: 'c-9' });
  });

  it('makes anything else that is not a success a ContractError by default', () => {
    const err = GatewayError.generate({ status: 302 }, 'authorization answered HTTP 302');
    expect(err).toBeInstanceOf(ContractError);
    expect(err.status).toBe(302);
    expect(GatewayError.generate({ status: 500 }, 'HTTP 500')).toBeInstanceOf(ContractError);
  });
});

describe('through the admin API and the CLI', () => {
  const TOKEN = 'tok-errors-0123456789';
  let w: World;
  let app: App;
  let server: AdminServer;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_ADMIN_TOKENS: TOKEN } });
    app = await w.app(new Date('2026-06-01T10:00:00Z'));
    server = await createAdminServer({ ctx: app, runner: createRunner(app) });
  });
  afterAll(async () => {
    await server?.close();
    await w?.close();
  });

  async function call(
    method: 'GET' | 'POST',
    url: string,
    opts: { body?: unknown; token?: string | null; key?: string } = {},
  ) {
    const token = opts.token === undefined ? TOKEN : opts.token;
    const res = await server.app.inject({
      method,
      url,
      headers: {
        ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
        ...(opts.key !== undefined ? { 'idempotency-key': opts.key } : {}),
      },
      ...(opts.body !== undefined ? { payload: opts.body as Record<string, unknown> } : {}),
    });
    return { status: res.statusCode, body: res.body };
  }

  it('answers each kind with its status and the README body', async () => {
    expect(await call('GET', '/v1/mandates', { token: null })).toEqual({
      status: 401,
      body: '{"error":{"code":"unauthorized","message":"missing bearer token (Authorization: Bearer <token>)"}}',
    });
    expect(await call('GET', '/v1/mandates', { token: 'wrong' })).toEqual({
      status: 403,
      body: '{"error":{"code":"forbidden","message":"the bearer token is not valid"}}',
    });
    expect(await call('GET', '/v1/mandates/999999')).toEqual({
      status: 404,
      body: '{"error":{"code":"not_found","message":"mandate 999999 not found"}}',
    });
    const invalid = await call('GET', '/v1/mandates/abc');
    expect(invalid.status).toBe(400);
    expect(JSON.parse(invalid.body)).toEqual({
      error: { code: 'validation_error', message: expect.stringMatching(/^id: /), field: 'id' },
    });
    expect(await call('POST', '/v1/runs', { body: {}, key: 'k'.repeat(256) })).toEqual({
      status: 400,
      body: '{"error":{"code":"validation_error","message":"Idempotency-Key: must be 1-255 characters"}}',
    });

    const v = await w.verify();
    const mandate = {
      customerRef: 'errors-1',
      intent: 'subscription',
      amount: 1500,
      currency: 'GBP',
      narrative: 'Errors gym',
      interval: '1 month',
      start: '2026-06-01T09:00:00Z',
      credential: { link: v.href },
    };
    const created = await call('POST', '/v1/mandates', { body: mandate, key: 'errors-create' });
    expect(created.status).toBe(201);
    const id = JSON.parse(created.body).id as number;
    expect(
      await call('POST', '/v1/mandates', { body: { ...mandate, amount: 1600 }, key: 'errors-create' }),
    ).toEqual({
      status: 422,
      body: '{"error":{"code":"idempotency_mismatch","message":"Idempotency-Key was already used for a different request"}}',
    });
    expect((await call('POST', `/v1/mandates/${id}/cancel`, { body: {} })).status).toBe(200);
    expect(await call('POST', `/v1/mandates/${id}/resume`, { body: {} })).toEqual({
      status: 409,
      body: `{"error":{"code":"conflict","message":"mandate ${id} is cancelled and cannot become active"}}`,
    });
  });

  it('answers 503 unavailable once the runner is shutting down', async () => {
    const runner = createRunner(app);
    const stopping = await createAdminServer({ ctx: app, runner });
    try {
      await runner.stop(1000);
      const res = await stopping.app.inject({
        method: 'POST',
        url: '/v1/runs',
        headers: { authorization: `Bearer ${TOKEN}` },
        payload: {},
      });
      expect({ status: res.statusCode, body: res.body }).toEqual({
        status: 503,
        body: '{"error":{"code":"unavailable","message":"shutting down: no new runs are started"}}',
      });
    } finally {
      await stopping.close();
    }
  });

  it.skipIf(!process.env.DATABASE_URL)(
    'exits 2 for invalid input, 3 for not found, 4 for a conflict',
    { timeout: 240_000 },
    async () => {
      const env = { ...w.env };
      const invalid = await runCli(['runs', 'show', '0'], env);
      expect(invalid.code, invalid.stderr).toBe(2);
      expect(invalid.stderr).toMatch(/expected a positive id/);
      const missing = await runCli(['mandates', 'show', '999999'], env);
      expect(missing.code, missing.stderr).toBe(3);
      expect(missing.stderr).toMatch(/mandate 999999 not found/);
      // A cancelled mandate, made through the API in the database the CLI uses.
      const v = await w.verify();
      const created = await call('POST', '/v1/mandates', {
        body: {
          customerRef: 'errors-cli',
          intent: 'subscription',
          amount: 1500,
          currency: 'GBP',
          narrative: 'Errors gym',
          interval: '1 month',
          start: '2026-06-01T09:00:00Z',
          credential: { link: v.href },
        },
      });
      const id = JSON.parse(created.body).id as number;
      expect((await call('POST', `/v1/mandates/${id}/cancel`, { body: {} })).status).toBe(200);
      const conflict = await runCli(['mandates', 'resume', String(id)], env);
      expect(conflict.code, conflict.stderr).toBe(4);
      expect(conflict.stderr).toMatch(/is cancelled and cannot become active/);
    },
  );
});
