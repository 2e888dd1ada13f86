import { ValidationError } from '../errors.ts';
import { dueAt, type Interval, nextDue, type Schedule } from './calendar.ts';

/**
 * A mandate's billing plan, and what a change does to it: pure, so the change a run applies
 * and the forecast that predicts it are the same arithmetic.
 *
 * Proration is by time to the millisecond, in integer minor units, rounding half up. For a
 * change effective at `t` inside the current period `[prev, next)` (prev: when the last cycle
 * fell due, next: when the next one does) the unused share is `(next - t) / (next - prev)`:
 *  - amount, `charge`: `round((new - old) x share)` now, when positive, as a one-off charge;
 *  - amount, `credit`: `round((old - new) x share)`, when positive, becomes credit;
 *  - billing anchor moved later (`newNext > next`), `charge`: the days gained, priced in the
 *    period they fall in, of the plan after the change (its amount and interval):
 *    `round(amount x (newNext - next) / ((next + interval) - next))`;
 *  - billing anchor moved earlier, `credit`: the days lost, priced in the period they were paid
 *    for in, `round(amount x (next - newNext) / (next - prev))`.
 * The anchor moves at most one interval (of the plan after the change) either way from `next`,
 * so neither is ever more than one cycle's amount (proration or not: a year's move of a daily
 * plan is not a change, it is a new mandate). Outside a period (no cycle charged yet, or
 * effective at the next cycle) the share is 0.
 */
export interface Plan {
  amount: number;
  interval: Interval | null;
  timezone: string;
  anchorAt: Date;
  anchorCycle: number;
  endAt: Date | null;
  instalmentsTotal: number | null;
  lastInstalmentAmount: number | null;
  nextCycle: number;
  nextDueAt: Date | null;
  credit: number;
}

export interface Change {
  amount?: number | undefined;
  interval?: Interval | undefined;
  /** The next charge's instant: the calendar re-anchors there (day of month, local time). */
  billingAnchor?: Date | undefined;
  /** null: no end. */
  end?: Date | null | undefined;
}

export type Proration = 'none' | 'charge' | 'credit';

export interface Applied {
  plan: Plan;
  /** A one-off to charge now (minor units, 0: none). */
  oneOff: number;
  /** Credit added to the mandate (minor units). */
  credited: number;
  /** No cycle is left (an end before the next due). */
  completed: boolean;
}

export function scheduleOfPlan(p: Plan): Schedule {
  return {
    interval: p.interval,
    timezone: p.timezone,
    anchorAt: p.anchorAt,
    anchorCycle: p.anchorCycle,
    endAt: p.endAt,
    instalmentsTotal: p.instalmentsTotal,
  };
}

/** round(a x b / c) half up, for non-negative integers, exactly (the product passes 2^53). */
export function mulDivRound(a: number, b: number, c: number): number {
  if (c <= 0 || a <= 0 || b <= 0) return 0;
  const n = BigInt(a) * BigInt(b);
  const d = BigInt(c);
  return Number((2n * n + d) / (2n * d));
}

/** The current period `[prev, next)` in ms, or null before the first charge or without a next. */
export function currentPeriod(p: Plan): { prev: number; next: number } | null {
  if (!p.interval || p.nextDueAt === null || p.nextCycle <= 0) return null;
  const prev = dueAt(scheduleOfPlan(p), p.nextCycle - 1).getTime();
  const next = p.nextDueAt.getTime();
  return next > prev ? { prev, next } : null;
}

/** One interval before and after `next` on the calendar (day of month, local time, DST). */
function anchorBounds(
  interval: Interval,
  timezone: string,
  next: Date,
): { earliest: number; latest: number } {
  const s: Schedule = {
    interval,
    timezone,
    anchorAt: next,
    anchorCycle: 1,
    endAt: null,
    instalmentsTotal: null,
  };
  return { earliest: dueAt(s, 0).getTime(), latest: dueAt(s, 2).getTime() };
}

/**
 * The plan as it will stand at `t` if nothing else changes: the cycles due before `t` charged.
 * What a change scheduled for `t` is checked against when it is asked for.
 */
export function planAt(plan: Plan, t: Date): Plan {
  let p = plan;
  for (let guard = 0; guard < 100_000 && p.interval && p.nextDueAt && p.nextDueAt < t; guard++)
    p = { ...p, nextCycle: p.nextCycle + 1, nextDueAt: nextDue(scheduleOfPlan(p), p.nextCycle + 1) };
  return p;
}

/**
 * What an instalment plan has left to charge from its next cycle on: its remaining instalments
 * (those its end leaves), less credit, plus a one-off. Null for other plans.
 */
export function leftToCharge(p: Plan, oneOff = 0): number | null {
  if (p.instalmentsTotal === null) return null;
  const s = scheduleOfPlan(p);
  let sum = oneOff - p.credit;
  for (let c = p.nextCycle; c < p.instalmentsTotal; c++)
    if (p.nextDueAt !== null && nextDue(s, c) !== null)
      sum +=
        c === p.instalmentsTotal - 1 && p.lastInstalmentAmount !== null ? p.lastInstalmentAmount : p.amount;
  return sum;
}

/** Apply `change` effective at `t`. Amount first, then interval, then billing anchor, then end. */
export function applyChange(plan: Plan, change: Change, t: Date, proration: Proration): Applied {
  let p: Plan = { ...plan };
  let oneOff = 0;
  let credited = 0;
  const period = currentPeriod(p);
  const at = t.getTime();
  if (change.amount !== undefined && change.amount !== p.amount) {
    if (period && proration !== 'none') {
      const unused = Math.min(Math.max(period.next - at, 0), period.next - period.prev);
      const span = period.next - period.prev;
      if (proration === 'charge' && change.amount > p.amount)
        oneOff += mulDivRound(change.amount - p.amount, unused, span);
      if (proration === 'credit' && change.amount < p.amount)
        credited += mulDivRound(p.amount - change.amount, unused, span);
    }
    p.amount = change.amount;
  }
  if (change.interval !== undefined && p.nextDueAt !== null) {
    // Re-anchored at the next charge: it keeps its instant, the ones after follow the new interval.
    p = { ...p, interval: change.interval, anchorAt: p.nextDueAt, anchorCycle: p.nextCycle };
  }
  if (change.billingAnchor !== undefined && p.interval && p.nextDueAt !== null) {
    const newNext = change.billingAnchor.getTime();
    const next = p.nextDueAt.getTime();
    const around = anchorBounds(p.interval, p.timezone, p.nextDueAt);
    if (newNext < around.earliest || newNext > around.latest)
      throw new ValidationError(
        'billingAnchor',
        `moves the next charge at most one interval (${p.interval.count} ${p.interval.unit}) either way in one change: between ${new Date(around.earliest).toISOString()} and ${new Date(around.latest).toISOString()}`,
      );
    if (period && proration === 'charge' && newNext > next)
      oneOff += mulDivRound(p.amount, newNext - next, around.latest - next);
    if (period && proration === 'credit' && newNext < next)
      credited += mulDivRound(p.amount, next - newNext, period.next - period.prev);
    p = { ...p, anchorAt: change.billingAnchor, anchorCycle: p.nextCycle, nextDueAt: change.billingAnchor };
  }
  if (change.end !== undefined) p.endAt = change.end;
  let completed = false;
  if (p.interval && p.nextDueAt !== null) {
    p.nextDueAt = nextDue(scheduleOfPlan(p), p.nextCycle);
    completed = p.nextDueAt === null;
  }
  p.credit += credited;
  return { plan: p, oneOff, credited, completed };
}
