/**
 * Billing calendars: when cycle N of a mandate falls due.
 *
 * Every cycle is counted from one anchor (the due time of cycle `anchorCycle`), never from the
 * previous due date, so a plan anchored on the 31st goes Jan 31 -> Feb 28/29 -> Mar 31 and does
 * not drift to the 28th. Arithmetic happens on the anchor's local wall-clock time in the
 * mandate's IANA zone (date-fns on a UTC-pinned date, so the host zone cannot interfere; @date-fns/tz for
 * the zone's offsets), then
 * the wall-clock time is turned back into an instant with these DST rules:
 *
 * - a local time that does not exist (spring-forward gap) moves forward to the first instant
 *   after the gap, i.e. the transition itself (01:30 on a London spring-forward day -> 02:00 BST);
 * - a local time that happens twice (fall-back overlap) takes the first occurrence (01:30 on a
 *   New York fall-back day -> 01:30 EDT, not EST);
 * - the anchor cycle itself is always exactly `anchorAt`, even if that is a second occurrence.
 *
 * Pure: no clock, no I/O. Callers pass "now" in.
 */
import { tzOffset } from '@date-fns/tz';
import { addDays, addMonths, addWeeks, addYears } from 'date-fns';
import { ValidationError } from '../errors.ts';
import { quoteSafely } from './card.ts';

export type IntervalUnit = 'day' | 'week' | 'month' | 'year';

export interface Interval {
  unit: IntervalUnit;
  count: number;
}

export const INTERVAL_UNITS: readonly IntervalUnit[] = ['day', 'week', 'month', 'year'];

/** Largest count per unit. Years stop at 10: a longer gap between charges is not a subscription. */
export const MAX_INTERVAL_COUNT: Readonly<Record<IntervalUnit, number>> = Object.freeze({
  day: 999,
  week: 999,
  month: 999,
  year: 10,
});

const KEYWORDS: Readonly<Record<string, Interval>> = Object.freeze({
  daily: { unit: 'day', count: 1 },
  weekly: { unit: 'week', count: 1 },
  monthly: { unit: 'month', count: 1 },
  yearly: { unit: 'year', count: 1 },
  annually: { unit: 'year', count: 1 },
});

const INTERVAL_TEXT = /^(\d{1,4})\s+(day|week|month|year)s?$/;

/**
 * Parses `N unit` (`1 month`, `2 weeks`, `14 days`, `1 year`; singular or plural, any case,
 * surrounding spaces ignored) or one of `daily|weekly|monthly|yearly|annually`.
 */
export function parseInterval(text: string, field = 'interval'): Interval {
  if (typeof text !== 'string') throw new ValidationError(field, 'must be a string like "1 month"');
  const normalized = text.trim().toLowerCase();
  const keyword = KEYWORDS[normalized];
  if (keyword) return { ...keyword };
  const match = INTERVAL_TEXT.exec(normalized);
  if (!match) {
    throw new ValidationError(
      field,
      `${quoteSafely(text)} is not an interval: use "N day|week|month|year" or daily|weekly|monthly|yearly`,
    );
  }
  return toInterval(match[2]!, Number(match[1]), field)!;
}

/**
 * An Interval from stored columns (`interval_unit`, `interval_count`); both null means an
 * unscheduled mandate and gives null. Anything else invalid throws naming `field`.
 */
export function toInterval(
  unit: string | null | undefined,
  count: number | null | undefined,
  field = 'interval',
): Interval | null {
  if (unit == null && count == null) return null;
  if (!INTERVAL_UNITS.includes(unit as IntervalUnit)) {
    throw new ValidationError(field, `unknown unit ${JSON.stringify(unit)}: use day, week, month or year`);
  }
  const u = unit as IntervalUnit;
  const max = MAX_INTERVAL_COUNT[u];
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > max) {
    throw new ValidationError(field, `count must be an integer from 1 to ${max} for unit ${u}`);
  }
  return { unit: u, count };
}

/** `{ unit: 'week', count: 2 }` -> `2 weeks`; parseInterval reads it back. */
export function formatInterval(i: Interval): string {
  return `${i.count} ${i.unit}${i.count === 1 ? '' : 's'}`;
}

/**
 * True for an IANA zone name the runtime knows (`Europe/London`, `UTC`, `Etc/GMT+5`). Bare UTC
 * offsets such as `+05:00` are refused even where Intl accepts them: an offset has no DST
 * rules, so a mandate stored with one would charge an hour off for half the year.
 */
