/**
 * Money: integer minor units plus an ISO-4217 code. No floating point ever touches an amount;
 * conversions to and from major units go through strings so 0.1 + 0.2 cannot happen here.
 */
import { ValidationError } from '../errors.ts';
import { quoteSafely } from './card.ts';

/**
 * ISO-4217 active codes -> exponent (digits after the decimal point). Codes whose minor unit
 * is "N.A." (gold, SDR, test codes) are left out: they cannot be charged.
 * Source: the ISO-4217 list (amendments up to 2025: ZWG, XCG and SLE in; HRK, ZWL, SLL out).
 */
const EXPONENTS: Readonly<Record<string, number>> = Object.freeze({
  AED: 2,
  AFN: 2,
  ALL: 2,
  AMD: 2,
  ANG: 2,
  AOA: 2,
  ARS: 2,
  AUD: 2,
  AWG: 2,
  AZN: 2,
  BAM: 2,
  BBD: 2,
  BDT: 2,
  BGN: 2,
  BHD: 3,
  BIF: 0,
  BMD: 2,
  BND: 2,
  BOB: 2,
  BOV: 2,
  BRL: 2,
  BSD: 2,
  BTN: 2,
  BWP: 2,
  BYN: 2,
  BZD: 2,
  CAD: 2,
  CDF: 2,
  CHE: 2,
  CHF: 2,
  CHW: 2,
  CLF: 4,
  CLP: 0,
  CNY: 2,
  COP: 2,
  COU: 2,
  CRC: 2,
  CUC: 2,
  CUP: 2,
  CVE: 2,
  CZK: 2,
  DJF: 0,
  DKK: 2,
  DOP: 2,
  DZD: 2,
  EGP: 2,
  ERN: 2,
  ETB: 2,
  EUR: 2,
  FJD: 2,
  FKP: 2,
  GBP: 2,
  GEL: 2,
  GHS: 2,
  GIP: 2,
  GMD: 2,
  GNF: 0,
  GTQ: 2,
  GYD: 2,
  HKD: 2,
  HNL: 2,
  HTG: 2,
  HUF: 2,
  IDR: 2,
  ILS: 2,
  INR: 2,
  IQD: 3,
  IRR: 2,
  ISK: 0,
  JMD: 2,
  JOD: 3,
  JPY: 0,
  KES: 2,
  KGS: 2,
  KHR: 2,
  KMF: 0,
  KPW: 2,
  KRW: 0,
  KWD: 3,
  KYD: 2,
  KZT: 2,
  LAK: 2,
  LBP: 2,
  LKR: 2,
  LRD: 2,
  LSL: 2,
  LYD: 3,
  MAD: 2,
  MDL: 2,
  MGA: 2,
  MKD: 2,
  MMK: 2,
  MNT: 2,
  MOP: 2,
  MRU: 2,
  MUR: 2,
  MVR: 2,
  MWK: 2,
  MXN: 2,
  MXV: 2,
  MYR: 2,
  MZN: 2,
  NAD: 2,
  NGN: 2,
  NIO: 2,
  NOK: 2,
  NPR: 2,
  NZD: 2,
  OMR: 3,
  PAB: 2,
  PEN: 2,
  PGK: 2,
  PHP: 2,
  PKR: 2,
  PLN: 2,
  PYG: 0,
  QAR: 2,
  RON: 2,
  RSD: 2,
  RUB: 2,
  RWF: 0,
  SAR: 2,
  SBD: 2,
  SCR: 2,
  SDG: 2,
  SEK: 2,
  SGD: 2,
  SHP: 2,
  SLE: 2,
  SOS: 2,
  SRD: 2,
  SSP: 2,
  STN: 2,
  SVC: 2,
  SYP: 2,
  SZL: 2,
  THB: 2,
  TJS: 2,
  TMT: 2,
  TND: 3,
  TOP: 2,
  TRY: 2,
  TTD: 2,
  TWD: 2,
  TZS: 2,
  UAH: 2,
  UGX: 0,
  USD: 2,
  USN: 2,
  UYI: 0,
  UYU: 2,
  UYW: 4,
  UZS: 2,
  VED: 2,
  VES: 2,
  VND: 0,
  VUV: 0,
  WST: 2,
  XAF: 0,
  XCD: 2,
  XCG: 2,
  XOF: 0,
  XPF: 0,
  YER: 2,
  ZAR: 2,
  ZMW: 2,
  ZWG: 2,
});

