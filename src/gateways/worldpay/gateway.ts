import type { Logger } from 'pino';
import { ValidationError } from '../../errors.ts';
import { ConnectionError, ContractError, type GatewayError, TimeoutError } from '../errors.ts';
import { createHttpClient, type HttpRequest, type HttpResponse, splitHref } from '../http.ts';
import { actionLink, isV7Links, linkFor } from '../links.ts';
import type {
  AuthorizeRequest,
  AuthorizeResult,
  Exchange,
  Gateway,
  Instrument,
  Links,
  Money,
  PaymentActionKind,
  PaymentActionRequest,
  PaymentActionResult,
  QueryResult,
} from '../types.ts';
import {
  exchangeOf,
  mapActionResponse,
  mapAuthorizeResponse,
  mapQueryResponse,
  parseLinks,
} from './responses.ts';
import { MIT_PATH, mapMitResponse, mitBody, V7_MEDIA_TYPE } from './v7.ts';
import {
  buildPaymentInstrument,
  normaliseNarrative,
  validateEntity,
  validateHref,
  validateMoney,
  validatePartialReference,
  validateTransactionReference,
} from './validation.ts';

export interface WorldpayGatewayOptions {
  /** Base URL, e.g. https://try.access.worldpay.com */
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  /** Default merchant entity (an AuthorizeRequest may name its own). */
  entity: string;
  maxInFlight?: number | undefined;
  /** 0 = unlimited. */
  requestsPerSecond?: number | undefined;
  connectTimeoutMs?: number | undefined;
  requestTimeoutMs?: number | undefined;
  logger?: Logger | undefined;
  maxRetries?: number | undefined;
  /** First backoff step (full jitter, doubling). */
  retryBaseMs?: number | undefined;
  retryMaxMs?: number | undefined;
  /** Worldpay's Account Updater (`request`: v7 charges ask for it; `managed`, `off`: they do not). */
  accountUpdater?: 'off' | 'request' | 'managed' | undefined;
}

/** A card credential Worldpay can take as `paymentInstrument`. */
export type WorldpayCredential = Extract<
  Instrument,
  { type: 'card/plain' } | { type: 'card/token' } | { type: 'card/networkToken+applepay' }
>;

/**
 * Seed 003 sends a `paymentInstrument` with the POST to a `payments:recurringAuthorize` link
 * too (the link carries the verification, not the card). The shared Instrument type has no
 * room for it on `{type: 'link'}`, so Worldpay callers pass the stored card as `credential`;
 * without one the body carries no instrument.
 */
export type WorldpayAuthorizeRequest = AuthorizeRequest & { credential?: WorldpayCredential | undefined };

export interface WorldpayGateway extends Gateway {
  readonly name: 'worldpay';
  authorize(req: WorldpayAuthorizeRequest): Promise<AuthorizeResult>;
  /** The migrateRecurring entry point, discovered from the payments root (cached). */
  migrateUrl(): Promise<string>;
  /** PayPal (`action:` CURIE): GET `action:events`. */
  paypalEvents(href: string): Promise<QueryResult>;
  /** PayPal full refund: POST `action:refund` (only when lastEvent is sentForSettlement). */
  paypalRefund(href: string): Promise<PaymentActionResult>;
  /** PayPal partial refund: POST `action:partialRefund` with `{value, reference}`. */
  paypalPartialRefund(href: string, value: Money, reference: string): Promise<PaymentActionResult>;
}

const contentType = 'application/vnd.worldpay.payments-v6+json';
const accept = 'application/vnd.worldpay.payments-v6.hal+json';
const migrateFallbackPath = '/payments/authorizations/migrateRecurring';

const partialKinds: ReadonlySet<PaymentActionKind> = new Set(['partialSettle', 'partialRefund']);

