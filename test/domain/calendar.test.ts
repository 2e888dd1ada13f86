import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cycleAtOrAfter,
  cycleExists,
  cyclesDue,
  dueAt,
  firstCycleAt,
  formatInterval,
  type Interval,
  isTimeZone,
  nextDue,
  parseInterval,
  periodEnd,
  type Schedule,
  toInterval,
} from '../../src/domain/calendar.ts';
import { validationField } from '../support/validation.ts';

// The oracle reads offsets straight from Intl ("GMT+05:30"), not through @date-fns/tz or
// date-fns, so a bug in the module's path is not mirrored here.
const formatters = new Map<string, Intl.DateTimeFormat>();
function offsetAt(t: number, zone: string): number {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' });
    formatters.set(zone, f);
  }
  const name = f.formatToParts(new Date(t)).find((p) => p.type === 'timeZoneName')!.value;
  const match = /^GMT(?:([+-])(\d\d):(\d\d))?$/.exec(name);
  if (!match) throw new Error(`unexpected offset ${name}`);
  if (!match[1]) return 0;
  const ms = (Number(match[2]) * 60 + Number(match[3])) * 60_000;
  return match[1] === '-' ? -ms : ms;
}

/** Local wall-clock time of `t` in `zone`, as ms whose UTC fields are the local fields. */
function localWall(t: number, zone: string): number {
  return t + offsetAt(t, zone);
}

/** `YYYY-MM-DD HH:mm` local. */
function local(d: Date, zone: string): string {
  return new Date(localWall(d.getTime(), zone)).toISOString().slice(0, 16).replace('T', ' ');
}

// One test switches the host zone (Node re-reads TZ on change); put it back for the rest.
const hostZone = process.env.TZ;
afterEach(() => {
  if (hostZone === undefined) delete process.env.TZ;
  else process.env.TZ = hostZone;
});

function schedule(partial: Partial<Schedule> & { anchorAt: Date }): Schedule {
  return {
    interval: { unit: 'month', count: 1 },
    timezone: 'UTC',
    anchorCycle: 0,
    ...partial,
  };
}

function chain(s: Schedule, cycles: number, zone = s.timezone): string[] {
  return Array.from({ length: cycles }, (_, c) => local(dueAt(s, c), zone));
}

describe('parseInterval / formatInterval', () => {
  it.each([
    ['1 month', 'month', 1],
    ['1 months', 'month', 1],
    ['2 weeks', 'week', 2],
    ['1 week', 'week', 1],
    ['14 days', 'day', 14],
    ['1 day', 'day', 1],
    ['1 year', 'year', 1],
    ['10 years', 'year', 10],
    ['999 days', 'day', 999],
    ['  3   Months ', 'month', 3],
    ['monthly', 'month', 1],
    ['Weekly', 'week', 1],
    ['yearly', 'year', 1],
    ['annually', 'year', 1],
    ['daily', 'day', 1],
  ])('%j -> %s x %i', (text, unit, count) => {
    expect(parseInterval(text)).toEqual({ unit, count });
  });

  it.each([
    '',
    'month',
    '0 months',
    '-1 month',
    '1.5 months',
    '1000 days',
    '11 years',
    '1 fortnight',
    '1 hour',
    '1month',
    'every month',
    'one month',
    '1 month later',
  ])('refuses %j naming the field', (text) => {
    expect(validationField(() => parseInterval(text))).toBe('interval');
    expect(validationField(() => parseInterval(text, 'plan.interval'))).toBe('plan.interval');
  });

  it.each<[Interval, string]>([
    [{ unit: 'month', count: 1 }, '1 month'],
    [{ unit: 'week', count: 2 }, '2 weeks'],
    [{ unit: 'day', count: 14 }, '14 days'],
    [{ unit: 'year', count: 1 }, '1 year'],
  ])('formats %j as %s and reads it back', (interval, text) => {
    expect(formatInterval(interval)).toBe(text);
    expect(parseInterval(text)).toEqual(interval);
  });

  it('reads stored columns: both null is unscheduled, half or bad values throw', () => {
    expect(toInterval(null, null)).toBeNull();
    expect(toInterval('week', 2)).toEqual({ unit: 'week', count: 2 });
    expect(validationField(() => toInterval('month', null))).toBe('interval');
    expect(validationField(() => toInterval(null, 1))).toBe('interval');
    expect(validationField(() => toInterval('fortnight', 1))).toBe('interval');
    expect(validationField(() => toInterval('year', 11))).toBe('interval');
  });
});

