import { formatMoney } from '../../src/domain/money.ts';

/** Amounts as everywhere in rebill: major units with the currency's exponent, then the code. */
export const money = (amount: number | null | undefined, currency: string | null | undefined): string =>
  amount === null || amount === undefined || !currency ? '' : formatMoney(amount, currency);

/** Per-currency totals ({GBP: 2999}) as "29.99 GBP, 10.00 EUR". */
export const amounts = (byCurrency: Record<string, number>): string =>
  Object.entries(byCurrency)
    .map(([c, a]) => money(a, c))
    .join(', ') || '—';

/** An instant in UTC, to the minute: 2027-06-01 09:00 UTC. */
export const when = (iso: string | null | undefined): string =>
  iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : '—';

export const day = (iso: string | null | undefined): string => (iso ? iso.slice(0, 10) : '—');

export const percent = (rate: number | null | undefined): string =>
  rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)} %`;

/** YYYY-MM-DD (a date input's value) as the UTC midnight instant. */
export const dateToIso = (d: string): string => `${d}T00:00:00.000Z`;

export const addDays = (iso: string, days: number): string =>
  new Date(new Date(iso).getTime() + days * 86_400_000).toISOString();
