/**
 * Validation of one legacy import row. Pure apart from the duplicate tracking a validator keeps
 * for its file. Reasons are fixed texts that never echo a value: a card number typed into the
 * wrong column must not come back out in a report.
 */
import { type Interval, isTimeZone, parseInterval } from '../domain/calendar.ts';
import { type CardBrand, cardBrand, containsCardNumber, luhnValid } from '../domain/card.ts';
import { readInstant } from '../domain/instant.ts';
import { ceilingMinor, DEFAULT_MAX_AMOUNT_MAJOR, isCurrency } from '../domain/money.ts';
import { narrativeProblem } from '../domain/narrative.ts';
import { schemeReferenceProblem } from '../domain/scheme-reference.ts';

export const FIELDS = [
  'legacy_id',
  'customer_ref',
  'intent',
  'amount',
  'currency',
  'interval',
  'next_charge_at',
  'timezone',
  'instalments_total',
  'instalments_paid',
  'entity',
  'narrative',
  'instrument_type',
  'card_number',
  'expiry_month',
  'expiry_year',
  'card_holder_name',
  'token_href',
  'dpan',
  'scheme_reference',
] as const;
export type Field = (typeof FIELDS)[number];

/** Header columns a CSV file must have; every other field may be left out. */
export const REQUIRED_COLUMNS: readonly Field[] = [
  'legacy_id',
  'customer_ref',
  'intent',
  'amount',
  'currency',
  'entity',
  'narrative',
  'instrument_type',
];

export const INTENTS = ['subscription', 'instalment', 'unscheduled'] as const;
export type Intent = (typeof INTENTS)[number];
export const INSTRUMENT_TYPES = ['card/plain', 'card/token', 'card/networkToken+applepay'] as const;
/** `--api v7`: Card Payments v7's instruments (a network token's number goes in `dpan`). */
export const V7_INSTRUMENT_TYPES = ['card/plain', 'card/token', 'card/networkToken'] as const;
export type InstrumentType = (typeof INSTRUMENT_TYPES)[number] | (typeof V7_INSTRUMENT_TYPES)[number];
/** Worldpay's card API the imported credentials are charged through. */
export type LegacyApi = 'v6' | 'v7';

export interface RowError {
  line: number;
  field: string;
  reason: string;
}

export interface ValidRow {
  line: number;
  legacyId: string;
  customerRef: string;
  intent: Intent;
  amount: number;
  currency: string;
  interval: Interval | null;
  /** null only for unscheduled mandates. */
  nextChargeAt: Date | null;
  timezone: string;
  instalmentsTotal: number | null;
  instalmentsPaid: number;
  entity: string;
  narrative: string;
  instrumentType: InstrumentType;
  /** The PAN (card/plain) or DPAN / network token number, digits only; null for card/token. */
  pan: string | null;
  brand: CardBrand | null;
  tokenHref: string | null;
  expiryMonth: number | null;
  expiryYear: number | null;
  cardHolderName: string | null;
  /** v7: byte for byte as the file gives it (trailing spaces kept); v6: trimmed. */
  schemeReference: string | null;
}

export type RowResult = { ok: true; row: ValidRow } | { ok: false; errors: RowError[] };

export interface ValidatorOptions {
  /** Expiry is checked against this instant's UTC month. */
  now: Date;
  /** False when no encryption key is configured: rows carrying a PAN or DPAN are rejected. */
  canStoreCardData: boolean;
  /** REBILL_MAX_AMOUNT: the largest single charge, in major units of the row's currency. */
  maxAmountMajor?: number;
  /**
   * `v7`: rows are Card Payments v7 credentials (V7_INSTRUMENT_TYPES), each card or network token
   * with the scheme reference of its first, customer-initiated payment. Default `v6`.
   */
  api?: LegacyApi;
}

export const NO_KEY_REASON = 'REBILL_ENCRYPTION_KEY is not set: card numbers cannot be stored';

/** The columns a card number may stand in; in any other a Luhn-valid digit run is refused. */
const CARD_FIELDS: ReadonlySet<string> = new Set(['card_number', 'dpan']);

const ENTITY = /^[A-Za-z0-9][A-Za-z0-9 ]{0,31}$/;
const DIGITS = /^\d+$/;
const MAX_TEXT = 255;
const MAX_ID = 128;

