/**
 * Card Payments v7 merchant-initiated transactions: the request body rebill sends to
 * `POST /cardPayments/merchantInitiatedTransactions` and the mapping of its answer, in one
 * place (worldpay-card-payments-openapi.yaml, `merchantInitiatedTransaction` and
 * `payments_authorize_201_*_mit`). The transport, retries and hrefs are the v6 gateway's.
 */
import { ValidationError } from '../../errors.ts';
import { ContractError } from '../errors.ts';
import type { HttpResponse } from '../http.ts';
import { linkFor } from '../links.ts';
import type { AuthorizeRequest, AuthorizeResult, Intent, MitCard, UpdatedInstrument } from '../types.ts';
import { exchangeOf, parseLinks, parseRefusal, requestError } from './responses.ts';
import {
  normaliseNarrative,
  validateEntity,
  validateHref,
  validateMoney,
  validateTransactionReference,
} from './validation.ts';

/** v7's media type, for `Content-Type` and `Accept` alike. */
export const V7_MEDIA_TYPE = 'application/vnd.worldpay.payments-v7+json';
export const MIT_PATH = '/cardPayments/merchantInitiatedTransactions';

/** rebill's intents in v7's words (v7 spells it `installment`). */
const AGREEMENT: Record<Intent, string> = {
  subscription: 'subscription',
  instalment: 'installment',
  unscheduled: 'unscheduled',
};

function expiry(month: number, year: number, field: string): { month: number; year: number } {
  if (!Number.isInteger(month) || month < 1 || month > 12) {
    throw new ValidationError(`${field}.month`, 'must be 1-12');
  }
  if (!Number.isInteger(year) || year < 1000 || year > 9999) {
    throw new ValidationError(`${field}.year`, 'must be a four-digit year');
  }
  return { month, year };
}

function digits(value: string, field: string): string {
  if (typeof value !== 'string' || !/^\d{12,19}$/.test(value)) {
    throw new ValidationError(field, 'must be 12-19 digits');
  }
  return value;
}

/** The v7 `paymentInstrument` of a stored card. Messages never echo card data. */
export function mitPaymentInstrument(
  card: MitCard,
  field = 'instruction.paymentInstrument',
): Record<string, unknown> {
  switch (card.type) {
    case 'card/token':
      return { type: 'card/token', href: validateHref(card.href, `${field}.href`) };
    case 'card/plain': {
      const holder = card.cardHolderName;
      if (holder !== undefined && (typeof holder !== 'string' || holder.length < 1 || holder.length > 255)) {
        throw new ValidationError(`${field}.cardHolderName`, 'must be 1-255 characters');
      }
      return {
        type: 'card/plain',
        cardNumber: digits(card.cardNumber, `${field}.cardNumber`),
        expiryDate: expiry(card.expiryMonth, card.expiryYear, `${field}.expiryDate`),
        ...(holder === undefined ? {} : { cardHolderName: holder }),
      };
    }
    case 'card/networkToken':
      // No cryptogram: merchant-initiated payments on a network token carry none.
      return {
        type: 'card/networkToken',
        tokenNumber: digits(card.tokenNumber, `${field}.tokenNumber`),
        expiryDate: expiry(card.expiryMonth, card.expiryYear, `${field}.expiryDate`),
      };
    default:
      throw new ValidationError(`${field}.type`, `${(card as { type: string }).type} is not a v7 card`);
  }
}

/**
 * The merchant-initiated transaction's body. The scheme reference is the customer's first
 * payment's, sent byte for byte (Worldpay's own example ends in two spaces).
 */
