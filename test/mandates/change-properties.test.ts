import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listChanges, updateMandate } from '../../src/billing/mandates/changes.ts';
import { forecast } from '../../src/billing/mandates/forecast.ts';
import { createMandate, getMandate } from '../../src/billing/mandates/index.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { num } from '../../src/db/values.ts';
import { RebillError } from '../../src/errors.ts';
import { DAY } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * Random mandates of every intent, random sequences of changes (amount, interval, anchor, end,
 * settle mode, every proration and effective mode) interleaved with runs against the sandbox, on
 * a pinned clock. Whatever was accepted or refused: no charge above REBILL_MAX_AMOUNT; an
 * instalment plan charges its total; every cycle is billed on the terms of the last change
 * effective by its due instant, and no change takes effect before it was answered; credit is
 * never negative; and the forecast equals what the runs then charge.
 */
const PROPERTY_SEED = Number(process.env.REBILL_PROPERTY_SEED ?? 20_261_205);
const CEILING = 10_000_000; // 100,000.00 GBP, the default REBILL_MAX_AMOUNT
const HOUR = 3_600_000;

type Step =
  | { kind: 'run'; after: number }
  | { kind: 'change'; after: number; body: Record<string, unknown>; anchorShift: number | null };

const amountArb = fc.oneof(
  fc.integer({ min: 100, max: 50_000 }),
  fc.integer({ min: CEILING - 100_000, max: CEILING }),
);

const changeArb: fc.Arbitrary<Step> = fc
  .record(
    {
      after: fc.integer({ min: 1, max: 10 * 24 }).map((h) => h * HOUR),
      amount: amountArb,
      interval: fc.constantFrom('1 day', '1 week', '2 weeks', '1 month', '3 months', '1 year'),
      // the anchor, in hours from the next due: up to about a year and a half either way
      anchorShift: fc.integer({ min: -13_000, max: 13_000 }),
      endDays: fc.integer({ min: 1, max: 400 }),
      settle: fc.constantFrom('full', 'none', 'partial', 'partial%'),
      proration: fc.constantFrom(undefined, 'none', 'charge', 'credit'),
      effective: fc.constantFrom(undefined, 'now', 'next_cycle', 'instant'),
      instantDays: fc.integer({ min: 1, max: 60 }),
    },
    { requiredKeys: ['after', 'proration', 'effective', 'instantDays'] },
  )
  .map(({ after, anchorShift, endDays, settle, instantDays, effective, ...rest }) => {
    const body: Record<string, unknown> = {};
    if (rest.amount !== undefined) body.amount = rest.amount;
    if (rest.interval !== undefined) body.interval = rest.interval;
    if (endDays !== undefined) body.endDays = endDays;
    if (settle === 'partial%') Object.assign(body, { settleMode: 'partial', settlePercent: 50 });
    else if (settle !== undefined) body.settleMode = settle;
    if (rest.proration !== undefined) body.proration = rest.proration;
    if (effective === 'instant') body.instantDays = instantDays;
    else if (effective !== undefined) body.effective = effective;
    return { kind: 'change' as const, after, body, anchorShift: anchorShift ?? null };
  });

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  changeArb,
  fc.integer({ min: 1, max: 40 * 24 }).map((h) => ({ kind: 'run' as const, after: h * HOUR })),
);

const mandateArb = fc.record({
  intent: fc.constantFrom('subscription', 'instalment', 'unscheduled'),
  amount: amountArb,
  interval: fc.constantFrom('1 day', '1 week', '1 month'),
  instalments: fc.integer({ min: 2, max: 6 }),
  backfillDays: fc.integer({ min: 0, max: 40 }),
  /** Billed when created, or left with its first cycles due. */
  billed: fc.boolean(),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 8 }),
});

