import type { Logger } from 'pino';
import { ConflictError, ValidationError } from '../../errors.ts';
import { silentLogger } from '../../logger.ts';
import { ConnectionError, ContractError, GatewayError, TimeoutError } from '../errors.ts';
import type {
  AuthorizeRequest,
  AuthorizeResult,
  Exchange,
  Gateway,
  Money,
  PaymentActionRequest,
  PaymentActionResult,
  QueryResult,
} from '../types.ts';
import { LIQUIDO_ERRORS, UnsupportedOperationError } from './errors.ts';
import { createTokenSource } from './tokenSource.ts';
import { createTransport, type TransportResponse } from './transport.ts';
import {
  type LiquidoChargeRequest,
  type LiquidoPayment,
  linksFor,
  normaliseStatus,
  readPayment,
  refusalCode,
} from './wire.ts';

export interface LiquidoGatewayOptions {
  url: string;
  clientId: string;
  clientSecret: string;
  apiKey: string;
  subMerchantId?: string | undefined;
  /** ISO 3166 alpha-2 country of the charges. */
  country?: string | undefined;
  callbackUrl?: string | undefined;
  /** Connections to Liquido, i.e. requests in flight at once; more wait in the pool's queue. */
  maxInFlight?: number | undefined;
  requestTimeoutMs?: number | undefined;
  logger?: Logger | undefined;
  now?: (() => Date) | undefined;
}

/** A capture asked for more than the pre-authorization holds; refused before anything is sent. */
export class CaptureExceedsHoldError extends ConflictError {
  static override readonly type: string = 'CaptureExceedsHoldError';
  constructor(
    readonly paymentId: string,
    readonly requested: Money,
    readonly held: Money,
  ) {
    super(
      `capture of ${requested.amount} ${requested.currency} exceeds the ${held.amount} ${held.currency} held by ${paymentId}`,
    );
  }
}

/** How one call ended, short of a thrown 4xx. */
type Answer =
  | { kind: 'payment'; payment: LiquidoPayment; exchange: Exchange }
  | { kind: 'notFound'; exchange: Exchange }
  /** Transport failure, 5xx or an unreadable answer: the call may have been processed. */
  | { kind: 'unknown'; reason: string; exchange: Exchange };

// Bounds the in-memory hold cache; a miss only costs one status query.
const MAX_REMEMBERED_HOLDS = 10_000;

/**
 * Liquido card pre-authorization behind the Gateway interface. The idempotencyKey (rebill's
 * deterministic attempt reference) is the identity of a payment: paymentId, capture, cancel
 * and status calls are all addressed by it.
 *
 * Retries: the client never resends a charge on its own after a timeout, reset or 5xx; it
 * reports `unknown` and the caller resolves it with queryByReference. Resending under the
 * SAME idempotencyKey would be safe for Liquido (it answers with the existing payment), so
 * billing may do that after a query says found:false, but never under a new key. Automatic
 * resends happen only where Liquido provably did nothing: after a 401 (one token refresh,
 * then the same call again), and in the shared http client on 429 or a connection that
 * never reached the server.
 */