describe('isTimeZone', () => {
  it.each([
    ['Europe/London', true],
    ['America/New_York', true],
    ['Asia/Kolkata', true],
    ['Pacific/Chatham', true],
    ['UTC', true],
    ['Etc/GMT+5', true],
    ['Mars/Olympus_Mons', false],
    ['+05:00', false],
    ['-0800', false],
    ['', false],
    ['London', false],
  ])('%j -> %s', (zone, valid) => {
    expect(isTimeZone(zone)).toBe(valid);
  });
});

describe('dueAt: month ends', () => {
  it('keeps the 31st after short months in a non-leap year (Jan 31 -> Feb 28 -> Mar 31)', () => {
    const s = schedule({ timezone: 'Europe/London', anchorAt: new Date('2023-01-31T10:00:00Z') });
    expect(chain(s, 14)).toEqual([
      '2023-01-31 10:00',
      '2023-02-28 10:00',
      '2023-03-31 10:00',
      '2023-04-30 10:00',
      '2023-05-31 10:00',
      '2023-06-30 10:00',
      '2023-07-31 10:00',
      '2023-08-31 10:00',
      '2023-09-30 10:00',
      '2023-10-31 10:00',
      '2023-11-30 10:00',
      '2023-12-31 10:00',
      '2024-01-31 10:00',
      '2024-02-29 10:00',
    ]);
    // The wall-clock time stays 10:00 through BST, so the UTC instant moves.
    expect(dueAt(s, 3).toISOString()).toBe('2023-04-30T09:00:00.000Z');
  });

  it('clamps to Feb 29 in a leap year and returns to the 31st', () => {
    const s = schedule({ anchorAt: new Date('2024-01-31T00:00:00Z') });
    expect(chain(s, 4)).toEqual([
      '2024-01-31 00:00',
      '2024-02-29 00:00',
      '2024-03-31 00:00',
      '2024-04-30 00:00',
    ]);
  });

  it('anchored on the 30th: Feb clamps, then back to the 30th', () => {
    const s = schedule({ anchorAt: new Date('2023-01-30T08:00:00Z') });
    expect(chain(s, 3)).toEqual(['2023-01-30 08:00', '2023-02-28 08:00', '2023-03-30 08:00']);
  });

  it('a Feb 29 yearly plan falls on Feb 28 in common years and Feb 29 in leap years', () => {
    const s = schedule({ interval: { unit: 'year', count: 1 }, anchorAt: new Date('2024-02-29T12:00:00Z') });
    expect(chain(s, 5)).toEqual([
      '2024-02-29 12:00',
      '2025-02-28 12:00',
      '2026-02-28 12:00',
      '2027-02-28 12:00',
      '2028-02-29 12:00',
    ]);
  });

  it('quarterly from Nov 30 and every 2 months from Dec 31 cross the year', () => {
    const quarterly = schedule({
      interval: { unit: 'month', count: 3 },
      anchorAt: new Date('2023-11-30T06:00:00Z'),
    });
    expect(chain(quarterly, 4)).toEqual([
      '2023-11-30 06:00',
      '2024-02-29 06:00',
      '2024-05-30 06:00',
      '2024-08-30 06:00',
    ]);
    const bimonthly = schedule({
      interval: { unit: 'month', count: 2 },
      anchorAt: new Date('2023-12-31T06:00:00Z'),
    });
    expect(chain(bimonthly, 4)).toEqual([
      '2023-12-31 06:00',
      '2024-02-29 06:00',
      '2024-04-30 06:00',
      '2024-06-30 06:00',
    ]);
  });

  it('uses the local date, not the UTC date: 23:30 on the 31st in New York is the 1st in UTC', () => {
    const s = schedule({ timezone: 'America/New_York', anchorAt: new Date('2024-02-01T04:30:00Z') });
    expect(chain(s, 3)).toEqual(['2024-01-31 23:30', '2024-02-29 23:30', '2024-03-31 23:30']);
    expect(dueAt(s, 2).toISOString()).toBe('2024-04-01T03:30:00.000Z');
  });
});