export function isTimeZone(zone: string): boolean {
  if (typeof zone !== 'string' || !/^[A-Za-z]/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export function assertTimeZone(zone: unknown, field = 'timezone'): asserts zone is string {
  if (typeof zone !== 'string' || !isTimeZone(zone)) {
    throw new ValidationError(field, `unknown IANA time zone ${quoteSafely(zone)}`);
  }
}

/** The calendar of one mandate; mirrors the `mandates` columns of the same names. */
export interface Schedule {
  /** null: an unscheduled mandate, charged only when a charge request is queued. */
  interval: Interval | null;
  timezone: string;
  /** The instant cycle `anchorCycle` falls due. */
  anchorAt: Date;
  anchorCycle: number;
  /** No cycle falls due after this instant. */
  endAt?: Date | null;
  /** Cycles 0..instalmentsTotal-1 exist, no others. */
  instalmentsTotal?: number | null;
}

const DAY_MS = 86_400_000;

/**
 * A Date whose local getters and setters are the UTC ones (what @date-fns/utc's UTCDate does;
 * that package is not a dependency). date-fns computes with local fields, so handing it one of
 * these makes its arithmetic pure calendar arithmetic, immune to the host's zone. TZDate in
 * 'UTC' gives the same results but routes every field access through Intl: ~50x slower,
 * which a run over a million mandates would feel.
 */
class WallDate extends Date {
  [Symbol.for('constructDateFrom')](value: Date | number | string): WallDate {
    return new WallDate(+new Date(value));
  }
}
for (const method of Object.getOwnPropertyNames(Date.prototype)) {
  const utc = method.replace(/^(get|set)(?!UTC)/, '$1UTC');
  if (utc === method || !(utc in Date.prototype)) continue;
  const native = (Date.prototype as unknown as Record<string, (...args: unknown[]) => unknown>)[utc]!;
  Object.defineProperty(WallDate.prototype, method, {
    value(this: Date, ...args: unknown[]) {
      return native.apply(this, args);
    },
    writable: true,
    configurable: true,
  });
}
WallDate.prototype.getTimezoneOffset = () => 0;

/** Offset of `zone` from UTC at instant `ms`, in milliseconds (historic offsets may have seconds). */
function offsetMs(zone: string, ms: number): number {
  // Most books are in UTC, which has no offset to look up: Intl's answer costs microseconds a
  // call, and the forecast asks it several times per mandate (a third of its time at 50,000).
  if (zone === 'UTC') return 0;
  return Math.round(tzOffset(zone, new Date(ms)) * 60_000);
}

/**
 * The local wall-clock time of `instant` in `zone` as a WallDate whose fields are the
 * local fields. date-fns arithmetic on it is plain calendar arithmetic with no DST.
 */
function wallClock(instant: Date, zone: string): WallDate {
  const t = instant.getTime();
  if (Number.isNaN(t)) throw new ValidationError('anchorAt', 'is not a valid date');
  const offset = offsetMs(zone, t);
  // tzOffset answers NaN for an unknown zone; an Invalid Date must not reach the database.
  if (Number.isNaN(offset))
    throw new ValidationError('timezone', `unknown IANA time zone ${quoteSafely(zone)}`);
  return new WallDate(t + offset);
}

/**
 * The instant at which `zone` shows wall-clock time `wall` (ms whose UTC fields are the local
 * fields): the first occurrence in an overlap, the end of the gap for a time that never shows.
 */
function instantOf(wall: number, zone: string): Date {
  // Any instant showing `wall` lies within 14 hours of it (the largest offset), so the offsets a
  // day either side are every offset that can apply, barring two transitions within two days.
  const early = offsetMs(zone, wall - DAY_MS);
  const late = offsetMs(zone, wall + DAY_MS);
  // The common case, no transition nearby: one offset, one instant. Two Intl calls, not five.
  if (early === late) return new Date(wall - early);
  const candidates = [wall - early, wall - late];
  const valid = candidates.filter((t) => t + offsetMs(zone, t) === wall);
  if (valid.length > 0) return new Date(Math.min(...valid));
  // A gap: the transition lies between the instant read with the later offset (before it) and
  // the one read with the earlier offset (after it). Find the first instant after it.
  let lo = Math.min(...candidates);
  let hi = Math.max(...candidates);
  const before = offsetMs(zone, lo);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetMs(zone, mid) === before) lo = mid;
    else hi = mid;
  }
  return new Date(hi);
}

