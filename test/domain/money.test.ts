import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertMoney,
  CURRENCIES,
  exponent,
  formatMajor,
  formatMoney,
  instalmentAmount,
  isCurrency,
  parseMajor,
  splitInstalments,
} from '../../src/domain/money.ts';
import { validationField } from '../support/validation.ts';

describe('currency table', () => {
  it.each([
    ['GBP', 2],
    ['USD', 2],
    ['EUR', 2],
    ['JPY', 0],
    ['KRW', 0],
    ['CLP', 0],
    ['ISK', 0],
    ['VND', 0],
    ['PYG', 0],
    ['UGX', 0],
    ['XOF', 0],
    ['XAF', 0],
    ['XPF', 0],
    ['BHD', 3],
    ['KWD', 3],
    ['OMR', 3],
    ['JOD', 3],
    ['TND', 3],
    ['LYD', 3],
    ['IQD', 3],
    ['CLF', 4],
    ['UYW', 4],
  ])('%s has exponent %i', (code, exp) => {
    expect(isCurrency(code)).toBe(true);
    expect(exponent(code)).toBe(exp);
  });

  it.each(['gbp', 'XXX', 'XAU', 'XDR', 'HRK', 'GB', 'GBPX', '', 'toString', '__proto__'])(
    'refuses %j',
    (code) => {
      expect(isCurrency(code)).toBe(false);
      expect(validationField(() => exponent(code))).toBe('currency');
    },
  );

  it('lists only three-letter upper-case codes with exponents 0 to 4', () => {
    expect(CURRENCIES.length).toBeGreaterThan(150);
    for (const code of CURRENCIES) {
      expect(code).toMatch(/^[A-Z]{3}$/);
      expect([0, 2, 3, 4]).toContain(exponent(code));
    }
  });
});

describe('assertMoney', () => {
  it('accepts positive safe integers in a known currency', () => {
    expect(() => assertMoney(1, 'GBP')).not.toThrow();
    expect(() => assertMoney(Number.MAX_SAFE_INTEGER, 'JPY')).not.toThrow();
  });

  it.each([
    [0, 'GBP', 'amount', /greater than 0/],
    [-5, 'GBP', 'amount', /greater than 0/],
    [12.5, 'GBP', 'amount', /integer/],
    [Number.NaN, 'GBP', 'amount', /integer/],
    [Number.POSITIVE_INFINITY, 'GBP', 'amount', /integer/],
    [Number.MAX_SAFE_INTEGER + 1, 'GBP', 'amount', /too large/],
    ['100', 'GBP', 'amount', /integer/],
    [100, 'ZZZ', 'currency', /ISO-4217/],
    [100, undefined, 'currency', /ISO-4217/],
  ])('assertMoney(%j, %j) fails on %s', (amount, currency, field, message) => {
    expect(validationField(() => assertMoney(amount, currency))).toBe(field);
    expect(() => assertMoney(amount, currency)).toThrow(message);
  });

  it('names the field it was given, and the sibling currency field', () => {
    expect(validationField(() => assertMoney(0, 'GBP', 'value.amount'))).toBe('value.amount');
    expect(validationField(() => assertMoney(5, 'QQQ', 'value.amount'))).toBe('value.currency');
    expect(() => assertMoney(0, 'GBP', 'lastInstalmentAmount')).toThrow(/^lastInstalmentAmount: /);
  });
});

