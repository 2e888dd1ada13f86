import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ADVICE_CODES,
  type AttemptKind,
  type CardLedger,
  canAttempt,
  classifyRefusal,
  DAY,
  DEFAULT_DUNNING_CONFIG,
  type DunningConfig,
  decide,
  decideBeforeSend,
  dunningConfigFrom,
  earliestAllowed,
  emptyLedger,
  HOUR,
  MINUTE,
  REFUSAL_CODES,
} from '../../src/domain/dunning/index.ts';

const T0 = new Date('2026-01-01T00:00:00.000Z').getTime();
const at = (ms: number) => new Date(T0 + ms);

describe('canAttempt and earliestAllowed', () => {
  const config = DEFAULT_DUNNING_CONFIG;

  it('allows 15 reattempts in a 30-day window, not a 16th, until the oldest is 30 days old', () => {
    const reattempts = Array.from({ length: 15 }, (_, i) => at(i * DAY));
    const ledger: CardLedger = { reattempts, declines: [], blocked: null };
    const now = at(15 * DAY);
    expect(canAttempt({ ...ledger, reattempts: reattempts.slice(1) }, now, config)).toEqual({ ok: true });
    const check = canAttempt(ledger, now, config);
    expect(check).toEqual({
      ok: false,
      reason: '15 reattempts on this card in 30 days (limit 15)',
      earliest: at(30 * DAY),
    });
    // Half-open window: exactly 30 days after the oldest, it no longer counts.
    expect(canAttempt(ledger, at(30 * DAY), config)).toEqual({ ok: true });
    expect(canAttempt(ledger, at(30 * DAY - 1), config).ok).toBe(false);
    expect(earliestAllowed(ledger, now, config)).toEqual(at(30 * DAY));
    // A first attempt of a charge is not a reattempt.
    expect(canAttempt(ledger, now, config, 'first')).toEqual({ ok: true });
  });

  it('limits declines per 24 hours for first attempts too', () => {
    const declines = Array.from({ length: 10 }, (_, i) => at(i * HOUR));
    const ledger: CardLedger = { reattempts: [], declines, blocked: null };
    const check = canAttempt(ledger, at(10 * HOUR), config, 'first');
    expect(check).toMatchObject({ ok: false, earliest: at(24 * HOUR) });
    expect(earliestAllowed(ledger, at(10 * HOUR), config, 'first')).toEqual(at(24 * HOUR));
  });

  it('combines both limits until both are satisfied', () => {
    // The 30-day window frees at day 30; at that instant 10 declines sit in the last 24 h.
    const reattempts = Array.from({ length: 15 }, () => at(0));
    const declines = Array.from({ length: 10 }, (_, i) => at(30 * DAY - 10 * MINUTE + i * MINUTE));
    const ledger: CardLedger = { reattempts, declines, blocked: null };
    expect(earliestAllowed(ledger, at(DAY), config)).toEqual(at(31 * DAY - 10 * MINUTE));
  });

  it('nothing is ever allowed on a blocked credential', () => {
    const ledger: CardLedger = { reattempts: [], declines: [], blocked: { reason: 'MAC 03', at: at(0) } };
    expect(canAttempt(ledger, at(400 * DAY), config, 'first')).toMatchObject({ ok: false });
    expect(earliestAllowed(ledger, at(0), config)).toBeNull();
  });

  it('a zero reattempt budget allows first attempts only', () => {
    const zero = dunningConfigFrom({ maxReattemptsPer30Days: 0 });
    expect(earliestAllowed(emptyLedger(), at(0), zero)).toBeNull();
    expect(earliestAllowed(emptyLedger(), at(0), zero, 'first')).toEqual(at(0));
  });
});

/**
 * A card shared by several mandates over 60 simulated days. Each attempt's outcome is drawn from
 * the table (plus raw codes, gateway errors and successes); the simulation does what a billing
 * service would do with the policy: check before sending, record the attempt, decide, block the
 * credential when told, and perform the retry at retryAt.
 */
type Outcome =
  | { kind: 'success' }
  | { kind: 'gateway' }
  | { kind: 'refusal'; code: string; adviceCode: string | null };

interface Charge {
  id: number;
  intent: 'subscription' | 'instalment' | 'unscheduled';
  firstRefusedAt: Date | null;
  retriesSoFar: number;
  gatewayErrors: number;
  /** Earliest instant the next attempt may happen because of a MAC wait. */
  notBefore: number;
}

interface Event {
  time: number;
  charge: Charge;
  kind: AttemptKind;
}