/** Every currency code rebill accepts, sorted. */
export const CURRENCIES: readonly string[] = Object.freeze(Object.keys(EXPONENTS).sort());

/** True for an active ISO-4217 alpha-3 code with a minor unit. Case-sensitive: codes are upper case. */
export function isCurrency(code: string): boolean {
  return typeof code === 'string' && Object.hasOwn(EXPONENTS, code);
}

/** Digits after the decimal point for `code` (JPY 0, GBP 2, KWD 3). Throws for an unknown code. */
export function exponent(code: string, field = 'currency'): number {
  if (!isCurrency(code))
    throw new ValidationError(field, `unknown ISO-4217 currency ${JSON.stringify(code)}`);
  return EXPONENTS[code]!;
}

/** Throws unless `currency` is a known code; names `field` in the error. */
export function assertCurrency(currency: unknown, field = 'currency'): asserts currency is string {
  if (typeof currency !== 'string' || !isCurrency(currency)) {
    throw new ValidationError(field, `unknown ISO-4217 currency ${JSON.stringify(currency)}`);
  }
}

/**
 * Throws a ValidationError naming `field` unless `amount` is a chargeable amount in minor units:
 * an integer, > 0, <= Number.MAX_SAFE_INTEGER (beyond that integers stop being exact), and the
 * currency is known. The currency error names the sibling field `currency` of the same object.
 */
export function assertMoney(amount: unknown, currency: unknown, field = 'amount'): asserts amount is number {
  if (typeof amount !== 'number' || !Number.isInteger(amount)) {
    throw new ValidationError(field, 'must be an integer number of minor units');
  }
  if (amount <= 0) throw new ValidationError(field, 'must be greater than 0');
  if (amount > Number.MAX_SAFE_INTEGER) throw new ValidationError(field, 'is too large');
  assertCurrency(currency, currencyFieldFor(field));
}

/** The default REBILL_MAX_AMOUNT: no single charge above 100,000 major units of its currency. */
export const DEFAULT_MAX_AMOUNT_MAJOR = 100_000;

/**
 * The largest charge in minor units of `currency` that a ceiling of `maxMajor` major units
 * allows (100,000 GBP is 10,000,000 pence, 100,000 JPY is 100,000 yen).
 */
export function ceilingMinor(maxMajor: number, currency: string): number {
  return maxMajor * 10 ** exponent(currency);
}

/**
 * The money guard: every amount that can reach a gateway (a cycle's amount, an instalment, a
 * prorated one-off, a queued charge, a settle, a refund) passes here before it is stored; a
 * retry sends a stored amount again. It must be an integer of minor units above zero in a known
 * currency, within REBILL_MAX_AMOUNT (`maxMajor` major units); with `contract`, what an
 * instalment plan will charge in all must still be its total. The errors name `field` and the
 * ceiling, never the amount: a card number shifted into an amount column must not come back out.
 */
export function guardMoney(
  amount: unknown,
  currency: unknown,
  maxMajor: number,
  opts: { field?: string; what?: string; contract?: InstalmentContract } = {},
): asserts amount is number {
  const field = opts.field ?? 'amount';
  assertMoney(amount, currency, field);
  const code = currency as string;
  const ceiling = ceilingMinor(maxMajor, code);
  if (amount > ceiling)
    throw new ValidationError(
      field,
      `${opts.what ? `${opts.what} ` : ''}is above the largest charge allowed, ${formatMoney(ceiling, code)} (REBILL_MAX_AMOUNT)`,
    );
  const c = opts.contract;
  if (c && c.planned !== c.total)
    throw new ValidationError(
      c.field,
      `would make the instalment plan charge ${formatMoney(c.planned, code)} instead of the ${formatMoney(c.total, code)} left of its total: the total is the contract`,
    );
}

/** What an instalment plan has left to charge, before a change (`total`) and after (`planned`). */
export interface InstalmentContract {
  total: number;
  planned: number;
  /** The field of the change that would break it. */
  field: string;
}