export function mitBody(
  req: AuthorizeRequest,
  card: MitCard,
  opts: { entity: string; requestAccountUpdater: boolean },
): Record<string, unknown> {
  const type = AGREEMENT[req.intent];
  if (type === undefined) {
    throw new ValidationError(
      'instruction.customerAgreement.type',
      'must be subscription, instalment or unscheduled',
    );
  }
  const schemeReference = req.schemeReference;
  if (schemeReference !== undefined && (schemeReference.length < 1 || schemeReference.length > 255)) {
    throw new ValidationError('instruction.customerAgreement.schemeReference', 'must be 1-255 characters');
  }
  if (schemeReference === undefined && card.type !== 'card/token') {
    throw new ValidationError(
      'instruction.customerAgreement.schemeReference',
      `is required for a ${card.type} credential (the first payment's scheme reference)`,
    );
  }
  return {
    transactionReference: validateTransactionReference(req.reference),
    merchant: { entity: validateEntity(req.entity ?? opts.entity) },
    instruction: {
      requestAutoSettlement: { enabled: false },
      narrative: { line1: normaliseNarrative(req.narrative) },
      value: validateMoney(req.value, 'instruction.value'),
      paymentInstrument: mitPaymentInstrument(card),
      customerAgreement: {
        type,
        ...(type === 'installment' ? { installmentType: 'merchant' } : {}),
        ...(schemeReference === undefined ? {} : { schemeReference }),
      },
      ...(opts.requestAccountUpdater ? { requestAccountUpdater: true } : {}),
    },
  };
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function obj(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * `updatedPaymentInstrument`, checked: what it says is written to the credential, so anything
 * ill-formed is a ContractError naming the field (never echoing a card number).
 */
export function parseUpdatedInstrument(raw: unknown, res: HttpResponse): UpdatedInstrument | undefined {
  if (raw === undefined || raw === null) return undefined;
  const fail = (field: string, what: string): never => {
    throw new ContractError(`updatedPaymentInstrument.${field} ${what}`, exchangeOf(res));
  };
  const u = obj(raw) ?? fail('', 'is not an object');
  const message = str(u.accountUpdaterMessage) ?? fail('accountUpdaterMessage', 'is missing or not a string');
  const out: UpdatedInstrument = { message };
  if (u.expiryDate !== undefined) {
    const e = obj(u.expiryDate) ?? fail('expiryDate', 'is not an object');
    if (!Number.isInteger(e.month) || (e.month as number) < 1 || (e.month as number) > 12)
      fail('expiryDate.month', 'is not a month 1-12');
    if (!Number.isInteger(e.year) || (e.year as number) < 1000 || (e.year as number) > 9999)
      fail('expiryDate.year', 'is not a four-digit year');
    out.expiryMonth = e.month as number;
    out.expiryYear = e.year as number;
  }
  if (u.cardNumber !== undefined) {
    if (typeof u.cardNumber !== 'string' || !/^\d{12,19}$/.test(u.cardNumber))
      fail('cardNumber', 'is not 12-19 digits');
    out.cardNumber = u.cardNumber as string;
  }
  for (const field of ['cardBin', 'lastFour'] as const) {
    const v = u[field];
    if (v === undefined) continue;
    const text = typeof v === 'number' ? String(v) : v;
    if (typeof text !== 'string' || !/^[0-9*]{1,19}$/.test(text)) fail(field, 'is not digits');
    out[field] = text as string;
  }
  for (const field of ['cardBrand', 'fundingType'] as const) {
    if (u[field] === undefined) continue;
    out[field] = str(u[field]) ?? fail(field, 'is not a string');
  }
  if (u.appliedNetworkToken !== undefined) {
    if (typeof u.appliedNetworkToken !== 'boolean') fail('appliedNetworkToken', 'is not a boolean');
    out.appliedNetworkToken = u.appliedNetworkToken as boolean;
  }
  return out;
}

/**
 * The 201 of a merchant-initiated transaction (every outcome answers 201). Throws
 * ContractError for anything it cannot read; the gateway turns that into `unknown`, because an
 * unreadable 201 may still be a charge.
 */
export function mapMitResponse(res: HttpResponse, origin: string): AuthorizeResult {
  const exchange = exchangeOf(res);
  if (res.status >= 500) return { ...exchange, outcome: 'unknown', reason: `HTTP ${res.status}` };
  if (res.status >= 400) throw requestError(res, 'the merchant-initiated transaction');
  if (res.status !== 201 && res.status !== 200) {
    throw new ContractError(`merchant-initiated transaction answered HTTP ${res.status}`, exchange);
  }
  let body: Record<string, unknown> | undefined;
  try {
    body = obj(JSON.parse(res.body));
  } catch (err) {
    throw new ContractError(`unparseable JSON with HTTP ${res.status}`, { ...exchange, cause: err });
  }
  if (body === undefined) throw new ContractError(`body is not a JSON object (HTTP ${res.status})`, exchange);
  const riskFactors = Array.isArray(body.riskFactors) ? body.riskFactors : undefined;
  const updatedInstrument = parseUpdatedInstrument(body.updatedPaymentInstrument, res);
  switch (body.outcome) {
    case 'authorized': {
      const links = parseLinks(body._links, origin);
      const paymentId = linkFor(links, 'events');
      if (paymentId === undefined) {
        throw new ContractError('authorized without an events link (cardPayments:events)', exchange);
      }
      const scheme = obj(body.scheme);
      if (scheme !== undefined && scheme.reference !== undefined && typeof scheme.reference !== 'string') {
        throw new ContractError('scheme.reference is not a string', exchange);
      }
      return {
        ...exchange,
        outcome: 'authorized',
        paymentId,
        links,
        schemeReference: str(scheme?.reference),
        authorizationCode: str(obj(body.issuer)?.authorizationCode),
        riskFactors,
        updatedInstrument,
      };
    }
    case 'refused': {
      if (body.refusalCode !== undefined && typeof body.refusalCode !== 'string') {
        throw new ContractError('refusalCode is not a string', exchange);
      }
      const refusal = parseRefusal(body);
      if (refusal.code === undefined) throw new ContractError('refused without a refusalCode', exchange);
      return {
        ...exchange,
        outcome: 'refused',
        code: refusal.code,
        description: refusal.description,
        adviceCode: refusal.adviceCode,
        riskFactors,
        updatedInstrument,
      };
    }
    case undefined:
      throw new ContractError('merchant-initiated transaction answer has no outcome', exchange);
    default:
      // `Sent for Settlement` only answers a request with requestAutoSettlement enabled, which
      // rebill never sends: not an answer this contract has.
      throw new ContractError(
        `unexpected merchant-initiated transaction outcome ${JSON.stringify(body.outcome)}`,
        exchange,
      );
  }
}
