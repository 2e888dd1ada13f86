import { randomBytes } from 'node:crypto';
import { cardBrand, schemeReferenceFor, type V7Card } from './cards.js';
import type { LedgerDraft } from './ledger.js';
import { nextActions, type PaymentState, transition } from './paymentMachine.js';
import type { Payment } from './payments.js';
import { magicNameOutcome, refusalDescription } from './refusals.js';
import { digits, duplicateReference, errorReply, href, type SandboxReply, schemaError } from './replies.js';
import { type InstrumentKeys, unwrap } from './scripts.js';
import type { SandboxStores } from './stores.js';
import type { AccountUpdaterScript, Outcome } from './types.js';
import {
  type CitRequest,
  checkCustomerInitiated,
  checkMerchantInitiated,
  type V7Instrument,
} from './v7Schema.js';

// Card Payments v7: merchant-initiated transactions against a card's first customer-initiated
// payment (its scheme reference), answered 201 for every outcome with `cardPayments:*` links,
// and Account Updater answers. Payments live in the same store as v6 ones, so settle, refund,
// events, the recovery query and webhooks work the same; only the answers' links and media
// type differ (manage.ts asks `v7Links` for them).

export const V7_TYPE = 'application/vnd.worldpay.payments-v7+json';

type V7Rel = 'cancel' | 'settle' | 'partialSettle' | 'refund' | 'partialRefund' | 'reverse' | 'events';

/** Paths of the v7 action links (worldpay-card-payments-openapi.yaml). */
const V7_PATH: Record<V7Rel, string> = {
  cancel: '/payments/authorizations/cancellations/',
  settle: '/payments/settlements/',
  partialSettle: '/payments/settlements/partials/',
  refund: '/payments/settlements/refunds/full/',
  partialRefund: '/payments/settlements/refunds/partials/',
  reverse: '/payments/sales/reversals/',
  events: '/payments/events/',
};

const REVERSIBLE: ReadonlySet<PaymentState> = new Set(['authorized', 'sentForSettlement', 'settled']);

/** The `cardPayments:*` links a v7 payment offers now (the same actions v6 offers, plus reverse). */
export function v7Links(base: string, p: Payment): Record<string, unknown> {
  const links: Record<string, unknown> = {};
  const add = (rel: V7Rel) => {
    links[`cardPayments:${rel}`] = href(base, V7_PATH[rel] + p.linkData);
  };
  for (const rel of nextActions(p)) add(rel.slice('payments:'.length) as V7Rel);
  if (REVERSIBLE.has(p.state) && p.refundedAmount === 0) add('reverse');
  add('events');
  links.curies = [{ name: 'cardPayments', href: `${base}/rels/cardPayments/{rel}`, templated: true }];
  return links;
}

/** A Worldpay payment or command id: 21-36 characters of `[A-Za-z0-9_-]`. */
function worldpayId(prefix: string): string {
  return prefix + randomBytes(16).toString('base64url').slice(0, 21);
}

const RISK_FACTORS = [
  { type: 'cvc', risk: 'notSupplied' },
  { type: 'avs', risk: 'notChecked', detail: 'address' },
  { type: 'avs', risk: 'notChecked', detail: 'postcode' },
];

/** What a request's instrument says about the card, with the card it belongs to when known. */
interface Used {
  card: V7Card | undefined;
  type: V7Instrument['type'];
  /** The number charged (card number or network token number), when the request or card has one. */
  number: string | undefined;
  expiryMonth: number | undefined;
  expiryYear: number | undefined;
  holderName: string | undefined;
  keys: InstrumentKeys;
}