describe('dueAt: daylight saving time', () => {
  it('Europe/London 01:30 daily: the gap moves to 02:00 BST, the overlap takes BST (first)', () => {
    const spring = schedule({
      interval: { unit: 'day', count: 1 },
      timezone: 'Europe/London',
      anchorAt: new Date('2024-03-30T01:30:00Z'),
    });
    expect([0, 1, 2].map((c) => dueAt(spring, c).toISOString())).toEqual([
      '2024-03-30T01:30:00.000Z', // 01:30 GMT
      '2024-03-31T01:00:00.000Z', // 01:30 does not exist; 02:00 BST, the first instant after the gap
      '2024-04-01T00:30:00.000Z', // 01:30 BST
    ]);
    const autumn = { ...spring, anchorAt: new Date('2024-10-26T00:30:00Z') };
    expect([0, 1, 2].map((c) => dueAt(autumn, c).toISOString())).toEqual([
      '2024-10-26T00:30:00.000Z', // 01:30 BST
      '2024-10-27T00:30:00.000Z', // 01:30 happens twice: the first, BST
      '2024-10-28T01:30:00.000Z', // 01:30 GMT
    ]);
  });

  it('America/New_York 02:30 daily: the gap moves to 03:00 EDT', () => {
    const s = schedule({
      interval: { unit: 'day', count: 1 },
      timezone: 'America/New_York',
      anchorAt: new Date('2024-03-09T07:30:00Z'),
    });
    expect([0, 1, 2].map((c) => dueAt(s, c).toISOString())).toEqual([
      '2024-03-09T07:30:00.000Z', // 02:30 EST
      '2024-03-10T07:00:00.000Z', // 03:00 EDT
      '2024-03-11T06:30:00.000Z', // 02:30 EDT
    ]);
    expect(chain(s, 3)).toEqual(['2024-03-09 02:30', '2024-03-10 03:00', '2024-03-11 02:30']);
  });

  it('America/New_York 01:30 daily: the overlap takes EDT, the first occurrence', () => {
    const s = schedule({
      interval: { unit: 'day', count: 1 },
      timezone: 'America/New_York',
      anchorAt: new Date('2024-11-02T05:30:00Z'),
    });
    expect([0, 1, 2].map((c) => dueAt(s, c).toISOString())).toEqual([
      '2024-11-02T05:30:00.000Z', // 01:30 EDT
      '2024-11-03T05:30:00.000Z', // 01:30 EDT (01:30 EST an hour later is the second occurrence)
      '2024-11-04T06:30:00.000Z', // 01:30 EST
    ]);
  });

  it('the anchor cycle is the anchor instant even when it is the second occurrence', () => {
    const s = schedule({
      interval: { unit: 'day', count: 1 },
      timezone: 'America/New_York',
      anchorAt: new Date('2024-11-03T06:30:00Z'), // 01:30 EST, second occurrence
      anchorCycle: 1,
    });
    expect(dueAt(s, 1).toISOString()).toBe('2024-11-03T06:30:00.000Z');
    expect(dueAt(s, 0).toISOString()).toBe('2024-11-02T05:30:00.000Z');
    expect(dueAt(s, 2).toISOString()).toBe('2024-11-04T06:30:00.000Z');
  });

  it('monthly on the 10th at 02:30 New York hits the gap in March only', () => {
    const s = schedule({ timezone: 'America/New_York', anchorAt: new Date('2024-02-10T07:30:00Z') });
    expect(chain(s, 3)).toEqual(['2024-02-10 02:30', '2024-03-10 03:00', '2024-04-10 02:30']);
  });

  it('weekly keeps the local time across both transitions (London and New York)', () => {
    const london = schedule({
      interval: { unit: 'week', count: 1 },
      timezone: 'Europe/London',
      anchorAt: new Date('2024-03-23T09:00:00Z'),
    });
    expect(chain(london, 32).every((t) => t.endsWith(' 09:00'))).toBe(true);
    expect(dueAt(london, 1).toISOString()).toBe('2024-03-30T09:00:00.000Z');
    expect(dueAt(london, 2).toISOString()).toBe('2024-04-06T08:00:00.000Z');
    expect(dueAt(london, 31).toISOString()).toBe('2024-10-26T08:00:00.000Z');
    expect(dueAt(london, 32).toISOString()).toBe('2024-11-02T09:00:00.000Z');

    const ny = schedule({
      interval: { unit: 'week', count: 2 },
      timezone: 'America/New_York',
      anchorAt: new Date('2024-03-01T14:00:00Z'), // 09:00 EST
    });
    expect(chain(ny, 26).every((t) => t.endsWith(' 09:00'))).toBe(true);
    expect(dueAt(ny, 1).toISOString()).toBe('2024-03-15T13:00:00.000Z');
  });

  it('half-hour DST (Lord Howe) and 45-minute offsets (Chatham) keep the local time', () => {
    const lordHowe = schedule({
      timezone: 'Australia/Lord_Howe',
      anchorAt: new Date('2024-01-14T22:00:00Z'),
    });
    expect(chain(lordHowe, 12).every((t) => t.endsWith(' 09:00'))).toBe(true);
    const chatham = schedule({ timezone: 'Pacific/Chatham', anchorAt: new Date('2024-01-14T20:15:00Z') });
    expect(chain(chatham, 12).every((t) => t.endsWith(' 10:00'))).toBe(true);
  });

  it('gives the same instants whatever the host time zone is', () => {
    const s = schedule({ timezone: 'Europe/London', anchorAt: new Date('2024-01-31T01:30:00Z') });
    const daily = { ...s, interval: { unit: 'day', count: 1 } as Interval };
    const reference = [
      ...chain(s, 14),
      ...Array.from({ length: 400 }, (_, c) => dueAt(daily, c).toISOString()),
    ];
    for (const host of ['America/Los_Angeles', 'Australia/Lord_Howe', 'Asia/Kolkata']) {
      process.env.TZ = host;
      // Proves the switch took: the host's own offset is no longer zero.
      expect(new Date('2024-01-31T00:00:00Z').getTimezoneOffset()).not.toBe(0);
      expect([
        ...chain(s, 14),
        ...Array.from({ length: 400 }, (_, c) => dueAt(daily, c).toISOString()),
      ]).toEqual(reference);
    }
  });
});

