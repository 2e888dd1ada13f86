import { isCurrency } from '../../domain/money.ts';
import { ValidationError } from '../../errors.ts';
import type { Instrument, Money } from '../types.ts';

/**
 * Checks every value rebill sends to Worldpay before it leaves, so a bad value is a local
 * ValidationError naming the field instead of a 400 from Worldpay (or, worse, a request that a
 * firewall drops and that then looks like a timeout). Messages never echo card data.
 */

// Worldpay's documented transactionReference alphabet.
const referenceAlphabet = /^[A-Za-z0-9\-_/!@#$%()*=.:;?[\]{}~+]+$/;
const firewallTripping = /[();]/;
const entityPattern = /^[A-Za-z0-9]+[A-Za-z0-9 ]*$/;
const partialReferencePattern = /^[A-Za-z0-9-]{1,128}$/;
// Characters kept in narrative.line1; anything else becomes a space, as Worldpay does itself.
const narrativeUnsupported = /[^A-Za-z0-9 \-.,'&/:+*=?@#()]/g;

export function validateTransactionReference(value: string, field = 'transactionReference'): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > 64) {
    throw new ValidationError(field, 'must be 1-64 characters');
  }
  if (!referenceAlphabet.test(value)) {
    throw new ValidationError(field, 'may only contain A-Z a-z 0-9 - _ / ! @ # $ % * = . : ? [ ] { } ~ +');
  }
  if (firewallTripping.test(value)) {
    throw new ValidationError(
      field,
      'must not contain "(", ")" or ";": Worldpay allows them but they trip its firewall',
    );
  }
  return value;
}

export function validateEntity(value: string, field = 'merchant.entity'): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > 32 || !entityPattern.test(value)) {
    throw new ValidationError(
      field,
      'must be 1-32 characters: letters and digits, then letters, digits or spaces',
    );
  }
  return value;
}

/** Replaces what Worldpay would replace, then insists on 1-24 characters (no silent truncation). */
export function normaliseNarrative(value: string, field = 'instruction.narrative.line1'): string {
  if (typeof value !== 'string') throw new ValidationError(field, 'must be a string');
  const replaced = value.replace(narrativeUnsupported, ' ').trim();
  if (replaced.length < 1) throw new ValidationError(field, 'must contain at least one supported character');
  if (replaced.length > 24) {
    throw new ValidationError(field, `must be at most 24 characters (is ${replaced.length})`);
  }
  return replaced;
}

export function validateMoney(value: Money | undefined, field = 'value'): Money {
  if (value === undefined || value === null || typeof value !== 'object') {
    throw new ValidationError(field, 'is required');
  }
  if (!Number.isSafeInteger(value.amount) || value.amount <= 0) {
    throw new ValidationError(`${field}.amount`, 'must be a positive integer in minor units');
  }
  if (typeof value.currency !== 'string' || !/^[A-Z]{3}$/.test(value.currency)) {
    throw new ValidationError(`${field}.currency`, 'must be an ISO-4217 alpha-3 code in capitals');
  }
  if (!isCurrency(value.currency)) {
    throw new ValidationError(`${field}.currency`, `${value.currency} is not an ISO-4217 currency`);
  }
  return { amount: value.amount, currency: value.currency };
}

export function validatePartialReference(value: string, field = 'reference'): string {
  if (typeof value !== 'string' || !partialReferencePattern.test(value)) {
    throw new ValidationError(field, 'must be 1-128 characters of A-Z a-z 0-9 -');
  }
  return value;
}

export function validateHref(value: string, field: string): string {
  if (typeof value !== 'string' || !/^https?:\/\/[^/?#\s]+\/\S*$/i.test(value)) {
    throw new ValidationError(field, 'must be an absolute http(s) link');
  }
  return value;
}

function validateExpiry(month: number, year: number, field: string): { month: number; year: number } {
  if (!Number.isInteger(month) || month < 1 || month > 12) {
    throw new ValidationError(`${field}.month`, 'must be 1-12');
  }
  if (!Number.isInteger(year) || year < 2000 || year > 2099) {
    throw new ValidationError(`${field}.year`, 'must be a four-digit year');
  }
  return { month, year };
}

function validateCardHolderName(value: string | undefined, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim().length < 1 || value.length > 255) {
    throw new ValidationError(field, 'must be 1-255 characters');
  }
  return value;
}

/** The migrateRecurring `paymentInstrument` (seed 003); link instruments are not sent in a body. */
export function buildPaymentInstrument(
  instrument: Exclude<Instrument, { type: 'link' }>,
  field = 'instruction.paymentInstrument',
): Record<string, unknown> {
  switch (instrument.type) {
    case 'card/plain': {
      if (typeof instrument.cardNumber !== 'string' || !/^\d{12,19}$/.test(instrument.cardNumber)) {
        throw new ValidationError(`${field}.cardNumber`, 'must be 12-19 digits');
      }
      const holder = validateCardHolderName(instrument.cardHolderName, `${field}.cardHolderName`);
      return {
        type: 'card/plain',
        cardNumber: instrument.cardNumber,
        cardExpiryDate: validateExpiry(
          instrument.expiryMonth,
          instrument.expiryYear,
          `${field}.cardExpiryDate`,
        ),
        ...(holder === undefined ? {} : { cardHolderName: holder }),
      };
    }
    case 'card/token':
      return { type: 'card/token', href: validateHref(instrument.href, `${field}.href`) };
    case 'card/networkToken+applepay': {
      if (typeof instrument.dpan !== 'string' || !/^\d{12,19}$/.test(instrument.dpan)) {
        throw new ValidationError(`${field}.dpan`, 'must be 12-19 digits');
      }
      const holder = validateCardHolderName(instrument.cardHolderName, `${field}.cardHolderName`);
      return {
        type: 'card/networkToken+applepay',
        dpan: instrument.dpan,
        cardExpiryDate: validateExpiry(
          instrument.expiryMonth,
          instrument.expiryYear,
          `${field}.cardExpiryDate`,
        ),
        ...(holder === undefined ? {} : { cardHolderName: holder }),
      };
    }
    default:
      throw new ValidationError(
        `${field}.type`,
        `${(instrument as { type: string }).type} is not a Worldpay instrument`,
      );
  }
}
