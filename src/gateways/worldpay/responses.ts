import {
  ContractError,
  GatewayError,
  type GatewayErrorClasses,
  type ValidationErrorDetail,
} from '../errors.ts';
import type { HttpResponse } from '../http.ts';
import type { AuthorizeResult, Exchange, Links, PaymentActionResult, QueryResult } from '../types.ts';
import { WorldpayRequestError } from './errors.ts';
import { normalisePaymentStatus } from './status.ts';

/**
 * Every Worldpay response is mapped here, in one place: HTTP status and body to the typed
 * results of src/gateways/types.ts. 5xx means "may have happened" (unknown), 4xx means "was
 * not processed" (WorldpayRequestError), anything unreadable is a ContractError.
 */

export function exchangeOf(res: HttpResponse): Exchange {
  const raw = res.headers['wp-correlationid'];
  return {
    httpStatus: res.status,
    correlationId: Array.isArray(raw) ? raw[0] : raw,
    latencyMs: res.latencyMs,
  };
}

function parseJson(res: HttpResponse, allowEmpty: boolean): Record<string, unknown> {
  if (res.body.trim() === '') {
    if (allowEmpty) return {};
    throw new ContractError(`empty body with HTTP ${res.status}`, exchangeOf(res));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch (err) {
    throw new ContractError(`unparseable JSON with HTTP ${res.status}`, { ...exchangeOf(res), cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ContractError(`body is not a JSON object (HTTP ${res.status})`, exchangeOf(res));
  }
  return parsed as Record<string, unknown>;
}

/**
 * HAL `_links` to `{rel: href}`, rel names exactly as given, `curies` dropped. Accepts the
 * `{href}` form, a bare string (one OpenAPI example) and arrays (first entry). Relative hrefs
 * are prefixed with the origin that answered: resolution only, never building from parts.
 */
export function parseLinks(raw: unknown, origin: string): Links {
  const links: Links = {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return links;
  for (const [rel, value] of Object.entries(raw as Record<string, unknown>)) {
    if (rel === 'curies') continue;
    const entry = Array.isArray(value) ? value[0] : value;
    const href =
      typeof entry === 'string'
        ? entry
        : entry !== null &&
            typeof entry === 'object' &&
            typeof (entry as { href?: unknown }).href === 'string'
          ? (entry as { href: string }).href
          : undefined;
    if (href === undefined || href === '') continue;
    links[rel] = href.startsWith('/') ? origin + href : href;
  }
  return links;
}

function str(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

function obj(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** A refusal in either spelling: v6 `code`/`description`/`refusalAdvice.code`, v7 `refusalCode`/`refusalDescription`/`advice.code`. */
export function parseRefusal(body: Record<string, unknown>): {
  code: string | undefined;
  description: string | undefined;
  adviceCode: string | undefined;
} {
  return {
    code: str(body.refusalCode) ?? str(body.code),
    description: str(body.refusalDescription) ?? str(body.description),
    adviceCode: str(obj(body.advice)?.code) ?? str(obj(body.refusalAdvice)?.code),
  };
}

/** Every 4xx of Worldpay, its credentials' 401 and 403 too, is a WorldpayRequestError. */
const WORLDPAY_ERRORS: GatewayErrorClasses = { rejected: WorldpayRequestError };

/** Worldpay's error body `{errorName, message, validationErrors[]}` as a typed 4xx error. */
export function requestError(res: HttpResponse, what: string): GatewayError {
  let body: Record<string, unknown> = {};
  try {
    body = parseJson(res, true);
  } catch {
    // A 4xx with an unreadable body is still a 4xx: report the status.
  }
  const errorName = str(body.errorName);
  const validationErrors: ValidationErrorDetail[] = Array.isArray(body.validationErrors)
    ? body.validationErrors.map((v) => {
        const o = obj(v) ?? {};
        return { errorName: str(o.errorName), message: str(o.message), jsonPath: str(o.jsonPath) };
      })
    : [];
  const detail = [errorName, str(body.message)].filter(Boolean).join(': ');
  return GatewayError.generate(
    { ...exchangeOf(res), status: res.status, errorName, validationErrors },
    `Worldpay rejected ${what}: HTTP ${res.status}${detail ? ` ${detail}` : ''}`,
    WORLDPAY_ERRORS,
  );
}

function serverErrorReason(res: HttpResponse): string {
  let name: string | undefined;
  try {
    name = str(parseJson(res, true).errorName);
  } catch {
    name = undefined;
  }
  return `HTTP ${res.status}${name ? ` ${name}` : ''}`;
}

function isClientError(status: number): boolean {
  return status >= 400 && status < 500;
}

/**
 * Throws ContractError for an unreadable answer; the gateway's authorize() turns that into
 * `unknown`, because an unreadable 201 may still be a charge.
 */
export function mapAuthorizeResponse(res: HttpResponse, origin: string): AuthorizeResult {
  const exchange = exchangeOf(res);
  if (res.status >= 500) return { ...exchange, outcome: 'unknown', reason: serverErrorReason(res) };
  if (isClientError(res.status)) throw requestError(res, 'the authorization');
  if (res.status !== 200 && res.status !== 201) {
    throw new ContractError(`authorization answered HTTP ${res.status}`, exchange);
  }
  const body = parseJson(res, false);
  const riskFactors = Array.isArray(body.riskFactors) ? body.riskFactors : undefined;
  switch (body.outcome) {
    case 'authorized': {
      const links = parseLinks(body._links, origin);
      const paymentId = links['payments:events'];
      if (paymentId === undefined) {
        throw new ContractError('authorized without a payments:events link', exchange);
      }
      return {
        ...exchange,
        outcome: 'authorized',
        paymentId,
        links,
        nextRecurringLink:
          links['payments:recurringAuthorize'] ?? links['payments:migrateRecurringAuthorize'],
        schemeReference: str(obj(body.scheme)?.reference),
        authorizationCode: str(obj(body.issuer)?.authorizationCode),
        riskFactors,
      };
    }
    case 'refused': {
      const refusal = parseRefusal(body);
      if (refusal.code === undefined) throw new ContractError('refused without a refusal code', exchange);
      return {
        ...exchange,
        outcome: 'refused',
        code: refusal.code,
        description: refusal.description,
        adviceCode: refusal.adviceCode,
        riskFactors,
      };
    }
    case undefined:
      throw new ContractError('authorization response has no outcome', exchange);
    default:
      throw new ContractError(`unexpected authorization outcome ${JSON.stringify(body.outcome)}`, exchange);
  }
}

export function mapActionResponse(res: HttpResponse, origin: string, what: string): PaymentActionResult {
  const exchange = exchangeOf(res);
  if (res.status >= 500) return { ...exchange, outcome: 'unknown', reason: serverErrorReason(res) };
  if (isClientError(res.status)) throw requestError(res, what);
  if (res.status < 200 || res.status > 299) {
    throw new ContractError(`${what} answered HTTP ${res.status}`, exchange);
  }
  const body = parseJson(res, true);
  return { ...exchange, outcome: 'accepted', links: parseLinks(body._links, origin) };
}

export function mapQueryResponse(res: HttpResponse, origin: string, what: string): QueryResult {
  const exchange = exchangeOf(res);
  if (res.status >= 500) return { ...exchange, found: 'unknown', reason: serverErrorReason(res) };
  // Events lag up to 15 minutes: 404 is "not known yet", never "did not happen".
  if (res.status === 404) return { ...exchange, found: false };
  if (isClientError(res.status)) throw requestError(res, what);
  if (res.status !== 200) throw new ContractError(`${what} answered HTTP ${res.status}`, exchange);
  const body = parseJson(res, false);
  const rawStatus = str(body.lastEvent);
  if (rawStatus === undefined) throw new ContractError(`${what} response has no lastEvent`, exchange);
  return {
    ...exchange,
    found: true,
    status: normalisePaymentStatus(rawStatus),
    rawStatus,
    links: parseLinks(body._links, origin),
  };
}