describe('cycles: instalments, end date, anchor cycle', () => {
  const base = schedule({ timezone: 'Europe/London', anchorAt: new Date('2024-01-15T09:00:00Z') });

  it('stops after N instalments', () => {
    const s = { ...base, instalmentsTotal: 3 };
    expect([0, 1, 2, 3, 4].map((c) => cycleExists(s, c))).toEqual([true, true, true, false, false]);
    expect(nextDue(s, 2)?.toISOString()).toBe('2024-03-15T09:00:00.000Z');
    expect(nextDue(s, 3)).toBeNull();
    expect(cyclesDue(s, 0, new Date('2030-01-01T00:00:00Z'), 100)).toEqual([0, 1, 2]);
    expect(cyclesDue(s, 3, new Date('2030-01-01T00:00:00Z'), 100)).toEqual([]);
  });

  it('stops at the end date; a cycle due exactly at it still exists', () => {
    const atEnd = { ...base, endAt: new Date('2024-03-15T09:00:00Z') };
    expect([1, 2, 3].map((c) => cycleExists(atEnd, c))).toEqual([true, true, false]);
    const justBefore = { ...base, endAt: new Date('2024-03-15T08:59:59.999Z') };
    expect([1, 2, 3].map((c) => cycleExists(justBefore, c))).toEqual([true, false, false]);
    expect(nextDue(justBefore, 2)).toBeNull();
    expect(cyclesDue(justBefore, 0, new Date('2030-01-01T00:00:00Z'), 100)).toEqual([0, 1]);
  });

  it('counts from anchorCycle when it is not 0 (imported plans keep their numbers)', () => {
    const s = schedule({ anchorAt: new Date('2024-05-31T10:00:00Z'), anchorCycle: 5 });
    expect(dueAt(s, 5).toISOString()).toBe('2024-05-31T10:00:00.000Z');
    expect(local(dueAt(s, 6), 'UTC')).toBe('2024-06-30 10:00');
    expect(local(dueAt(s, 7), 'UTC')).toBe('2024-07-31 10:00');
    expect(local(dueAt(s, 4), 'UTC')).toBe('2024-04-30 10:00');
    expect(local(dueAt(s, 0), 'UTC')).toBe('2023-12-31 10:00');
    // The same plan anchored at its cycle 0 gives the same dates.
    const fromZero = schedule({ anchorAt: new Date('2023-12-31T10:00:00Z') });
    for (let c = 0; c < 30; c++) expect(dueAt(s, c).getTime()).toBe(dueAt(fromZero, c).getTime());
    // Instalments count cycle numbers, not cycles since the anchor.
    expect(cycleExists({ ...s, instalmentsTotal: 7 }, 6)).toBe(true);
    expect(cycleExists({ ...s, instalmentsTotal: 7 }, 7)).toBe(false);
  });

  it('cyclesDue catches up in order, inclusive of asOf, bounded by limit', () => {
    const asOf = dueAt(base, 6);
    expect(cyclesDue(base, 2, asOf, 100)).toEqual([2, 3, 4, 5, 6]);
    expect(cyclesDue(base, 2, new Date(asOf.getTime() - 1), 100)).toEqual([2, 3, 4, 5]);
    expect(cyclesDue(base, 2, asOf, 3)).toEqual([2, 3, 4]);
    expect(cyclesDue(base, 2, asOf, 0)).toEqual([]);
    expect(cyclesDue(base, 7, asOf, 100)).toEqual([]);
  });

  it('periodEnd is the next due time', () => {
    expect(periodEnd(base, 0).toISOString()).toBe('2024-02-15T09:00:00.000Z');
    expect(periodEnd(base, 2).getTime()).toBe(dueAt(base, 3).getTime());
  });

  it('cycleAtOrAfter finds the first cycle due at or after an instant', () => {
    expect(cycleAtOrAfter(base, new Date('2024-01-01T00:00:00Z'), 0)).toBe(0);
    expect(cycleAtOrAfter(base, new Date('2024-03-15T09:00:00Z'), 0)).toBe(2);
    expect(cycleAtOrAfter(base, new Date('2024-03-15T09:00:00.001Z'), 0)).toBe(3);
    expect(cycleAtOrAfter(base, new Date('2034-03-15T09:00:00Z'), 0)).toBe(122);
    expect(cycleAtOrAfter(base, new Date('2024-03-15T09:00:00Z'), 5)).toBe(5);
    expect(cycleAtOrAfter({ ...base, instalmentsTotal: 3 }, new Date('2024-05-01T00:00:00Z'), 0)).toBeNull();
  });

  it('an unscheduled schedule has no due times and no cycles', () => {
    const s = { ...base, interval: null };
    expect(validationField(() => dueAt(s, 0))).toBe('interval');
    expect(validationField(() => periodEnd(s, 0))).toBe('interval');
    expect(cycleExists(s, 0)).toBe(false);
    expect(nextDue(s, 0)).toBeNull();
    expect(cyclesDue(s, 0, new Date('2030-01-01T00:00:00Z'), 10)).toEqual([]);
    expect(cycleAtOrAfter(s, new Date('2030-01-01T00:00:00Z'), 0)).toBeNull();
  });

  it('refuses bad cycle numbers, limits, intervals, zones and anchors', () => {
    expect(validationField(() => dueAt({ ...base, interval: { unit: 'month', count: 0 } }, 1))).toBe(
      'interval',
    );
    expect(validationField(() => dueAt({ ...base, interval: { unit: 'month', count: 1.5 } }, 1))).toBe(
      'interval',
    );
    expect(validationField(() => dueAt({ ...base, timezone: 'Nowhere/Special' }, 1))).toBe('timezone');
    expect(validationField(() => dueAt({ ...base, anchorAt: new Date(Number.NaN) }, 1))).toBe('anchorAt');
    expect(validationField(() => dueAt(base, -1))).toBe('cycle');
    expect(validationField(() => dueAt(base, 1.5))).toBe('cycle');
    expect(validationField(() => cyclesDue(base, 0, new Date(), -1))).toBe('limit');
  });
});

