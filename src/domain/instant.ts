import { TZDate } from '@date-fns/tz';
import { ValidationError } from '../errors.ts';

/**
 * The one parser of instants for every way in (CLI options, API bodies, legacy CSV/NDJSON).
 * ISO-8601 only: `YYYY-MM-DD`, or that with `THH:mm`, `:ss` and a fraction, and optionally `Z`
 * or an offset. A date or date-time without an offset is wall-clock time in `zone` (the
 * mandate's time zone; UTC where there is none, as for `rebill run --at`); a date alone is
 * 00:00 there. Impossible dates (2027-02-30, 25:00) are errors, never rolled over, and so is
 * anything outside 2000-01-01 .. 2100-01-01: no mandate starts in 1970 by accident.
 */
const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

export const EARLIEST_INSTANT = new Date('2000-01-01T00:00:00Z');
export const LATEST_INSTANT = new Date('2100-01-01T00:00:00Z');

const FORMAT = 'an ISO-8601 date or date-time (YYYY-MM-DD, YYYY-MM-DDTHH:mm[:ss][Z|±HH:mm])';

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Why `value` is not an instant, or the instant. Never echoes a value that is not date-shaped. */
export function readInstant(value: unknown, zone = 'UTC'): Date | { problem: string } {
  if (typeof value !== 'string') return { problem: `must be ${FORMAT}` };
  const m = DATE_TIME.exec(value);
  if (!m) return { problem: `must be ${FORMAT}` };
  const [y, mo, d, h = '0', mi = '0', s = '0', frac = '0', offset] = m.slice(1) as string[];
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month))
    return { problem: `${y}-${mo}-${d} is not a calendar date` };
  if (hour > 23 || minute > 59 || second > 59) return { problem: `${h}:${mi}:${s} is not a time of day` };
  const ms = Number(frac.padEnd(3, '0').slice(0, 3));
  let at: Date;
  if (offset !== undefined) {
    let off = 0;
    if (offset !== 'Z') {
      const digits = offset.replace(':', '');
      const oh = Number(digits.slice(1, 3));
      const om = Number(digits.slice(3, 5));
      if (oh > 18 || om > 59) return { problem: `${offset} is not a UTC offset` };
      off = (oh * 60 + om) * (digits[0] === '-' ? -1 : 1);
    }
    at = new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms) - off * 60_000);
  } else {
    at = new Date(new TZDate(year, month - 1, day, hour, minute, second, ms, zone).getTime());
  }
  if (Number.isNaN(at.getTime())) return { problem: `must be ${FORMAT}` };
  if (at < EARLIEST_INSTANT || at >= LATEST_INSTANT)
    return { problem: 'must lie between 2000-01-01 and 2100-01-01' };
  return at;
}

/** `readInstant`, throwing a ValidationError that names `field`. */
export function parseInstant(field: string, value: unknown, zone = 'UTC'): Date {
  const r = readInstant(value, zone);
  if (r instanceof Date) return r;
  throw new ValidationError(field, r.problem);
}