describe('mandate changes (property)', () => {
  let w: World;
  let n = 0;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  const run = async (t: number, mandateId: number) =>
    runBilling(await w.app(new Date(t)), { asOf: new Date(t), trigger: 'test', mandateId });

  it('no charge above the ceiling, instalment totals kept, no change reaches back, credit >= 0, forecast = runs', {
    timeout: 120_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(mandateArb, async (g) => {
        const t0 = Date.parse('2027-03-01T09:00:00Z');
        const start = t0 - g.backfillDays * DAY;
        const ref = `prop-${++n}`;
        const app0 = await w.app(new Date(t0));
        const total = g.amount * g.instalments;
        const m = await createMandate(app0, {
          customerRef: ref,
          intent: g.intent,
          currency: 'GBP',
          narrative: 'Property',
          start: new Date(start).toISOString(),
          credential: { link: (await w.verify()).href },
          ...(g.intent === 'instalment'
            ? { totalAmount: Math.min(total, CEILING), instalments: g.instalments, backfill: true }
            : { amount: g.amount, backfill: g.backfillDays > 0 }),
          ...(g.intent === 'unscheduled' ? {} : { interval: g.interval }),
        });
        const initial = m.amount;
        const planned = m.intent === 'instalment' ? Math.min(total, CEILING) : 0;
        /** Accepted amount changes: when answered, and the terms from when. */
        const accepted: { answeredAt: number; effectiveAt: number; amount: number; id: number | null }[] = [];
        let now = t0;
        if (g.billed) await run(now, m.id);
        for (const s of g.steps) {
          now += s.after;
          if (s.kind === 'run') {
            await run(now, m.id);
            continue;
          }
          const cur = await getMandate(w.t.database, m.id);
          const { endDays, instantDays, ...body } = s.body as Record<string, unknown> & {
            endDays?: number;
            instantDays?: number;
          };
          if (endDays !== undefined) body.end = new Date(now + endDays * DAY).toISOString();
          if (instantDays !== undefined) body.effective = new Date(now + instantDays * DAY).toISOString();
          if (s.anchorShift !== null && cur.nextDueAt)
            body.billingAnchor = new Date(Date.parse(cur.nextDueAt) + s.anchorShift * HOUR).toISOString();
          try {
            const out = await updateMandate(await w.app(new Date(now)), m.id, body);
            const effectiveAt = Date.parse(out.change.effectiveAt);
            // a change never takes effect before it was answered
            if (effectiveAt < now) return false;
            if (body.amount !== undefined)
              accepted.push({
                answeredAt: now,
                effectiveAt,
                amount: body.amount as number,
                id: out.change.id,
              });
          } catch (err) {
            if (!(err instanceof RebillError) || ![400, 409].includes(err.httpStatus)) throw err;
          }
        }
        // The forecast from here on equals what runs at each predicted instant then charge.
        await run(now, m.id);
        const from = now + 1;
        const to = from + 35 * DAY;
        const app = await w.app(new Date(from));
        const predicted = (await forecast(app, { from: new Date(from), to: new Date(to), mandateId: m.id }))
          .items;
        for (const t of [...new Set(predicted.map((p) => Date.parse(p.dueAt)))].sort((a, b) => a - b))
          await run(t, m.id);
        await run(to - 1, m.id);
        const rows = await w.t.database.rows<{
          kind: string;
          amount: unknown;
          credit_applied: unknown;
          state: string;
          due_at: Date;
        }>(
          sql`select kind, amount, credit_applied, state, due_at from charges where mandate_id = ${m.id} order by due_at, id`,
        );
        const charges = rows.map((r) => ({
          kind: r.kind,
          amount: num(r.amount),
          credit: num(r.credit_applied),
          state: r.state,
          dueAt: r.due_at.getTime(),
        }));
        const actual = charges
          .filter((c) => c.dueAt >= from && c.dueAt < to && c.state !== 'skipped')
          .map((c) => `${c.kind} ${new Date(c.dueAt).toISOString()} ${c.amount}`);
        expect(actual.sort()).toEqual(predicted.map((p) => `${p.kind} ${p.dueAt} ${p.amount}`).sort());
        // No charge above the ceiling, at the gateway or in the database; no negative credit.
        const sent = w.sandbox
          .ledger()
          .filter((e) => e.op === 'authorize' && e.transactionReference?.startsWith(`rb-${m.id}-`));
        expect(sent.every((e) => (e.amount ?? 0) <= CEILING)).toBe(true);
        expect(charges.every((c) => c.amount <= CEILING && c.amount >= 0 && c.credit >= 0)).toBe(true);
        const after = await getMandate(w.t.database, m.id);
        expect(after.creditBalance).toBeGreaterThanOrEqual(0);
        // An instalment plan, run to its end, charged its total.
        if (m.intent === 'instalment' && after.status === 'completed') {
          const gross = charges
            .filter((c) => c.kind === 'cycle' || c.kind === 'proration')
            .reduce((sum, c) => sum + c.amount + c.credit, 0);
          expect(gross).toBe(planned);
        }
        // Every cycle is billed on the terms of the last amount change effective by its due
        // instant (scheduled ones only if a run applied them).
        if (m.intent === 'subscription') {
          const states = new Map((await listChanges(app, m.id)).items.map((c) => [c.id, c.state]));
          const terms = accepted
            .filter((a) => a.id === null || states.get(a.id) === 'applied')
            .sort((a, b) => a.effectiveAt - b.effectiveAt);
          for (const c of charges.filter((x) => x.kind === 'cycle')) {
            const last = terms.filter((a) => a.effectiveAt <= c.dueAt).at(-1);
            expect(c.amount + c.credit, `cycle due ${new Date(c.dueAt).toISOString()}`).toBe(
              last?.amount ?? initial,
            );
          }
        }
        return true;
      }),
      { numRuns: 15, seed: PROPERTY_SEED, interruptAfterTimeLimit: 90_000, markInterruptAsFailure: true },
    );
  });
});