const codeArb = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...Object.keys(REFUSAL_CODES)) },
  { weight: 4, arbitrary: fc.constantFrom('51', '5', '61', '91', '96', '19', '28') },
  { weight: 1, arbitrary: fc.constantFrom('N7', '05', 'ABCDEFGHIJ0123456789') },
);
const adviceArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  { weight: 3, arbitrary: fc.constantFrom(...Object.keys(ADVICE_CODES)) },
  { weight: 3, arbitrary: fc.constantFrom('02', '24', '25', '26', '27', '28', '29', '30') },
);
const outcomeArb: fc.Arbitrary<Outcome> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'success' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'gateway' as const }) },
  {
    weight: 10,
    arbitrary: fc.record({ kind: fc.constant('refusal' as const), code: codeArb, adviceCode: adviceArb }),
  },
);
const mandateArb = fc.record({
  intent: fc.constantFrom('subscription' as const, 'instalment' as const, 'unscheduled' as const),
  startMs: fc.integer({ min: 0, max: 20 * DAY }),
  periodMs: fc.constantFrom(DAY, 3 * DAY, 7 * DAY, 14 * DAY, 30 * DAY),
});
type Mandate = { intent: Charge['intent']; startMs: number; periodMs: number };

const configArb = fc.constantFrom<DunningConfig>(
  DEFAULT_DUNNING_CONFIG,
  // Aggressive policies stress the ledger: many retries, short gaps, a small declines cap.
  dunningConfigFrom({
    schedule: ['2h', '6h', '1d', '2d', '3d', '4d', '6d', '8d', '10d', '12d', '15d', '20d'],
    minRetryGap: '1h',
    maxReattemptsPer30Days: 40,
    maxDeclinesPer24h: 4,
  }),
  dunningConfigFrom({
    schedule: ['1h', '2h', '3h', '4h', '5h', '6h'],
    minRetryGap: '30m',
    maxReattemptsPer30Days: 6,
  }),
);

const HORIZON = 60 * DAY;

interface Record_ {
  time: number;
  kind: AttemptKind;
  chargeId: number;
}

function simulate(config: DunningConfig, mandates: Mandate[], outcomes: Outcome[]) {
  const attempts: Record_[] = [];
  const declines: number[] = [];
  let blocked: CardLedger['blocked'] = null;
  // Like a real ledger query: only the windows that matter (30 days of reattempts, 24 h of declines).
  const ledgerNow = (nowMs: number): CardLedger => ({
    reattempts: attempts
      .filter((a) => a.kind === 'reattempt' && a.time > nowMs - 31 * DAY)
      .map((a) => new Date(T0 + a.time)),
    declines: declines.filter((d) => d > nowMs - 2 * DAY).map((d) => new Date(T0 + d)),
    blocked,
  });
  const queue: Event[] = [];
  let nextId = 1;
  for (const m of mandates) {
    for (let t = m.startMs; t < HORIZON; t += m.periodMs) {
      const charge: Charge = {
        id: nextId++,
        intent: m.intent,
        firstRefusedAt: null,
        retriesSoFar: 0,
        gatewayErrors: 0,
        notBefore: 0,
      };
      queue.push({ time: t, charge, kind: 'first' });
    }
  }
  let o = 0;
  const violations: string[] = [];
  let blockedAt: number | null = null;
  let steps = 0;
  while (queue.length > 0) {
    if (++steps > 20_000) throw new Error('simulation does not terminate');
    const event = takeEarliest(queue);
    if (event.time >= HORIZON) break;
    const now = new Date(T0 + event.time);
    const { charge } = event;
    const pre = decideBeforeSend({
      now,
      kind: event.kind,
      intent: charge.intent,
      ledger: ledgerNow(event.time),
      config,
      firstRefusedAt: charge.firstRefusedAt,
    });
    if (pre.action === 'defer') {
      if (pre.until.getTime() <= now.getTime()) violations.push(`deferred to the past: ${pre.reason}`);
      queue.push({ ...event, time: pre.until.getTime() - T0 });
      continue;
    }
    if (pre.action !== 'send') continue;

    // "Perform" the attempt.
    if (event.time < charge.notBefore) violations.push(`charge ${charge.id} attempted before its MAC wait`);
    if (blockedAt !== null)
      violations.push(`attempt at ${now.toISOString()} after the credential was blocked`);
    attempts.push({ time: event.time, kind: event.kind, chargeId: charge.id });
    const outcome = outcomes[o++ % outcomes.length]!;
    if (outcome.kind === 'success') continue;
    if (outcome.kind === 'refusal') declines.push(event.time);
    charge.firstRefusedAt ??= now;
    const decision = decide({
      refusal: outcome.kind === 'gateway' ? { gatewayError: true } : outcome,
      intent: charge.intent,
      now,
      chargeId: charge.id,
      firstRefusedAt: charge.firstRefusedAt,
      retriesSoFar: charge.retriesSoFar,
      gatewayErrorsSoFar: charge.gatewayErrors,
      ledger: ledgerNow(event.time),
      config,
    });
    if (decision.blocksCredential && !blocked) {
      blocked = { reason: decision.reason, at: now };
      blockedAt = event.time;
    }
    if (outcome.kind === 'refusal') {
      const c = classifyRefusal(outcome.code, outcome.adviceCode, config);
      if (c.blocksCredential && decision.action === 'retry')
        violations.push(`retry planned after ${decision.reason}`);
      charge.notBefore = event.time + c.minWaitMs;
    }
    if (decision.action !== 'retry') continue;
    // decide() never plans a retry the ledger would refuse at that instant.
    const check = canAttempt(ledgerNow(event.time), decision.retryAt, config);
    if (!check.ok)
      violations.push(`retry planned at ${decision.retryAt.toISOString()} refused: ${check.reason}`);
    if (decision.retryAt.getTime() <= now.getTime())
      violations.push(`retry not in the future: ${decision.reason}`);
    if (outcome.kind === 'gateway') {
      charge.gatewayErrors++;
    } else {
      charge.gatewayErrors = 0;
      charge.retriesSoFar++;
    }
    queue.push({ time: decision.retryAt.getTime() - T0, charge, kind: 'reattempt' });
  }
  return { attempts, declines, violations, blockedAt };
}

