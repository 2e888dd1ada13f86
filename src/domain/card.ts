/**
 * Card-number checks for imported legacy data: the Luhn checksum and the brand a BIN belongs to.
 * Nothing here logs or returns the number itself; `maskPan` is the most any caller may show.
 */

export type CardBrand =
  | 'visa'
  | 'mastercard'
  | 'amex'
  | 'maestro'
  | 'jcb'
  | 'discover'
  | 'diners'
  | 'unionpay';

/** True when `digits` (digits only) passes the Luhn (mod 10) check. */
export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/**
 * BIN ranges, most specific first: Maestro's 6304/6759 sit inside ranges other brands would
 * otherwise claim, and Mastercard's 2-series (2221-2720) must be tested as a numeric range.
 */
const RANGES: ReadonlyArray<readonly [brand: CardBrand, from: string, to: string]> = [
  ['maestro', '5018', '5018'],
  ['maestro', '5020', '5020'],
  ['maestro', '5038', '5038'],
  ['maestro', '5893', '5893'],
  ['maestro', '6304', '6304'],
  ['maestro', '6759', '6759'],
  ['maestro', '6761', '6763'],
  ['discover', '6011', '6011'],
  ['discover', '644', '649'],
  ['discover', '65', '65'],
  ['jcb', '3528', '3589'],
  ['diners', '300', '305'],
  ['diners', '3095', '3095'],
  ['diners', '36', '36'],
  ['diners', '38', '39'],
  ['amex', '34', '34'],
  ['amex', '37', '37'],
  ['mastercard', '51', '55'],
  ['mastercard', '2221', '2720'],
  ['unionpay', '62', '62'],
  ['unionpay', '81', '81'],
  ['maestro', '50', '50'],
  ['maestro', '56', '58'],
  ['visa', '4', '4'],
];

/** The card brand for a PAN or BIN (at least the first 4 digits), or null when none matches. */
export function cardBrand(pan: string): CardBrand | null {
  for (const [brand, from, to] of RANGES) {
    const prefix = pan.slice(0, from.length);
    if (prefix.length === from.length && prefix >= from && prefix <= to) return brand;
  }
  return null;
}

/** The only form of a card number allowed in output: BIN (first six) and last four. */
export function maskPan(pan: string): string {
  if (pan.length < 10) return '*'.repeat(pan.length);
  return `${pan.slice(0, 6)}${'*'.repeat(pan.length - 10)}${pan.slice(-4)}`;
}

/** A run of 12-19 digits, possibly grouped by spaces or dashes as people type card numbers. */
const DIGIT_RUN = /\d(?:[ -]?\d){11,18}/g;

/**
 * Whether free text (a holder name, a narrative, a reference, an unknown column's name) holds
 * something that passes for a card number: a 12-19 digit run that passes the Luhn check. Such
 * a value is refused, never stored, and never repeated in the error.
 */
export function containsCardNumber(text: string): boolean {
  for (const m of text.matchAll(DIGIT_RUN)) {
    const digits = m[0].replace(/[ -]/g, '');
    if (digits.length >= 12 && digits.length <= 19 && luhnValid(digits)) return true;
  }
  return false;
}

/** NUL, the other C0 controls or DEL: never meaningful in a field rebill stores or sends. */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * A value quoted for an error message, with anything that could be a card number (any run of
 * 12-19 digits, Luhn-valid or not) cut down to its last four: errors name what was wrong and
 * may show what was typed, but never a card number.
 */
export function quoteSafely(value: unknown): string {
  return JSON.stringify(maskCardNumbers(typeof value === 'string' ? value : String(value)));
}

/**
 * Text with every run of 12-19 digits (grouped by spaces or dashes or not, Luhn-valid or not)
 * cut down to `[digits ending 1111]`: for text rebill keeps but did not write, such as a webhook
 * receiver's answer. Luhn is not asked: a mistyped card number is still one to hide, and an
 * order number hidden by mistake costs nothing.
 */
export function maskCardNumbers(text: string): string {
  return text.replace(DIGIT_RUN, (run) => `[digits ending ${run.replace(/[ -]/g, '').slice(-4)}]`);
}