describe('firstCycleAt', () => {
  const startAt = new Date('2024-06-10T15:45:00Z');

  it('is the start, or the trial end when there is one', () => {
    expect(firstCycleAt({ startAt, timezone: 'Europe/London' }).toISOString()).toBe(startAt.toISOString());
    const trialEndAt = new Date('2024-06-24T15:45:00Z');
    expect(firstCycleAt({ startAt, trialEndAt, timezone: 'Europe/London' }).toISOString()).toBe(
      trialEndAt.toISOString(),
    );
    expect(firstCycleAt({ startAt, trialEndAt: null, timezone: 'UTC' }).toISOString()).toBe(
      startAt.toISOString(),
    );
  });

  it('applies a local charge time on the local date of the start or trial end', () => {
    expect(firstCycleAt({ startAt, timezone: 'Europe/London', localTime: '09:00' }).toISOString()).toBe(
      '2024-06-10T08:00:00.000Z',
    );
    // 22:30 UTC on the 10th is already the 11th in Kolkata.
    const late = new Date('2024-06-10T22:30:00Z');
    expect(firstCycleAt({ startAt: late, timezone: 'Asia/Kolkata', localTime: '09:00' }).toISOString()).toBe(
      '2024-06-11T03:30:00.000Z',
    );
    const trialEndAt = new Date('2024-12-01T12:00:00Z');
    expect(
      firstCycleAt({ startAt, trialEndAt, timezone: 'America/New_York', localTime: '10:15' }).toISOString(),
    ).toBe('2024-12-01T15:15:00.000Z');
  });

  it('a charge time inside the spring-forward gap moves to the end of the gap', () => {
    const at = firstCycleAt({
      startAt: new Date('2024-03-10T12:00:00Z'),
      timezone: 'America/New_York',
      localTime: '02:30',
    });
    expect(at.toISOString()).toBe('2024-03-10T07:00:00.000Z');
  });

  it.each([
    [{ startAt, timezone: 'Nowhere/Special' }, 'timezone'],
    [{ startAt, timezone: 'UTC', localTime: '9:00' }, 'localTime'],
    [{ startAt, timezone: 'UTC', localTime: '24:00' }, 'localTime'],
    [{ startAt, timezone: 'UTC', localTime: '12:60' }, 'localTime'],
    [{ startAt, timezone: 'UTC', trialEndAt: new Date('2024-06-01T00:00:00Z') }, 'trialEndAt'],
    [{ startAt: new Date(Number.NaN), timezone: 'UTC' }, 'startAt'],
  ])('refuses %j naming %s', (opts, field) => {
    expect(validationField(() => firstCycleAt(opts))).toBe(field);
  });
});