export function createWorldpayGateway(opts: WorldpayGatewayOptions): WorldpayGateway {
  const base = opts.url.replace(/\/+$/, '');
  const { origin } = splitHref(base);
  const defaultEntity = validateEntity(opts.entity, 'entity');
  const logger = opts.logger;
  const http = createHttpClient({
    maxInFlight: opts.maxInFlight,
    requestsPerSecond: opts.requestsPerSecond,
    connectTimeoutMs: opts.connectTimeoutMs,
    requestTimeoutMs: opts.requestTimeoutMs,
    maxRetries: opts.maxRetries,
    retryBaseMs: opts.retryBaseMs,
    retryMaxMs: opts.retryMaxMs,
    logger,
  });

  const headers: Record<string, string> = { 'content-type': contentType, accept };
  if (opts.username !== undefined) {
    const token = Buffer.from(`${opts.username}:${opts.password ?? ''}`).toString('base64');
    headers.authorization = `Basic ${token}`;
  }
  /** Card Payments v7: its one media type as Content-Type and Accept, the same credentials. */
  const v7Headers: Record<string, string> = {
    ...headers,
    'content-type': V7_MEDIA_TYPE,
    accept: V7_MEDIA_TYPE,
  };
  const requestAccountUpdater = opts.accountUpdater === 'request';

  /**
   * Hrefs are followed as given; a relative one is resolved against the configured origin.
   * An href on another origin is refused: it would carry our Basic credentials there.
   */
  function resolve(href: string, field: string): string {
    const absolute = typeof href === 'string' && href.startsWith('/') ? origin + href : href;
    validateHref(absolute, field);
    if (splitHref(absolute).origin !== origin) {
      throw new ValidationError(field, 'points outside the configured Worldpay origin');
    }
    return absolute;
  }

  function log(
    kind: string,
    method: string,
    exchange: Partial<Exchange>,
    extra: Record<string, unknown>,
  ): void {
    logger?.debug(
      {
        gateway: 'worldpay',
        kind,
        method,
        correlationId: exchange.correlationId,
        httpStatus: exchange.httpStatus,
        latencyMs: exchange.latencyMs,
        ...extra,
      },
      'worldpay call',
    );
  }

  /** Sends and logs; transport failures come back as errors for the caller to map. */
  async function send(req: HttpRequest, v7 = false): Promise<HttpResponse> {
    try {
      const res = await http.request({ ...req, headers: v7 ? v7Headers : headers });
      log(req.kind, req.method, exchangeOf(res), { attempts: res.attempts });
      return res;
    } catch (err) {
      const e = err as GatewayError;
      log(req.kind, req.method, e, { error: e.name, reason: e.message });
      throw err;
    }
  }

  /** Timeouts and broken connections: the request may have been acted on. */
  function transportReason(
    err: unknown,
  ): { reason: string; latencyMs: number; reachedServer: boolean } | undefined {
    if (err instanceof TimeoutError || err instanceof ConnectionError) {
      const sent = err.reachedServer ? '' : ' (not sent)';
      return {
        reason: `${err.message}${sent}`,
        latencyMs: err.latencyMs ?? 0,
        reachedServer: err.reachedServer,
      };
    }
    return undefined;
  }

  let migrateCache: string | undefined;
  let migrateDiscovery: Promise<string> | undefined;

  async function discoverMigrateUrl(): Promise<string> {
    const fallback = base + migrateFallbackPath;
    try {
      const res = await send({ url: `${base}/payments`, method: 'GET', retry: 'idempotent', kind: 'root' });
      if (res.status === 200) {
        let links: Links = {};
        try {
          links = parseLinks(JSON.parse(res.body)._links, origin);
        } catch {
          links = {};
        }
        const href = links['payments:migrateRecurringAuthorize'];
        migrateCache = href !== undefined && splitHref(href).origin === origin ? href : fallback;
        return migrateCache;
      }
      // A definite "no root resource here" is cached; a 5xx/429 is retried next time.
      if (res.status >= 400 && res.status < 500 && res.status !== 429) migrateCache = fallback;
      return fallback;
    } catch (err) {
      if (transportReason(err) === undefined) throw err;
      return fallback;
    }
  }

  async function migrateUrl(): Promise<string> {
    if (migrateCache !== undefined) return migrateCache;
    migrateDiscovery ??= discoverMigrateUrl().finally(() => {
      migrateDiscovery = undefined;
    });
    return migrateDiscovery;
  }

  async function authorize(req: WorldpayAuthorizeRequest): Promise<AuthorizeResult> {
    if (req.instrument.type === 'mit') return authorizeMit(req, req.instrument.card);
    const instruction: Record<string, unknown> = {
      narrative: { line1: normaliseNarrative(req.narrative) },
      value: validateMoney(req.value, 'instruction.value'),
    };
    if (!['subscription', 'instalment', 'unscheduled'].includes(req.intent)) {
      throw new ValidationError('instruction.intent', 'must be subscription, instalment or unscheduled');
    }
    const body = {
      transactionReference: validateTransactionReference(req.reference),
      merchant: { entity: validateEntity(req.entity ?? defaultEntity) },
      instruction,
    };
    let url: string;
    let kind: string;
    if (req.instrument.type === 'liquido/cardId') {
      throw new ValidationError('instrument.type', 'liquido/cardId is not a Worldpay instrument');
    }
    if (req.instrument.type === 'link') {
      url = resolve(req.instrument.href, 'instrument.href');
      if (req.credential !== undefined)
        instruction.paymentInstrument = buildPaymentInstrument(req.credential);
      kind = 'authorize.recurring';
    } else {
      instruction.paymentInstrument = buildPaymentInstrument(req.instrument);
      url = await migrateUrl();
      kind = 'authorize.migrate';
    }
    instruction.intent = req.intent;
    let res: HttpResponse;
    try {
      // `notProcessed`: a 429 or a refused connection may be resent; a timeout, reset or 5xx never.
      res = await send({ url, method: 'POST', body: JSON.stringify(body), retry: 'notProcessed', kind });
    } catch (err) {
      const t = transportReason(err);
      if (t !== undefined)
        return {
          outcome: 'unknown',
          reason: t.reason,
          latencyMs: t.latencyMs,
          reachedServer: t.reachedServer,
        };
      if (err instanceof ContractError) return unknownFromContract(err);
      throw err;
    }
    try {
      return mapAuthorizeResponse(res, splitHref(url).origin);
    } catch (err) {
      // An answer we cannot read may still be a charge that happened: unknown, so the caller
      // recovers it by reference instead of treating it as rejected and charging again.
      if (err instanceof ContractError) return unknownFromContract(err);
      throw err;
    }
  }

  /** Card Payments v7: one fixed endpoint, the first payment's scheme reference, no link chain. */
  async function authorizeMit(
    req: AuthorizeRequest,
    card: Extract<Instrument, { type: 'mit' }>['card'],
  ): Promise<AuthorizeResult> {
    const body = mitBody(req, card, { entity: defaultEntity, requestAccountUpdater });
    const url = base + MIT_PATH;
    let res: HttpResponse;
    try {
      // As v6: a 429 or a refused connection may be resent; a timeout, reset or 5xx never.
      res = await send(
        { url, method: 'POST', body: JSON.stringify(body), retry: 'notProcessed', kind: 'authorize.mit' },
        true,
      );
    } catch (err) {
      const t = transportReason(err);
      if (t !== undefined)
        return {
          outcome: 'unknown',
          reason: t.reason,
          latencyMs: t.latencyMs,
          reachedServer: t.reachedServer,
        };
      if (err instanceof ContractError) return unknownFromContract(err);
      throw err;
    }
    try {
      return mapMitResponse(res, origin);
    } catch (err) {
      if (err instanceof ContractError) return unknownFromContract(err);
      throw err;
    }
  }

  function unknownFromContract(err: ContractError): AuthorizeResult {
    logger?.warn(
      {
        gateway: 'worldpay',
        correlationId: err.correlationId,
        httpStatus: err.status,
        reason: err.message,
      },
      'worldpay authorization answer breaks the contract; outcome unknown',
    );
    return {
      outcome: 'unknown',
      reason: `ContractError: ${err.message}`,
      httpStatus: err.status,
      correlationId: err.correlationId,
      latencyMs: err.latencyMs ?? 0,
    };
  }

  async function post(
    href: string,
    body: unknown,
    kind: string,
    what: string,
    v7 = false,
  ): Promise<PaymentActionResult> {
    let res: HttpResponse;
    try {
      res = await send(
        {
          url: href,
          method: 'POST',
          body: body === undefined ? undefined : JSON.stringify(body),
          retry: 'notProcessed',
          kind,
        },
        v7,
      );
    } catch (err) {
      const t = transportReason(err);
      if (t === undefined) throw err;
      return { outcome: 'unknown', reason: t.reason, latencyMs: t.latencyMs };
    }
    return mapActionResponse(res, origin, what);
  }

  async function get(href: string, kind: string, what: string, v7 = false): Promise<QueryResult> {
    let res: HttpResponse;
    try {
      res = await send({ url: href, method: 'GET', retry: 'idempotent', kind }, v7);
    } catch (err) {
      const t = transportReason(err);
      if (t === undefined) throw err;
      return { found: 'unknown', reason: t.reason, latencyMs: t.latencyMs };
    }
    return mapQueryResponse(res, origin, what);
  }

  function partialBody(value: Money | undefined, reference: string): unknown {
    return { value: validateMoney(value, 'value'), reference: validatePartialReference(reference) };
  }

  async function action(req: PaymentActionRequest): Promise<PaymentActionResult> {
    // By relation: v6 names it `payments:settle`, v7 `cardPayments:settle` (a reversal is v7's
    // `reverse`). A payment v7 answered is spoken to in v7's media type.
    const rel = `payments:${req.kind}`;
    const href = actionLink(req.links, req.kind);
    if (href === undefined) {
      throw new ValidationError(
        'links',
        `the payment has no ${rel} link: ${req.kind} is not available in its state`,
      );
    }
    const body = partialKinds.has(req.kind) ? partialBody(req.value, req.reference) : undefined;
    return post(resolve(href, `links.${rel}`), body, req.kind, req.kind, isV7Links(req.links));
  }

  async function query(payment: { paymentId: string; links: Links }): Promise<QueryResult> {
    const href = linkFor(payment.links, 'events') ?? payment.paymentId;
    return get(resolve(href, 'payments:events'), 'query', 'the events query', isV7Links(payment.links));
  }

  async function queryByReference(
    reference: string,
    entity: string,
    api?: 'v6' | 'v7',
  ): Promise<QueryResult> {
    validateTransactionReference(reference, 'transactionRef');
    validateEntity(entity, 'entity');
    const url =
      `${base}/payments/events?transactionRef=${encodeURIComponent(reference)}` +
      `&entity=${encodeURIComponent(entity)}`;
    const result = await get(url, 'queryByReference', 'the recovery query', api === 'v7');
    // The recovery answer lists next actions but not always the payment's own events link:
    // without one, the recovery query itself is how this payment is asked about later.
    if (result.found === true && linkFor(result.links, 'events') === undefined) {
      return { ...result, links: { ...result.links, 'payments:events': url } };
    }
    return result;
  }

  return {
    name: 'worldpay',
    authorize,
    action,
    query,
    queryByReference,
    migrateUrl,
    paypalEvents: (href) => get(resolve(href, 'action:events'), 'paypal.events', 'the PayPal events query'),
    paypalRefund: (href) =>
      post(resolve(href, 'action:refund'), undefined, 'paypal.refund', 'the PayPal refund'),
    paypalPartialRefund: (href, value, reference) =>
      post(
        resolve(href, 'action:partialRefund'),
        partialBody(value, reference),
        'paypal.partialRefund',
        'the PayPal partial refund',
      ),
    close: () => http.close(),
  };
}
