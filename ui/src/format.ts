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

/** `retryScheduled` → "retry scheduled": an API name as a label. */
export const words = (name: string): string =>
  name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replaceAll('_', ' ')
    .toLowerCase();

/** An instant's wall clock in a zone: "2027-06-01 10:00". */
function wallClock(iso: string, zone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      timeZone: zone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(new Date(iso))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/**
 * An instant in UTC and in the mandate's own zone, where that is another:
 * "2027-06-01 08:00 UTC (2027-06-01 10:00 Europe/Paris)".
 */
export const zoned = (iso: string | null | undefined, zone: string): string => {
  if (!iso) return '—';
  if (zone === 'UTC' || zone === 'Etc/UTC') return when(iso);
  try {
    return `${when(iso)} (${wallClock(iso, zone)} ${zone})`;
  } catch {
    return when(iso);
  }
};