/** `amount` -> `currency`, `value.amount` -> `value.currency`, anything else -> `<field>.currency`. */
function currencyFieldFor(field: string): string {
  if (field === 'amount') return 'currency';
  if (field.endsWith('.amount')) return field.slice(0, -'amount'.length) + 'currency';
  return 'currency';
}

/** Minor units as a major-unit decimal string: (1250, 'GBP') -> '12.50', (5, 'KWD') -> '0.005'. */
export function formatMajor(amount: number, currency: string): string {
  if (!Number.isSafeInteger(amount)) throw new ValidationError('amount', 'must be a safe integer');
  const exp = exponent(currency);
  const negative = amount < 0;
  const digits = String(Math.abs(amount));
  if (exp === 0) return (negative ? '-' : '') + digits;
  const padded = digits.padStart(exp + 1, '0');
  const major = padded.slice(0, padded.length - exp);
  const minor = padded.slice(padded.length - exp);
  return `${negative ? '-' : ''}${major}.${minor}`;
}

/** Human form for logs and CLI output: (1250, 'GBP') -> '12.50 GBP', (1000, 'JPY') -> '1000 JPY'. */
export function formatMoney(amount: number, currency: string): string {
  return `${formatMajor(amount, currency)} ${currency}`;
}

const MAJOR = /^(\d+)(?:\.(\d+))?$/;

/**
 * A major-unit decimal string to minor units: ('12.50', 'GBP') -> 1250, ('12.5', 'GBP') -> 1250,
 * ('1000', 'JPY') -> 1000. More decimals than the currency has is an error rather than a rounding:
 * silently charging 12.35 for '12.345' is worse than refusing. Signs, exponents, thousands
 * separators and amounts above Number.MAX_SAFE_INTEGER minor units are refused. Zero parses (it
 * is a valid number); whether it is a chargeable amount is assertMoney's question.
 */
export function parseMajor(text: string, currency: string, field = 'amount'): number {
  const exp = exponent(currency, currencyFieldFor(field));
  const match = typeof text === 'string' ? MAJOR.exec(text.trim()) : null;
  if (!match) throw new ValidationError(field, `not a decimal amount: ${quoteSafely(text)}`);
  const whole = match[1]!;
  const fraction = match[2] ?? '';
  if (fraction.length > exp) {
    throw new ValidationError(
      field,
      exp === 0 ? `${currency} has no minor unit` : `${currency} allows at most ${exp} decimals`,
    );
  }
  const digits = (whole + fraction.padEnd(exp, '0')).replace(/^0+(?=\d)/, '');
  // Compare as strings before converting so a huge input cannot lose precision on the way.
  const max = String(Number.MAX_SAFE_INTEGER);
  if (digits.length > max.length || (digits.length === max.length && digits > max)) {
    throw new ValidationError(field, 'is too large');
  }
  return Number(digits);
}

/**
 * Splits `total` minor units into `n` instalments: n-1 of `amount` and a last one of
 * `lastAmount` carrying the remainder, so the instalments sum to `total` exactly.
 * (1000, 3) -> { amount: 333, lastAmount: 334 }. Every instalment must be at least 1.
 */
export function splitInstalments(total: number, n: number): { amount: number; lastAmount: number } {
  if (!Number.isSafeInteger(total) || total <= 0) {
    throw new ValidationError('amount', 'must be a positive integer number of minor units');
  }
  if (!Number.isSafeInteger(n) || n < 1)
    throw new ValidationError('instalments', 'must be a positive integer');
  if (n > total)
    throw new ValidationError('instalments', `cannot split ${total} minor units into ${n} instalments`);
  // Remainder first: `%` on safe integers is exact, a float division near 2^53 might not be.
  const amount = (total - (total % n)) / n;
  return { amount, lastAmount: total - amount * (n - 1) };
}

/** The amount due for instalment `cycle` (0-based) of an `n`-instalment plan. */
export function instalmentAmount(
  split: { amount: number; lastAmount: number },
  n: number,
  cycle: number,
): number {
  return cycle === n - 1 ? split.lastAmount : split.amount;
}