function text(record: Record<string, unknown>, field: Field): string {
  const v = record[field];
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return '\u0000object';
}

/**
 * `next_charge_at` as an instant. A date alone means 00:00 local time in the row's zone (the
 * charge falls due as the customer's day starts); a date-time without an offset is local time
 * in the zone; with `Z` or an offset it is that instant.
 */
export function parseChargeAt(value: string, zone: string): Date | null {
  const r = readInstant(value, zone);
  return r instanceof Date ? r : null;
}

/** A validator for one file: it remembers legacy ids so a later duplicate is rejected. */
export function createRowValidator(opts: ValidatorOptions): (line: number, record: unknown) => RowResult {
  const v7 = opts.api === 'v7';
  const types: readonly InstrumentType[] = v7 ? V7_INSTRUMENT_TYPES : INSTRUMENT_TYPES;
  // v7's scheme reference is checked as one (src/domain/scheme-reference.ts): a Visa reference
  // is 15 digits and may pass the Luhn check the free-text columns are held to.
  const cardChecked = (field: Field) => !CARD_FIELDS.has(field) && !(v7 && field === 'scheme_reference');
  // legacy_id -> first line it appeared on. Grows with the file (about 100 bytes a row), the
  // one thing that does: a duplicate can be anywhere, and a dry run cannot ask the database.
  const seen = new Map<string, number>();
  const nowMonth = opts.now.getUTCFullYear() * 12 + opts.now.getUTCMonth();
  // isTimeZone builds an Intl formatter (slow); a file uses a handful of zones.
  const zones = new Map<string, boolean>();
  const knownZone = (zone: string) => {
    let ok = zones.get(zone);
    if (ok === undefined) {
      ok = isTimeZone(zone);
      if (zones.size < 1000) zones.set(zone, ok);
    }
    return ok;
  };

  // Zone conversion (tzOffset) is the slowest step of a row; due dates repeat across a file.
  const instants = new Map<string, number | null>();
  const chargeAt = (value: string, zone: string): Date | null => {
    const k = `${zone} ${value}`;
    let ms = instants.get(k);
    if (ms === undefined) {
      ms = parseChargeAt(value, zone)?.getTime() ?? null;
      if (instants.size >= 10_000) instants.clear();
      instants.set(k, ms);
    }
    return ms === null ? null : new Date(ms);
  };

  return (line, input) => {
    const errors: RowError[] = [];
    const fail = (field: string, reason: string) => errors.push({ line, field, reason });
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      return { ok: false, errors: [{ line, field: '(row)', reason: 'must be an object of field names' }] };
    }
    const record = input as Record<string, unknown>;
    const allowed = new Set<string>(FIELDS);
    for (const key of Object.keys(record))
      if (!allowed.has(key))
        fail(containsCardNumber(key) ? '(a field named like a card number)' : key, 'unknown field');
    const get = (field: Field) => text(record, field);
    for (const field of FIELDS) {
      const v = get(field);
      if (v.includes('\u0000')) fail(field, 'must be a string or a number');
      else if (cardChecked(field) && containsCardNumber(v))
        fail(field, 'looks like a card number; card numbers belong only in card_number or dpan');
    }
    if (errors.length > 0) return { ok: false, errors };

    const legacyId = get('legacy_id');
    if (legacyId === '') fail('legacy_id', 'required');
    else if (legacyId.length > MAX_ID) fail('legacy_id', `must be at most ${MAX_ID} characters`);
    else {
      const first = seen.get(legacyId);
      if (first !== undefined) fail('legacy_id', `duplicates the legacy_id on line ${first}`);
      else seen.set(legacyId, line);
    }

    const customerRef = get('customer_ref');
    if (customerRef === '') fail('customer_ref', 'required');
    else if (customerRef.length > MAX_ID) fail('customer_ref', `must be at most ${MAX_ID} characters`);

    const intentText = get('intent');
    const intent = (INTENTS as readonly string[]).includes(intentText) ? (intentText as Intent) : null;
    if (intentText === '') fail('intent', 'required');
    else if (!intent) fail('intent', 'must be subscription, instalment or unscheduled');

    const amountText = get('amount');
    let amount = 0;
    if (amountText === '') fail('amount', 'required');
    else if (!DIGITS.test(amountText)) fail('amount', 'must be a whole number of minor units (digits only)');
    else {
      amount = Number(amountText);
      if (amount <= 0) fail('amount', 'must be greater than 0');
      else if (!Number.isSafeInteger(amount)) fail('amount', 'is too large');
    }

    const currency = get('currency');
    if (currency === '') fail('currency', 'required');
    else if (!isCurrency(currency)) fail('currency', 'not a known ISO-4217 currency code');
    else if (amount > ceilingMinor(opts.maxAmountMajor ?? DEFAULT_MAX_AMOUNT_MAJOR, currency))
      fail('amount', 'above the largest charge allowed (REBILL_MAX_AMOUNT)');

    const intervalText = get('interval');
    let interval: Interval | null = null;
    if (intent === 'unscheduled') {
      if (intervalText !== '') fail('interval', 'must be empty for intent unscheduled');
    } else if (intervalText === '') {
      if (intent) fail('interval', `required for intent ${intent}`);
    } else {
      try {
        interval = parseInterval(intervalText);
      } catch {
        fail('interval', 'must be "N day|week|month|year" (N from 1; years up to 10), e.g. "1 month"');
      }
    }

    const tzText = get('timezone');
    const timezone = tzText === '' ? 'UTC' : tzText;
    const zoneOk = knownZone(timezone);
    if (!zoneOk) fail('timezone', 'not an IANA time zone');

    const chargeText = get('next_charge_at');
    let nextChargeAt: Date | null = null;
    if (intent === 'unscheduled') {
      if (chargeText !== '') fail('next_charge_at', 'must be empty for intent unscheduled');
    } else if (chargeText === '') {
      if (intent) fail('next_charge_at', `required for intent ${intent}`);
    } else {
      nextChargeAt = chargeAt(chargeText, zoneOk ? timezone : 'UTC');
      if (!nextChargeAt) fail('next_charge_at', 'must be an ISO-8601 date or date-time');
    }

    const totalText = get('instalments_total');
    const paidText = get('instalments_paid');
    let instalmentsTotal: number | null = null;
    let instalmentsPaid = 0;
    if (intent === 'instalment') {
      if (totalText === '') fail('instalments_total', 'required for intent instalment');
      else if (!DIGITS.test(totalText) || Number(totalText) < 1 || Number(totalText) > 10_000) {
        fail('instalments_total', 'must be a whole number from 1 to 10000');
      } else instalmentsTotal = Number(totalText);
      if (paidText !== '') {
        if (!DIGITS.test(paidText)) fail('instalments_paid', 'must be a whole number');
        else {
          instalmentsPaid = Number(paidText);
          if (instalmentsTotal !== null && instalmentsPaid >= instalmentsTotal) {
            fail('instalments_paid', 'must be less than instalments_total');
          }
        }
      }
    } else if (intent) {
      if (totalText !== '') fail('instalments_total', 'only allowed for intent instalment');
      if (paidText !== '') fail('instalments_paid', 'only allowed for intent instalment');
    }

    const entity = get('entity');
    if (entity === '') fail('entity', 'required');
    else if (!ENTITY.test(entity))
      fail('entity', 'must be 1-32 letters, digits or spaces, starting with one of the first two');

    const narrative = get('narrative');
    if (narrative === '') fail('narrative', 'required');
    else {
      const problem = narrativeProblem(narrative);
      if (problem !== null) fail('narrative', problem);
    }

    const typeText = get('instrument_type');
    const instrumentType = (types as readonly string[]).includes(typeText)
      ? (typeText as InstrumentType)
      : null;
    if (typeText === '') fail('instrument_type', 'required');
    else if (!instrumentType) {
      fail(
        'instrument_type',
        `must be ${types.slice(0, -1).join(', ')} or ${types.at(-1)}${v7 ? ' (--api v7)' : ''}`,
      );
    }

    // Which instrument fields each type needs, and which it must not carry (a PAN on a token
    // row would otherwise be dropped silently, or worse, stored where nobody expects it).
    const networkToken =
      instrumentType === 'card/networkToken+applepay' || instrumentType === 'card/networkToken';
    const panField = networkToken ? 'dpan' : 'card_number';
    const needsPan = instrumentType === 'card/plain' || networkToken;
    let pan: string | null = null;
    let brand: CardBrand | null = null;
    if (instrumentType) {
      const forbidden: Field[] =
        instrumentType === 'card/plain'
          ? ['token_href', 'dpan']
          : instrumentType === 'card/token'
            ? ['card_number', 'dpan']
            : ['card_number', 'token_href'];
      for (const f of forbidden)
        if (get(f) !== '') fail(f, `not allowed for instrument_type ${instrumentType}`);
    }
    if (needsPan) {
      const raw = record[panField];
      const digits = get(panField).replace(/[ -]/g, '');
      if (raw !== undefined && raw !== null && raw !== '' && typeof raw !== 'string') {
        // A JSON number cannot hold 16+ digits exactly.
        fail(panField, 'must be a string');
      } else if (digits === '') fail(panField, `required for instrument_type ${instrumentType}`);
      else if (!DIGITS.test(digits) || digits.length < 12 || digits.length > 19) {
        fail(panField, 'must be 12 to 19 digits');
      } else if (!luhnValid(digits)) fail(panField, 'fails the Luhn check');
      else if (!opts.canStoreCardData) fail(panField, NO_KEY_REASON);
      else {
        pan = digits;
        brand = cardBrand(digits);
      }
    }

    let tokenHref: string | null = null;
    if (instrumentType === 'card/token') {
      const href = get('token_href');
      if (href === '') fail('token_href', 'required for instrument_type card/token');
      else if (!isHttpsUrl(href)) fail('token_href', 'must be an https URL');
      else tokenHref = href;
    }

    const monthText = get('expiry_month');
    const yearText = get('expiry_year');
    let expiryMonth: number | null = null;
    let expiryYear: number | null = null;
    if (needsPan || monthText !== '' || yearText !== '') {
      const need = instrumentType ? ` for instrument_type ${instrumentType}` : '';
      if (monthText === '') fail('expiry_month', needsPan ? `required${need}` : 'required with expiry_year');
      else if (!/^\d{1,2}$/.test(monthText) || Number(monthText) < 1 || Number(monthText) > 12) {
        fail('expiry_month', 'must be a month from 1 to 12');
      } else expiryMonth = Number(monthText);
      if (yearText === '') fail('expiry_year', needsPan ? `required${need}` : 'required with expiry_month');
      else if (!/^(\d{2}|\d{4})$/.test(yearText)) fail('expiry_year', 'must be a year of 2 or 4 digits');
      else expiryYear = yearText.length === 2 ? 2000 + Number(yearText) : Number(yearText);
      if (expiryMonth !== null && expiryYear !== null) {
        // A card is valid through the last day of its expiry month.
        if (expiryYear * 12 + (expiryMonth - 1) < nowMonth) fail('expiry_year', 'the card has expired');
        else if (expiryYear > opts.now.getUTCFullYear() + 30) fail('expiry_year', 'more than 30 years ahead');
      }
    }

    const holder = get('card_holder_name');
    if (holder.length > MAX_TEXT) fail('card_holder_name', `must be at most ${MAX_TEXT} characters`);
    let schemeReference = get('scheme_reference');
    if (v7) {
      // Byte for byte: Worldpay's own references end in spaces.
      const raw = record.scheme_reference;
      schemeReference = typeof raw === 'string' ? raw : '';
      if (raw !== undefined && raw !== null && raw !== '' && typeof raw !== 'string')
        fail('scheme_reference', 'must be a string');
      else if (schemeReference === '') {
        if (needsPan) fail('scheme_reference', `required for instrument_type ${instrumentType} (--api v7)`);
      } else {
        const problem = schemeReferenceProblem(schemeReference, pan);
        if (problem !== null) fail('scheme_reference', problem);
      }
    } else if (schemeReference.length > MAX_TEXT)
      fail('scheme_reference', `must be at most ${MAX_TEXT} characters`);

    if (errors.length > 0) return { ok: false, errors };
    return {
      ok: true,
      row: {
        line,
        legacyId,
        customerRef,
        intent: intent!,
        amount,
        currency,
        interval,
        nextChargeAt,
        timezone,
        instalmentsTotal,
        instalmentsPaid,
        entity,
        narrative,
        instrumentType: instrumentType!,
        pan,
        brand,
        tokenHref,
        expiryMonth,
        expiryYear,
        cardHolderName: holder === '' ? null : holder,
        schemeReference: schemeReference === '' ? null : schemeReference,
      },
    };
  };
}

function isHttpsUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' && url.hostname !== '';
  } catch {
    return false;
  }
}