describe('formatting and parsing', () => {
  it.each([
    [1250, 'GBP', '12.50 GBP'],
    [5, 'GBP', '0.05 GBP'],
    [100, 'GBP', '1.00 GBP'],
    [0, 'GBP', '0.00 GBP'],
    [-250, 'GBP', '-2.50 GBP'],
    [1000, 'JPY', '1000 JPY'],
    [5, 'KWD', '0.005 KWD'],
    [1234567, 'BHD', '1234.567 BHD'],
    [12345, 'CLF', '1.2345 CLF'],
    [Number.MAX_SAFE_INTEGER, 'USD', '90071992547409.91 USD'],
  ])('formatMoney(%i, %s) = %s', (amount, currency, text) => {
    expect(formatMoney(amount, currency)).toBe(text);
  });

  it.each([
    ['12.50', 'GBP', 1250],
    ['12.5', 'GBP', 1250],
    ['12', 'GBP', 1200],
    ['0.01', 'GBP', 1],
    ['  7.00 ', 'GBP', 700],
    ['007.10', 'GBP', 710],
    ['1000', 'JPY', 1000],
    ['1.234', 'KWD', 1234],
    ['0.001', 'OMR', 1],
    ['0', 'GBP', 0],
    ['90071992547409.91', 'USD', Number.MAX_SAFE_INTEGER],
  ])('parseMajor(%j, %s) = %i', (text, currency, amount) => {
    expect(parseMajor(text, currency)).toBe(amount);
  });

  it.each([
    ['12.345', 'GBP', /at most 2 decimals/],
    ['1.5', 'JPY', /no minor unit/],
    ['1.2345', 'KWD', /at most 3 decimals/],
    ['-1.00', 'GBP', /not a decimal/],
    ['+1.00', 'GBP', /not a decimal/],
    ['1,000.00', 'GBP', /not a decimal/],
    ['1e3', 'GBP', /not a decimal/],
    ['.50', 'GBP', /not a decimal/],
    ['12.', 'GBP', /not a decimal/],
    ['', 'GBP', /not a decimal/],
    ['abc', 'GBP', /not a decimal/],
    ['90071992547409.92', 'USD', /too large/],
    ['99999999999999999999999', 'JPY', /too large/],
  ])('parseMajor(%j, %s) fails: %s', (text, currency, message) => {
    expect(validationField(() => parseMajor(text, currency))).toBe('amount');
    expect(() => parseMajor(text, currency)).toThrow(message);
  });

  it('names the given field, and the currency field for an unknown currency', () => {
    expect(validationField(() => parseMajor('1.234', 'GBP', 'refund.amount'))).toBe('refund.amount');
    expect(validationField(() => parseMajor('1', 'NOPE'))).toBe('currency');
  });

  it('round-trips every currency: parseMajor(formatMajor(x)) = x', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...CURRENCIES),
        fc.oneof(fc.integer({ min: 0, max: 10_000 }), fc.maxSafeNat()),
        (currency, amount) => {
          const text = formatMajor(amount, currency);
          expect(parseMajor(text, currency)).toBe(amount);
          const decimals = text.split('.')[1]?.length ?? 0;
          expect(decimals).toBe(exponent(currency));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('splitInstalments', () => {
  it.each([
    [1000, 3, 333, 334],
    [1000, 4, 250, 250],
    [1000, 1, 1000, 1000],
    [10, 10, 1, 1],
    [11, 10, 1, 2],
    [99, 7, 14, 15],
    [Number.MAX_SAFE_INTEGER, 2, 4503599627370495, 4503599627370496],
    [Number.MAX_SAFE_INTEGER, 3, 3002399751580330, 3002399751580331],
  ])('splitInstalments(%i, %i) = %i x (n-1) + %i', (total, n, amount, lastAmount) => {
    expect(splitInstalments(total, n)).toEqual({ amount, lastAmount });
  });

  it('sums to the total exactly, with the remainder only on the last instalment', () => {
    for (const total of [1, 7, 100, 999, 1000, 12_345, 1_000_003, Number.MAX_SAFE_INTEGER]) {
      for (let n = 1; n <= Math.min(total, 60); n++) {
        const split = splitInstalments(total, n);
        let sum = 0n;
        for (let cycle = 0; cycle < n; cycle++) sum += BigInt(instalmentAmount(split, n, cycle));
        expect(sum).toBe(BigInt(total));
        expect(split.amount).toBeGreaterThanOrEqual(1);
        expect(split.lastAmount - split.amount).toBeGreaterThanOrEqual(0);
        expect(split.lastAmount - split.amount).toBeLessThan(n);
      }
    }
  });

  it('holds for any total and count (property)', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.integer({ min: 1, max: 1000 }), (raw, n) => {
        const total = Math.max(raw, n);
        const { amount, lastAmount } = splitInstalments(total, n);
        expect(BigInt(amount) * BigInt(n - 1) + BigInt(lastAmount)).toBe(BigInt(total));
        expect(amount).toBe(Number(BigInt(total) / BigInt(n)));
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    [0, 3, 'amount'],
    [-100, 3, 'amount'],
    [10.5, 3, 'amount'],
    [100, 0, 'instalments'],
    [100, 2.5, 'instalments'],
    [2, 3, 'instalments'],
  ])('splitInstalments(%j, %j) fails naming %s', (total, n, field) => {
    expect(validationField(() => splitInstalments(total, n))).toBe(field);
  });
});