/**
 * The anchor's wall-clock time, remembered per schedule object: catch-up loops call dueAt on one
 * schedule many times, and the zone lookup is the expensive part. Keyed on the values too, so a
 * schedule mutated in place is recomputed rather than served stale.
 */
const anchorWalls = new WeakMap<Schedule, { anchorMs: number; zone: string; wall: number }>();
function anchorWall(s: Schedule): WallDate {
  const anchorMs = s.anchorAt.getTime();
  const cached = anchorWalls.get(s);
  if (cached && cached.anchorMs === anchorMs && cached.zone === s.timezone) return new WallDate(cached.wall);
  const wall = wallClock(s.anchorAt, s.timezone);
  anchorWalls.set(s, { anchorMs, zone: s.timezone, wall: wall.getTime() });
  return wall;
}

function requireInterval(s: Schedule): Interval {
  if (!s.interval) throw new ValidationError('interval', 'an unscheduled mandate has no calendar');
  // A zero or fractional count would put every cycle on the anchor: doubled charges.
  const { unit, count } = s.interval;
  if (!Number.isInteger(count) || count < 1 || !INTERVAL_UNITS.includes(unit)) {
    throw new ValidationError('interval', `invalid interval ${JSON.stringify(s.interval)}`);
  }
  return s.interval;
}

function assertCycle(cycle: number): void {
  if (!Number.isSafeInteger(cycle) || cycle < 0) {
    throw new ValidationError('cycle', 'must be a non-negative integer');
  }
}

function shift(wall: WallDate, unit: IntervalUnit, steps: number): Date {
  switch (unit) {
    case 'day':
      return addDays(wall, steps);
    case 'week':
      return addWeeks(wall, steps);
    case 'month':
      return addMonths(wall, steps);
    case 'year':
      return addYears(wall, steps);
  }
}

/**
 * The instant cycle `cycle` falls due: the anchor's local date and time in `s.timezone` moved by
 * (cycle - anchorCycle) intervals counted from the anchor, clamped to the month's last day, with
 * the DST rules in the module comment. Throws for an unscheduled schedule. Ignores endAt and
 * instalmentsTotal (see cycleExists).
 */
export function dueAt(s: Schedule, cycle: number): Date {
  const interval = requireInterval(s);
  assertCycle(cycle);
  const steps = (cycle - s.anchorCycle) * interval.count;
  if (steps === 0) return new Date(s.anchorAt.getTime());
  const wall = shift(anchorWall(s), interval.unit, steps);
  return instantOf(wall.getTime(), s.timezone);
}

/**
 * Whether cycle `cycle` is part of the plan: false for an unscheduled schedule, at or past
 * instalmentsTotal, or when it would fall due after endAt (a cycle due exactly at endAt exists).
 */
export function cycleExists(s: Schedule, cycle: number): boolean {
  if (!s.interval) return false;
  assertCycle(cycle);
  if (s.instalmentsTotal != null && cycle >= s.instalmentsTotal) return false;
  if (s.endAt != null && dueAt(s, cycle).getTime() > s.endAt.getTime()) return false;
  return true;
}

/** dueAt(s, cycle) when the cycle exists, else null (plan finished, or unscheduled). */
export function nextDue(s: Schedule, cycle: number): Date | null {
  return cycleExists(s, cycle) ? dueAt(s, cycle) : null;
}

/** The end of the period cycle `cycle` pays for: when the next cycle would fall due. */
export function periodEnd(s: Schedule, cycle: number): Date {
  return dueAt(s, cycle + 1);
}

/**
 * The cycles from `fromCycle` on that exist and fall due at or before `asOf`, in order, at most
 * `limit` of them: the catch-up list after downtime. Empty for an unscheduled schedule.
 */
export function cyclesDue(s: Schedule, fromCycle: number, asOf: Date, limit: number): number[] {
  if (!Number.isSafeInteger(limit) || limit < 0)
    throw new ValidationError('limit', 'must be a non-negative integer');
  assertCycle(fromCycle);
  const cycles: number[] = [];
  if (!s.interval) return cycles;
  for (let cycle = fromCycle; cycles.length < limit; cycle++) {
    if (s.instalmentsTotal != null && cycle >= s.instalmentsTotal) break;
    const due = dueAt(s, cycle).getTime();
    if (due > asOf.getTime() || (s.endAt != null && due > s.endAt.getTime())) break;
    cycles.push(cycle);
  }
  return cycles;
}