function used({ cards }: SandboxStores, instrument: V7Instrument): Used {
  switch (instrument.type) {
    case 'card/plain': {
      const card = cards.byNumber(instrument.cardNumber);
      return {
        card,
        type: instrument.type,
        number: instrument.cardNumber,
        expiryMonth: instrument.expiryDate.month,
        expiryYear: instrument.expiryDate.year,
        holderName: instrument.cardHolderName ?? card?.holderName,
        keys: {
          cardNumbers: card?.cardNumbers ?? [instrument.cardNumber],
          tokenHref: card?.tokenHref,
          networkToken: card?.networkToken?.number,
        },
      };
    }
    case 'card/token': {
      const card = cards.byToken(instrument.href);
      return {
        card,
        type: instrument.type,
        number: card?.cardNumbers.at(-1),
        expiryMonth: card?.expiryMonth,
        expiryYear: card?.expiryYear,
        holderName: card?.holderName,
        keys: {
          cardNumbers: card?.cardNumbers ?? [],
          tokenHref: instrument.href,
          networkToken: card?.networkToken?.number,
        },
      };
    }
    case 'card/networkToken': {
      const card = cards.byNetworkToken(instrument.tokenNumber);
      return {
        card,
        type: instrument.type,
        number: instrument.tokenNumber,
        expiryMonth: instrument.expiryDate.month,
        expiryYear: instrument.expiryDate.year,
        holderName: instrument.cardHolderName ?? card?.holderName,
        keys: {
          cardNumbers: card?.cardNumbers ?? [],
          tokenHref: card?.tokenHref,
          networkToken: instrument.tokenNumber,
        },
      };
    }
  }
}

/** The answer's masked `paymentInstrument` (never the full number). */
function maskedInstrument(u: Used): Record<string, unknown> {
  const out: Record<string, unknown> = { type: `${u.type}+masked` };
  if (u.number !== undefined) {
    out.cardBin = u.number.slice(0, 6);
    out.lastFour = u.number.slice(-4);
  }
  out.category = 'consumer';
  out.countryCode = 'GB';
  if (u.expiryMonth !== undefined && u.expiryYear !== undefined) {
    out.expiryDate = { month: u.expiryMonth, year: u.expiryYear };
  }
  if (u.number !== undefined) out.cardBrand = cardBrand(u.number);
  out.fundingType = 'credit';
  return out;
}

/**
 * The answer's `updatedPaymentInstrument` for a scripted Account Updater result, and the card
 * as the sandbox knows it from now on (its new number, expiry or network token).
 */
function accountUpdate(
  stores: SandboxStores,
  u: Used,
  script: AccountUpdaterScript,
): Record<string, unknown> {
  const number = script.cardNumber ?? u.number;
  const out: Record<string, unknown> = { accountUpdaterMessage: script.message };
  if (script.expiryMonth !== undefined && script.expiryYear !== undefined) {
    out.expiryDate = { month: script.expiryMonth, year: script.expiryYear };
  }
  const bin = script.cardBin ?? number?.slice(0, 6);
  const lastFour = script.lastFour ?? number?.slice(-4);
  const brand = script.cardBrand ?? (number !== undefined ? cardBrand(number) : undefined);
  if (bin !== undefined) out.cardBin = bin;
  if (lastFour !== undefined) out.lastFour = lastFour;
  if (brand !== undefined) out.cardBrand = brand;
  out.fundingType = 'credit';
  if (script.cardNumber !== undefined) out.cardNumber = script.cardNumber;
  if (script.networkToken !== undefined) out.appliedNetworkToken = true;
  if (u.card) {
    stores.cards.update(u.card, {
      cardNumber: script.cardNumber,
      expiryMonth: script.expiryMonth,
      expiryYear: script.expiryYear,
      networkToken: script.networkToken,
    });
  }
  return out;
}

function v7Reply(reply: SandboxReply): SandboxReply {
  return { ...reply, contentType: V7_TYPE };
}

