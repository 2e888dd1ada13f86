/**
 * The scheme reference of a customer's first, customer-initiated payment: Card Payments v7 sends
 * it on every merchant-initiated charge (`customerAgreement.schemeReference`). It is kept byte
 * for byte, trailing spaces included: Worldpay's own examples end in two ('MCCOLXT1C0104  ').
 * The OpenAPI file gives it 1 to 255 characters and no pattern.
 */
import { hasControlCharacter, luhnValid } from './card.ts';

export const SCHEME_REFERENCE_MAX = 255;

/** A run of 16-19 digits, grouped by spaces or dashes or not: the length of a Visa or Mastercard PAN. */
const LONG_DIGIT_RUN = /\d(?:[ -]?\d){15,18}/g;

/**
 * Why a scheme reference cannot be stored, or null. Never repeats the value. `cardNumber` is the
 * credential's own card or network token number, refused anywhere in the reference. Other
 * Luhn-valid runs are refused from 16 digits: Visa's transaction identifier, the reference of
 * Visa payments, is 15 digits and passes the Luhn check one time in ten.
 */
export function schemeReferenceProblem(value: string, cardNumber?: string | null): string | null {
  if (value.length === 0) return 'must not be empty';
  if ([...value].length > SCHEME_REFERENCE_MAX) return `must be at most ${SCHEME_REFERENCE_MAX} characters`;
  if (value.trim() === '') return 'must not be only spaces';
  if (hasControlCharacter(value)) return 'must not contain control characters';
  const digits = value.replace(/[ -]/g, '');
  const looksLikeCard =
    (cardNumber && digits.includes(cardNumber)) ||
    [...value.matchAll(LONG_DIGIT_RUN)].some((m) => luhnValid(m[0].replace(/[ -]/g, '')));
  if (looksLikeCard)
    return 'looks like a card number; a scheme reference is what the first payment answered with (the value is not repeated here)';
  return null;
}