// Property tests. Zones: no DST, DST both hemispheres, half-hour DST (Lord Howe), 45-minute
// offsets (Chatham), half-hour offsets (Kolkata, St John's), DST at midnight (Havana, Santiago).
const ZONES = [
  'UTC',
  'Europe/London',
  'Europe/Berlin',
  'America/New_York',
  'America/Los_Angeles',
  'America/St_Johns',
  'America/Sao_Paulo',
  'America/Santiago',
  'America/Havana',
  'Asia/Kolkata',
  'Asia/Tehran',
  'Asia/Tokyo',
  'Australia/Sydney',
  'Australia/Lord_Howe',
  'Pacific/Chatham',
  'Pacific/Auckland',
];

// A failing property shrinks by re-running whole chains; cap it so a failure reports well inside
// the test timeout instead of timing out.
const PROPERTY_SEED = Number(process.env.REBILL_PROPERTY_SEED ?? 20_261_205);
const SHRINK_BUDGET = { interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true } as const;

const TEN_YEARS_MS = 3653 * 86_400_000;
const AVERAGE_DAYS = { day: 1, week: 7, month: 30.44, year: 365.25 } as const;

const intervalArb: fc.Arbitrary<Interval> = fc.oneof(
  fc.record({ unit: fc.constant('day' as const), count: fc.noBias(fc.integer({ min: 1, max: 60 })) }),
  fc.record({ unit: fc.constant('week' as const), count: fc.noBias(fc.integer({ min: 1, max: 8 })) }),
  fc.record({ unit: fc.constant('month' as const), count: fc.noBias(fc.integer({ min: 1, max: 24 })) }),
  fc.record({ unit: fc.constant('year' as const), count: fc.noBias(fc.integer({ min: 1, max: 3 })) }),
);