export function createLiquidoGateway(opts: LiquidoGatewayOptions): Gateway {
  const logger = opts.logger ?? silentLogger;
  const now = opts.now ?? (() => new Date());
  const country = opts.country ?? 'PE';
  const transport = createTransport({
    url: opts.url,
    maxInFlight: opts.maxInFlight ?? 16,
    requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
    logger,
  });
  const tokens = createTokenSource({
    transport,
    clientId: opts.clientId,
    clientSecret: opts.clientSecret,
    now,
    logger,
  });
  // Amount held per authorized idempotencyKey, so a capture can be checked without a query.
  const held = new Map<string, Money>();

  function rememberHold(key: string, value: Money): void {
    held.delete(key);
    held.set(key, value);
    if (held.size > MAX_REMEMBERED_HOLDS) {
      const oldest = held.keys().next().value;
      if (oldest !== undefined) held.delete(oldest);
    }
  }

  /** One authenticated call; resent once, with a fresh token, if the token was refused. */
  async function call(op: string, method: 'GET' | 'POST', path: string, body?: unknown) {
    for (let attempt = 0; ; attempt++) {
      const token = await tokens.get();
      const headers: Record<string, string> = {
        authorization: `Bearer ${token}`,
        'x-api-key': opts.apiKey,
        accept: 'application/json',
      };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await transport.request({
        method,
        path,
        headers,
        retry: method === 'GET' ? 'idempotent' : 'notProcessed',
        kind: op,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      logger.debug({ gateway: 'liquido', op, path, httpStatus: res.status, latencyMs: res.latencyMs });
      if (res.status === 401 && attempt === 0) {
        tokens.invalidate(token);
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        throw GatewayError.generate(
          { status: res.status, correlationId: res.correlationId, latencyMs: res.latencyMs },
          `Liquido refused the API credentials on ${op} (HTTP ${res.status})`,
          LIQUIDO_ERRORS,
        );
      }
      return res;
    }
  }

  /**
   * Runs a call and sorts its result: a readable 2xx payment, a 404 (reads only), a thrown
   * 4xx (nothing was processed), or unknown for everything that may have been processed
   * without us seeing the answer.
   */
  async function exchange(op: string, method: 'GET' | 'POST', path: string, body: unknown): Promise<Answer> {
    let res: TransportResponse;
    try {
      res = await call(op, method, path, body);
    } catch (err) {
      if (err instanceof TimeoutError || err instanceof ConnectionError || err instanceof ContractError) {
        return {
          kind: 'unknown',
          reason: `${err.name}: ${err.message}`,
          exchange: { latencyMs: err.latencyMs ?? 0 },
        };
      }
      throw err;
    }
    const ex: Exchange = {
      httpStatus: res.status,
      correlationId: res.correlationId,
      latencyMs: res.latencyMs,
    };
    if (res.status === 404 && method === 'GET') return { kind: 'notFound', exchange: ex };
    if (res.status >= 500) return { kind: 'unknown', reason: `HTTP ${res.status}`, exchange: ex };
    if (res.status >= 400) {
      const j = res.json as { message?: unknown; error?: unknown } | undefined;
      const message = typeof j?.message === 'string' ? j.message.slice(0, 200) : `HTTP ${res.status}`;
      throw GatewayError.generate(
        {
          status: res.status,
          errorName: typeof j?.error === 'string' ? j.error : undefined,
          correlationId: res.correlationId,
          latencyMs: res.latencyMs,
        },
        `Liquido rejected ${op}: ${message}`,
        LIQUIDO_ERRORS,
      );
    }
    const payment = readPayment(res.json);
    if (payment === undefined) {
      return { kind: 'unknown', reason: `unreadable ${op} response (HTTP ${res.status})`, exchange: ex };
    }
    return { kind: 'payment', payment, exchange: ex };
  }

  /** The reason an answer that is not a payment leaves the outcome open. */
  const openReason = (a: Exclude<Answer, { kind: 'payment' }>) =>
    a.kind === 'unknown' ? a.reason : `HTTP ${a.exchange.httpStatus}`;

  function checkMoney(field: string, value: Money): void {
    if (!Number.isSafeInteger(value.amount) || value.amount <= 0) {
      throw new ValidationError(`${field}.amount`, 'must be a positive integer in minor units');
    }
    if (!/^[A-Z]{3}$/.test(value.currency)) {
      throw new ValidationError(`${field}.currency`, 'must be an ISO-4217 alpha-3 code');
    }
  }

  async function lookup(reference: string): Promise<{ result: QueryResult; payment?: LiquidoPayment }> {
    const r = await exchange('status', 'GET', `/v1/payments/${encodeURIComponent(reference)}`, undefined);
    if (r.kind === 'unknown') return { result: { ...r.exchange, found: 'unknown', reason: r.reason } };
    if (r.kind === 'notFound') return { result: { ...r.exchange, found: false } };
    const status = normaliseStatus(r.payment.transferStatus);
    if (status === 'authorized') {
      rememberHold(reference, { amount: r.payment.amount, currency: r.payment.currency });
    } else {
      held.delete(reference);
    }
    return {
      payment: r.payment,
      result: {
        ...r.exchange,
        found: true,
        status,
        rawStatus: r.payment.transferStatus,
        links: linksFor(opts.url, reference, status),
      },
    };
  }

  async function authorize(req: AuthorizeRequest): Promise<AuthorizeResult> {
    if (req.instrument.type !== 'liquido/cardId') {
      throw new ValidationError(
        'instrument',
        `Liquido charges a vaulted card ({type: 'liquido/cardId'}), not '${req.instrument.type}'`,
      );
    }
    if (req.instrument.cardId === '') throw new ValidationError('instrument.cardId', 'must not be empty');
    if (req.reference === '') throw new ValidationError('reference', 'must not be empty');
    checkMoney('value', req.value);
    const body: LiquidoChargeRequest = {
      idempotencyKey: req.reference,
      amount: req.value.amount,
      currency: req.value.currency,
      country,
      paymentMethod: 'CREDIT_CARD',
      paymentFlow: 'DIRECT',
      capture: false,
      payer: req.customerRef === undefined ? undefined : { id: req.customerRef },
      cardId: req.instrument.cardId,
      description: req.narrative,
      callbackUrl: opts.callbackUrl,
      subMerchantId: opts.subMerchantId,
    };
    const r = await exchange('authorize', 'POST', '/v1/payments/charges/card', body);
    if (r.kind !== 'payment') {
      const reason = openReason(r);
      logger.warn({ gateway: 'liquido', op: 'authorize', reference: req.reference, reason });
      return { ...r.exchange, outcome: 'unknown', reason };
    }
    const { payment, exchange: ex } = r;
    if (payment.idempotencyKey !== req.reference) {
      return { ...ex, outcome: 'unknown', reason: 'response is for another idempotencyKey' };
    }
    const status = normaliseStatus(payment.transferStatus);
    switch (status) {
      case 'authorized':
        rememberHold(req.reference, { amount: payment.amount, currency: payment.currency });
        return {
          ...ex,
          outcome: 'authorized',
          paymentId: payment.idempotencyKey,
          links: linksFor(opts.url, payment.idempotencyKey, status),
        };
      case 'failed':
        return {
          ...ex,
          outcome: 'refused',
          code: refusalCode(payment.transferErrorMsg),
          description: payment.transferErrorMsg,
        };
      case 'inProgress':
        // Pending at Liquido: resolved later by queryByReference, exactly like a timeout.
        return { ...ex, outcome: 'unknown', reason: 'IN_PROGRESS at Liquido' };
      default:
        // A pre-authorization should not come back SETTLED or CANCELLED; let a query decide.
        return { ...ex, outcome: 'unknown', reason: `unexpected transferStatus ${payment.transferStatus}` };
    }
  }

  async function capture(req: PaymentActionRequest): Promise<PaymentActionResult> {
    if (req.kind === 'partialSettle' && req.value === undefined) {
      throw new ValidationError('value', 'required for a partial capture');
    }
    if (req.value !== undefined) {
      checkMoney('value', req.value);
      // Never ask for more than is held: known from the authorization, else one status query.
      let hold = held.get(req.paymentId);
      if (hold === undefined) {
        const { payment } = await lookup(req.paymentId);
        if (payment !== undefined && normaliseStatus(payment.transferStatus) === 'authorized') {
          hold = { amount: payment.amount, currency: payment.currency };
        }
      }
      if (hold !== undefined && hold.currency !== req.value.currency) {
        throw new ValidationError('value.currency', `must be ${hold.currency}, the currency of the hold`);
      }
      if (hold !== undefined && req.value.amount > hold.amount) {
        throw new CaptureExceedsHoldError(req.paymentId, req.value, hold);
      }
      // hold still undefined: the status query could not tell; Liquido itself refuses an over-capture.
    }
    const body = req.value === undefined ? {} : { amount: req.value.amount };
    return finishAction(
      'capture',
      req.paymentId,
      await exchange(
        'capture',
        'POST',
        `/v1/payments/charges/card/capture/${encodeURIComponent(req.paymentId)}`,
        body,
      ),
    );
  }

  function finishAction(op: string, paymentId: string, r: Answer): PaymentActionResult {
    if (r.kind !== 'payment') {
      const reason = openReason(r);
      logger.warn({ gateway: 'liquido', op, paymentId, reason });
      return { ...r.exchange, outcome: 'unknown', reason };
    }
    const status = normaliseStatus(r.payment.transferStatus);
    if (status !== 'authorized') held.delete(paymentId);
    return { ...r.exchange, outcome: 'accepted', status, links: linksFor(opts.url, paymentId, status) };
  }

  async function action(req: PaymentActionRequest): Promise<PaymentActionResult> {
    switch (req.kind) {
      case 'settle':
      case 'partialSettle':
        return capture(req);
      case 'cancel':
        return finishAction(
          'cancel',
          req.paymentId,
          await exchange(
            'cancel',
            'POST',
            `/v1/payments/charges/cancel/${encodeURIComponent(req.paymentId)}`,
            {},
          ),
        );
      case 'refund':
      case 'partialRefund':
      case 'reversal':
        throw new UnsupportedOperationError('liquido', req.kind);
    }
  }

  return {
    name: 'liquido',
    authorize,
    action,
    async query(payment) {
      return (await lookup(payment.paymentId)).result;
    },
    async queryByReference(reference) {
      // The entity is a Worldpay notion; Liquido scopes payments by credentials.
      return (await lookup(reference)).result;
    },
    async close() {
      await transport.close();
    },
  };
}