/** `POST /cardPayments/merchantInitiatedTransactions`: a repeat payment of a stored card. */
export function merchantInitiated(stores: SandboxStores, base: string, body: unknown): SandboxReply {
  const { payments, scripts, ledger } = stores;
  const checked = checkMerchantInitiated(body);
  if (!checked.ok) {
    ledger.record({ op: 'authorize', api: 'v7', outcome: 'rejected', httpStatus: 400 });
    return v7Reply(schemaError(checked.errors));
  }
  const req = checked.request;
  const { instruction } = req;
  const u = used(stores, instruction.paymentInstrument);
  const requested = instruction.requestAccountUpdater === true;
  const entry: LedgerDraft = {
    op: 'authorize',
    api: 'v7',
    transactionReference: req.transactionReference,
    amount: instruction.value.amount,
    currency: instruction.value.currency,
    schemeReference: instruction.customerAgreement.schemeReference,
    customerAgreementType: instruction.customerAgreement.type,
    instrumentType: instruction.paymentInstrument.type,
    lastFour: u.number?.slice(-4),
    expiryMonth: u.expiryMonth,
    expiryYear: u.expiryYear,
    requestAccountUpdater: requested,
  };
  if (payments.byReference(req.merchant.entity, req.transactionReference)) {
    ledger.countDuplicateReference();
    ledger.record({ ...entry, outcome: 'duplicate', httpStatus: 400 });
    return v7Reply(duplicateReference());
  }
  const scripted = unwrap(scripts.next('authorize', req.transactionReference, undefined, u.keys));
  const decided: Outcome = scripted.outcome ?? magicNameOutcome(u.holderName) ?? { type: 'authorize' };
  if (decided.type === 'error') {
    ledger.record({ ...entry, outcome: 'error', httpStatus: decided.status });
    return v7Reply({ ...errorReply(decided), delayMs: scripted.delayMs });
  }
  const lost = decided.type === 'lost';
  const updaterScript =
    (decided.type === 'authorize' || decided.type === 'refuse') &&
    decided.accountUpdater !== undefined &&
    (requested || stores.accountUpdater.mode === 'managed')
      ? decided.accountUpdater
      : undefined;
  const updated = updaterScript ? accountUpdate(stores, u, updaterScript) : undefined;
  const opening = {
    transactionReference: req.transactionReference,
    entity: req.merchant.entity,
    amount: instruction.value.amount,
    currency: instruction.value.currency,
  };
  const paymentId = worldpayId('pay');
  const common = { transactionReference: req.transactionReference, paymentId, commandId: worldpayId('cmd') };
  let answer: Record<string, unknown>;
  let p: Payment;
  if (decided.type === 'refuse') {
    p = payments.open(opening, undefined, 'refused', { paymentId });
    ledger.record({
      ...entry,
      paymentId: p.id,
      outcome: 'refused',
      code: decided.code,
      httpStatus: 201,
      responseLost: lost || undefined,
      accountUpdaterMessage: updaterScript?.message,
    });
    answer = {
      outcome: 'refused',
      ...common,
      refusalCode: decided.code,
      refusalDescription: decided.description ?? refusalDescription(decided.code),
      riskFactors: RISK_FACTORS,
    };
    if (decided.adviceCode !== undefined) answer.advice = { code: decided.adviceCode };
    answer.paymentInstrument = maskedInstrument(u);
  } else {
    p = payments.open(opening, undefined, 'authorized', { paymentId });
    ledger.record({
      ...entry,
      paymentId: p.id,
      outcome: 'authorized',
      httpStatus: 201,
      responseLost: lost || undefined,
      accountUpdaterMessage: updaterScript?.message,
    });
    answer = {
      outcome: 'authorized',
      ...common,
      riskFactors: RISK_FACTORS,
      issuer: { authorizationCode: digits(6) },
      scheme: { reference: schemeReferenceFor(cardBrand(u.number ?? '4')) },
      paymentInstrument: maskedInstrument(u),
    };
    if (instruction.requestAutoSettlement.enabled === true) {
      // Auto settlement: settled in the same call, through the payment machine's settle.
      const settled = transition(p, 'settle', undefined, false);
      if (settled.ok) {
        p.state = settled.next;
        payments.emit(p, 'sentForSettlement', stores.now());
        payments.scheduleSettlement(p);
        answer.outcome = 'Sent for Settlement';
      }
    }
  }
  if (updated) answer.updatedPaymentInstrument = updated;
  if (decided.type !== 'refuse') answer._links = v7Links(base, p);
  return { status: 201, body: answer, contentType: V7_TYPE, delayMs: scripted.delayMs, lost };
}