/** Anchors biased to the small hours (where DST transitions live) and to month ends. */
const scheduleArb: fc.Arbitrary<Schedule> = fc
  .record({
    zone: fc.constantFrom(...ZONES),
    year: fc.integer({ min: 1975, max: 2090 }),
    month: fc.integer({ min: 0, max: 11 }),
    day: fc.oneof(fc.integer({ min: 1, max: 31 }), fc.integer({ min: 28, max: 31 })),
    hour: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 23 })),
    minute: fc.constantFrom(0, 15, 30, 45, 59),
    second: fc.integer({ min: 0, max: 59 }),
    interval: intervalArb,
    anchorCycle: fc.integer({ min: 0, max: 5 }),
  })
  .map(({ zone, year, month, day, hour, minute, second, interval, anchorCycle }) => {
    // Any instant is a valid anchor; subtracting the zone's offset just puts its local time
    // near the chosen hour so gaps and overlaps come up often.
    const guess = Date.UTC(year, month, day, hour, minute, second);
    const anchorAt = new Date(guess - (localWall(guess, zone) - guess));
    return { interval, timezone: zone, anchorAt, anchorCycle };
  });

/** The wall-clock time cycle `cycle` should show, computed with plain Date.UTC arithmetic. */
function expectedWall(s: Schedule, cycle: number): number {
  const a = new Date(localWall(s.anchorAt.getTime(), s.timezone));
  const steps = (cycle - s.anchorCycle) * s.interval!.count;
  const time = [a.getUTCHours(), a.getUTCMinutes(), a.getUTCSeconds(), a.getUTCMilliseconds()] as const;
  if (s.interval!.unit === 'day' || s.interval!.unit === 'week') {
    const days = steps * (s.interval!.unit === 'week' ? 7 : 1);
    return Date.UTC(a.getUTCFullYear(), a.getUTCMonth(), a.getUTCDate() + days, ...time);
  }
  const months = a.getUTCFullYear() * 12 + a.getUTCMonth() + steps * (s.interval!.unit === 'year' ? 12 : 1);
  const year = Math.floor(months / 12);
  const month = months - year * 12;
  const monthLength = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return Date.UTC(year, month, Math.min(a.getUTCDate(), monthLength), ...time);
}

const dateOf = (wall: number): string => new Date(wall).toISOString().slice(0, 10);

function cyclesFor(s: Schedule): number {
  return (
    s.anchorCycle +
    Math.ceil(TEN_YEARS_MS / 86_400_000 / (AVERAGE_DAYS[s.interval!.unit] * s.interval!.count)) +
    1
  );
}

/**
 * Walks cycles 0..last of `s` and checks every due time against the oracle. Returns how many
 * fell in a DST gap and how many in an overlap, so tests can show the rules were exercised.
 */
function checkChain(s: Schedule, last = cyclesFor(s)): { gaps: number; overlaps: number } {
  const zone = s.timezone;
  let previous = Number.NEGATIVE_INFINITY;
  let gaps = 0;
  let overlaps = 0;
  for (let cycle = 0; cycle <= last; cycle++) {
    const due = dueAt(s, cycle).getTime();
    // (a) strictly increasing: two cycles never share a due time or swap order.
    expect(due).toBeGreaterThan(previous);
    previous = due;
    if (cycle === s.anchorCycle) {
      expect(due).toBe(s.anchorAt.getTime());
      continue;
    }
    const wall = expectedWall(s, cycle);
    const shown = localWall(due, zone);
    // (b) no skipped cycle: the local date is exactly `steps` intervals from the anchor's,
    // clamped to the month's length (all these zones' gaps stay within one date).
    expect(dateOf(shown)).toBe(dateOf(wall));
    const nearbyOffsets = new Set([offsetAt(due - 86_400_000, zone), offsetAt(due + 86_400_000, zone)]);
    if (shown === wall) {
      // (c) same wall-clock time, and the first instant showing it (overlap rule).
      for (const offset of nearbyOffsets) {
        const other = wall - offset;
        if (other !== due && localWall(other, zone) === wall) {
          expect(other).toBeGreaterThan(due);
          overlaps++;
        }
      }
    } else {
      // Inside a gap: no instant shows `wall`, and `due` is the first instant after it.
      for (const offset of nearbyOffsets) expect(localWall(wall - offset, zone)).not.toBe(wall);
      expect(offsetAt(due - 1, zone)).not.toBe(offsetAt(due, zone));
      expect(localWall(due - 1, zone)).toBeLessThan(wall);
      expect(shown).toBeGreaterThan(wall);
      gaps++;
    }
  }
  return { gaps, overlaps };
}