const AVERAGE_MS: Readonly<Record<IntervalUnit, number>> = {
  day: DAY_MS,
  week: 7 * DAY_MS,
  month: (365.2425 / 12) * DAY_MS,
  year: 365.2425 * DAY_MS,
};

/**
 * The first cycle >= fromCycle that falls due at or after `at`, or null when the plan ends
 * first (endAt, instalments) or is unscheduled. For resuming a paused mandate without charging
 * the cycles it skipped. Jumps close by estimate, then walks, so a long pause costs O(1).
 */
export function cycleAtOrAfter(s: Schedule, at: Date, fromCycle: number): number | null {
  if (!s.interval) return null;
  assertCycle(fromCycle);
  const step = AVERAGE_MS[s.interval.unit] * s.interval.count;
  const elapsed = at.getTime() - dueAt(s, fromCycle).getTime();
  let cycle = fromCycle + Math.max(0, Math.floor(elapsed / step) - 1);
  while (cycle > fromCycle && dueAt(s, cycle - 1).getTime() >= at.getTime()) cycle--;
  while (dueAt(s, cycle).getTime() < at.getTime()) cycle++;
  return cycleExists(s, cycle) ? cycle : null;
}

const LOCAL_TIME = /^([01]\d|2[0-3]):([0-5]\d)$/;

/**
 * The anchor (due time of cycle 0) for a new mandate: the trial end when there is one, else the
 * start. With `localTime` (HH:mm) the time of day is replaced by that local time in `timezone`
 * on the same local date, so a charge time of 09:00 stays 09:00 across DST. That can put the
 * anchor a few hours before the start; the first cycle is then due at once, which is what a
 * customer who signs up today expects.
 */
export function firstCycleAt(opts: {
  startAt: Date;
  trialEndAt?: Date | null;
  timezone: string;
  localTime?: string;
}): Date {
  assertTimeZone(opts.timezone);
  if (Number.isNaN(opts.startAt.getTime())) throw new ValidationError('startAt', 'is not a valid date');
  if (opts.trialEndAt != null) {
    if (Number.isNaN(opts.trialEndAt.getTime()))
      throw new ValidationError('trialEndAt', 'is not a valid date');
    if (opts.trialEndAt.getTime() < opts.startAt.getTime()) {
      throw new ValidationError('trialEndAt', 'is before the start');
    }
  }
  const base = opts.trialEndAt ?? opts.startAt;
  if (opts.localTime === undefined) return new Date(base.getTime());
  const match = LOCAL_TIME.exec(opts.localTime);
  if (!match) throw new ValidationError('localTime', `${quoteSafely(opts.localTime)} is not HH:mm`);
  const wall = wallClock(base, opts.timezone);
  wall.setUTCHours(Number(match[1]), Number(match[2]), 0, 0);
  return instantOf(wall.getTime(), opts.timezone);
}

/**
 * The last cycle >= fromCycle that exists and falls due at or before `asOf`, or null when none
 * does (the first is still ahead, the plan is unscheduled). A mandate started in the past is
 * charged from here, not from its first cycle. Jumps close by estimate, then walks, like
 * cycleAtOrAfter.
 */
export function lastCycleDueBy(s: Schedule, asOf: Date, fromCycle: number): number | null {
  if (!s.interval) return null;
  assertCycle(fromCycle);
  if (!cycleExists(s, fromCycle) || dueAt(s, fromCycle).getTime() > asOf.getTime()) return null;
  const step = AVERAGE_MS[s.interval.unit] * s.interval.count;
  const elapsed = asOf.getTime() - dueAt(s, fromCycle).getTime();
  let cycle = fromCycle + Math.max(0, Math.floor(elapsed / step) - 1);
  if (s.instalmentsTotal != null) cycle = Math.min(cycle, s.instalmentsTotal - 1);
  while (cycle > fromCycle && dueAt(s, cycle).getTime() > asOf.getTime()) cycle--;
  while (
    (s.instalmentsTotal == null || cycle + 1 < s.instalmentsTotal) &&
    dueAt(s, cycle + 1).getTime() <= asOf.getTime()
  )
    cycle++;
  // Past the end date: back to the last cycle that exists (cycle fromCycle does).
  if (s.endAt != null && !cycleExists(s, cycle)) {
    let lo = fromCycle;
    let hi = cycle;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (cycleExists(s, mid)) lo = mid;
      else hi = mid;
    }
    cycle = lo;
  }
  return cycle;
}