export interface FirstPayment {
  reply: SandboxReply;
  /** The card, when the payment was authorized and the card is known. */
  card?: V7Card;
  schemeReference?: string;
}

/**
 * A customer-initiated payment (the customer is present: the first payment of a stored card).
 * Authorized unless the holder's magic name says otherwise; `control` (the sandbox's own
 * first-payments route) always authorizes, so the magic name is left for the later charges.
 */
export function customerInitiated(
  stores: SandboxStores,
  base: string,
  body: unknown,
  control = false,
): FirstPayment {
  const { payments, ledger, cards } = stores;
  const checked = checkCustomerInitiated(body);
  if (!checked.ok) {
    ledger.record({ op: 'firstPayment', api: 'v7', outcome: 'rejected', httpStatus: 400 });
    return { reply: v7Reply(schemaError(checked.errors)) };
  }
  const req: CitRequest = checked.request;
  const { instruction } = req;
  const instrument = instruction.paymentInstrument;
  const before = used(stores, instrument);
  const entry: LedgerDraft = {
    op: 'firstPayment',
    api: 'v7',
    transactionReference: req.transactionReference,
    amount: instruction.value.amount,
    currency: instruction.value.currency,
    customerAgreementType: instruction.customerAgreement?.type,
    instrumentType: instrument.type,
    lastFour: before.number?.slice(-4),
    expiryMonth: before.expiryMonth,
    expiryYear: before.expiryYear,
  };
  if (payments.byReference(req.merchant.entity, req.transactionReference)) {
    ledger.countDuplicateReference();
    ledger.record({ ...entry, outcome: 'duplicate', httpStatus: 400 });
    return { reply: v7Reply(duplicateReference()) };
  }
  const decided: Outcome = (control ? undefined : magicNameOutcome(before.holderName)) ?? {
    type: 'authorize',
  };
  if (decided.type === 'error') {
    ledger.record({ ...entry, outcome: 'error', httpStatus: decided.status });
    return { reply: v7Reply(errorReply(decided)) };
  }
  const opening = {
    transactionReference: req.transactionReference,
    entity: req.merchant.entity,
    amount: instruction.value.amount,
    currency: instruction.value.currency,
  };
  const paymentId = worldpayId('pay');
  const common = { transactionReference: req.transactionReference, paymentId, commandId: worldpayId('cmd') };
  if (decided.type === 'refuse') {
    const p = payments.open(opening, undefined, 'refused', { paymentId });
    ledger.record({ ...entry, paymentId: p.id, outcome: 'refused', code: decided.code, httpStatus: 201 });
    const answer: Record<string, unknown> = {
      outcome: 'refused',
      ...common,
      refusalCode: decided.code,
      refusalDescription: decided.description ?? refusalDescription(decided.code),
      riskFactors: RISK_FACTORS,
    };
    if (decided.adviceCode !== undefined) answer.advice = { code: decided.adviceCode };
    answer.paymentInstrument = maskedInstrument(before);
    return { reply: { status: 201, body: answer, contentType: V7_TYPE } };
  }
  const card =
    instrument.type === 'card/plain'
      ? cards.remember({
          cardNumber: instrument.cardNumber,
          expiryMonth: instrument.expiryDate.month,
          expiryYear: instrument.expiryDate.year,
          holderName: instrument.cardHolderName,
        })
      : before.card;
  const schemeReference = schemeReferenceFor(cardBrand(before.number ?? '4'));
  const agreement = instruction.customerAgreement;
  const first =
    agreement !== undefined && 'storedCardUsage' in agreement && agreement.storedCardUsage === 'first';
  if (card && (first || card.schemeReference === undefined)) card.schemeReference = schemeReference;
  const p = payments.open(opening, undefined, 'authorized', { paymentId });
  ledger.record({ ...entry, paymentId: p.id, outcome: 'authorized', httpStatus: 201 });
  const answer: Record<string, unknown> = {
    outcome: 'authorized',
    ...common,
    riskFactors: RISK_FACTORS,
    issuer: { authorizationCode: digits(6) },
    scheme: { reference: schemeReference },
    paymentInstrument: maskedInstrument(before),
  };
  if (instruction.tokenCreation && card) {
    const tokenHref = cards.token(card, base);
    const number = card.cardNumbers.at(-1)!;
    answer.token = {
      tokenId: digits(19),
      href: tokenHref,
      tokenExpiryDateTime: new Date(Date.UTC(card.expiryYear, card.expiryMonth, 1)).toISOString(),
      cardNumber: `${number.slice(0, 6)}${'*'.repeat(number.length - 10)}${number.slice(-4)}`,
      cardHolderName: card.holderName,
      cardExpiryDate: { month: card.expiryMonth, year: card.expiryYear },
      schemeReference: card.schemeReference,
    };
  }
  answer._links = v7Links(base, p);
  return { reply: { status: 201, body: answer, contentType: V7_TYPE }, card, schemeReference };
}