describe('calendar properties over 10 years of cycles', () => {
  it('no doubled cycle, no skipped cycle, local time kept except in a DST gap', () => {
    let gaps = 0;
    let overlaps = 0;
    fc.assert(
      fc.property(scheduleArb, (s) => {
        const seen = checkChain(s);
        gaps += seen.gaps;
        overlaps += seen.overlaps;
      }),
      // Seeded: the count below is about this sample, and a random one missed every DST rule
      // once in a few hundred runs. REBILL_PROPERTY_SEED explores other samples.
      { numRuns: 100, seed: PROPERTY_SEED, ...SHRINK_BUDGET },
    );
    // The anchors lean on the small hours so the DST rules are actually reached.
    expect(gaps + overlaps).toBeGreaterThan(0);
  });

  it.each([
    // zone, anchor, gap days and overlap days over 10 years of daily cycles
    ['Europe/London', '2015-01-01T01:30:00Z', 10, 10],
    ['America/New_York', '2015-01-01T06:30:00Z', 0, 10], // 01:30 local: overlaps only
    ['America/New_York', '2015-01-01T07:30:00Z', 10, 0], // 02:30 local: gaps only
    ['Australia/Lord_Howe', '2015-01-01T15:15:00Z', 10, 0], // 02:15 local: in the 30-minute gap
  ] as const)(
    'daily in %s from %s for 10 years: %i gap days, %i overlap days',
    (zone, anchor, gaps, overlaps) => {
      const s: Schedule = {
        interval: { unit: 'day', count: 1 },
        timezone: zone,
        anchorAt: new Date(anchor),
        anchorCycle: 0,
      };
      expect(checkChain(s, 3652)).toEqual({ gaps, overlaps });
    },
  );

  it('cycles end at instalmentsTotal and endAt, and cyclesDue lists exactly the existing due ones', () => {
    fc.assert(
      fc.property(
        scheduleArb,
        fc.option(fc.integer({ min: 1, max: 40 })),
        fc.option(fc.integer({ min: 0, max: 40 })),
        fc.integer({ min: 0, max: 45 }),
        (base, instalmentsTotal, endCycle, asOfCycle) => {
          const endAt = endCycle === null ? null : new Date(dueAt(base, endCycle).getTime() + 1);
          const s = { ...base, instalmentsTotal, endAt };
          const asOf = dueAt(s, asOfCycle);
          const expected: number[] = [];
          for (let cycle = 0; cycle <= 45; cycle++) {
            const exists =
              (instalmentsTotal === null || cycle < instalmentsTotal) &&
              (endCycle === null || cycle <= endCycle);
            expect(cycleExists(s, cycle)).toBe(exists);
            expect(nextDue(s, cycle)?.getTime() ?? null).toBe(exists ? dueAt(s, cycle).getTime() : null);
            if (exists && cycle <= asOfCycle) expected.push(cycle);
          }
          expect(cyclesDue(s, 0, asOf, 1000)).toEqual(expected);
          expect(cyclesDue(s, 0, asOf, 2)).toEqual(expected.slice(0, 2));
        },
      ),
      { numRuns: 100, ...SHRINK_BUDGET },
    );
  });

  it('cycleAtOrAfter agrees with a linear scan', () => {
    fc.assert(
      fc.property(
        scheduleArb,
        fc.integer({ min: 0, max: 3 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (s, from, f) => {
          const last = from + 40;
          const at = new Date(
            dueAt(s, from).getTime() -
              86_400_000 +
              Math.floor(f * (dueAt(s, last).getTime() - dueAt(s, from).getTime())),
          );
          let expected = from;
          while (dueAt(s, expected).getTime() < at.getTime()) expected++;
          expect(cycleAtOrAfter(s, at, from)).toBe(expected);
        },
      ),
      { numRuns: 100, ...SHRINK_BUDGET },
    );
  });
});
