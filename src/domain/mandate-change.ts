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
 *  - billing anchor moved later (`newNext > next`), `charge`: the days gained,
 *    `round(amount x (newNext - next) / (next - prev))`;
 *  - billing anchor moved earlier, `credit`: the days lost, `round(amount x (next - newNext) / (next - prev))`.
 * Outside a period (no cycle charged yet, or effective at the next cycle) the share is 0.
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
  if (change.billingAnchor !== undefined && p.interval) {
    const newNext = change.billingAnchor.getTime();
    if (period && p.nextDueAt !== null && proration !== 'none') {
      const next = p.nextDueAt.getTime();
      const span = period.next - period.prev;
      if (proration === 'charge' && newNext > next) oneOff += mulDivRound(p.amount, newNext - next, span);
      if (proration === 'credit' && newNext < next) credited += mulDivRound(p.amount, next - newNext, span);
    }
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