/** `POST /_sandbox/v7/first-payments`: what a test or the README needs of a customer's first payment. */
export interface FirstPaymentInput {
  cardNumber: string;
  expiryMonth: number;
  expiryYear: number;
  cardHolderName?: string;
  entity?: string;
  networkToken?: boolean;
}

/** What `POST /_sandbox/v7/first-payments` answers: what a v7 credential is made of. */
export interface FirstPaymentMade {
  tokenHref: string;
  /** Byte for byte: a Mastercard's ends in two spaces. */
  schemeReference: string;
  lastFour: string;
  expiryMonth: number;
  expiryYear: number;
  networkToken?: { number: string; expiryMonth: number; expiryYear: number };
}

let firstPaymentSeq = 0;

/** Makes a real first payment (with token creation) and answers what later charges need. */
export function firstPayment(
  stores: SandboxStores,
  base: string,
  input: FirstPaymentInput,
): { status: number; body: Record<string, unknown> } {
  firstPaymentSeq += 1;
  const made = customerInitiated(
    stores,
    base,
    {
      transactionReference: `first-payment-${Date.now().toString(36)}-${firstPaymentSeq}`,
      channel: 'ecom',
      merchant: { entity: input.entity ?? 'default' },
      instruction: {
        requestAutoSettlement: { enabled: false },
        value: { amount: 0, currency: 'GBP' },
        narrative: { line1: 'First payment' },
        paymentInstrument: {
          type: 'card/plain',
          cardNumber: input.cardNumber,
          expiryDate: { month: input.expiryMonth, year: input.expiryYear },
          cardHolderName: input.cardHolderName,
        },
        customerAgreement: { type: 'cardOnFile', storedCardUsage: 'first' },
        tokenCreation: { type: 'worldpay' },
      },
    },
    true,
  );
  if (!made.card || made.schemeReference === undefined) {
    return { status: made.reply.status, body: (made.reply.body ?? {}) as Record<string, unknown> };
  }
  const { card } = made;
  const body: FirstPaymentMade & Record<string, unknown> = {
    tokenHref: stores.cards.token(card, base),
    schemeReference: made.schemeReference,
    lastFour: input.cardNumber.slice(-4),
    expiryMonth: card.expiryMonth,
    expiryYear: card.expiryYear,
  };
  if (input.networkToken) body.networkToken = { ...stores.cards.networkToken(card) };
  return { status: 201, body };
}