function takeEarliest(queue: Event[]): Event {
  let best = 0;
  for (let i = 1; i < queue.length; i++) {
    const e = queue[i]!;
    const b = queue[best]!;
    if (e.time < b.time || (e.time === b.time && e.charge.id < b.charge.id)) best = i;
  }
  return queue.splice(best, 1)[0]!;
}

/** Largest number of times in any half-open window (end - windowMs, end]. */
function maxInAnyWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let max = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[start]! <= sorted[end]! - windowMs) start++;
    max = Math.max(max, end - start + 1);
  }
  return max;
}

describe('a card over 60 simulated days', () => {
  it('stays inside the scheme limits whatever the refusals', () => {
    fc.assert(
      fc.property(
        configArb,
        fc.array(mandateArb, { minLength: 1, maxLength: 4 }),
        fc.array(outcomeArb, { minLength: 1, maxLength: 120 }),
        (config, mandates, outcomes) => {
          const { attempts, declines, violations } = simulate(config, mandates, outcomes);
          expect(violations).toEqual([]);
          const reattempts = attempts.filter((a) => a.kind === 'reattempt').map((a) => a.time);
          // Windows ending at each attempt are the worst case for "any 30-day window".
          expect(maxInAnyWindow(reattempts, 30 * DAY)).toBeLessThanOrEqual(
            Math.min(15, config.maxReattemptsPer30Days),
          );
          expect(maxInAnyWindow(declines, DAY)).toBeLessThanOrEqual(config.maxDeclinesPer24h);
        },
      ),
      { numRuns: 150, seed: 20260101 },
    );
  });

  it('makes no attempt after MAC 03/21 or a Visa category-1 code, on any mandate', () => {
    const blocking = fc.oneof(
      fc.record({
        kind: fc.constant('refusal' as const),
        code: fc.constantFrom(
          ...Object.entries(REFUSAL_CODES)
            .filter(([, r]) => r.visaCategory === 1)
            .map(([c]) => c),
        ),
        adviceCode: adviceArb,
      }),
      fc.record({
        kind: fc.constant('refusal' as const),
        code: codeArb,
        adviceCode: fc.constantFrom('03', '21'),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(mandateArb, { minLength: 2, maxLength: 4 }),
        fc.array(outcomeArb, { maxLength: 30 }),
        blocking,
        fc.array(outcomeArb, { minLength: 1, maxLength: 60 }),
        (mandates, before, block, after) => {
          const { attempts, blockedAt, violations } = simulate(DEFAULT_DUNNING_CONFIG, mandates, [
            ...before,
            block,
            ...after,
          ]);
          expect(violations).toEqual([]);
          if (attempts.length > before.length) {
            // The blocking refusal was delivered, so the block must have been recorded and held.
            expect(blockedAt).not.toBeNull();
            expect(attempts.length).toBe(before.length + 1);
            expect(attempts.every((a) => a.time <= blockedAt!)).toBe(true);
          }
        },
      ),
      { numRuns: 200, seed: 20260102 },
    );
  });

  it('never attempts before a MAC 02 or 24-30 wait has passed', () => {
    const waiting = fc.record({
      kind: fc.constant('refusal' as const),
      code: fc.constantFrom('51', '5', '61', '91', 'N7'),
      adviceCode: fc.constantFrom('02', '24', '25', '26', '27', '28', '29', '30'),
    });
    fc.assert(
      fc.property(
        configArb,
        fc.array(mandateArb, { minLength: 1, maxLength: 3 }),
        fc.array(waiting, { minLength: 1, maxLength: 40 }),
        (config, mandates, outcomes) => {
          const { attempts, violations } = simulate(config, mandates, outcomes);
          expect(violations).toEqual([]);
          // Every charge retried at least once must have waited: check the gap per charge.
          const byCharge = new Map<number, number[]>();
          for (const a of attempts) byCharge.set(a.chargeId, [...(byCharge.get(a.chargeId) ?? []), a.time]);
          for (const times of byCharge.values()) {
            for (let i = 1; i < times.length; i++)
              expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(HOUR);
          }
        },
      ),
      { numRuns: 60, seed: 20260103 },
    );
  });
});
