import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachCredential, showMandate } from '../../src/billing/mandates/index.ts';
import { listCharges, retryNow } from '../../src/billing/operator/charges.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { date, num } from '../../src/db/values.ts';
import { ADVICE_CODES, REFUSAL_CODES } from '../../src/domain/dunning/index.ts';
import type { Outcome } from '../../src/sandbox/server.ts';
import { at, DAY } from '../support/time.ts';
import { APIS, attach, authorizations, mandateFor, type Payer, payer } from '../support/v7.ts';
import { startWorld, type World } from '../support/world.ts';

describe.each(APIS)('dunning end to end against the sandbox (%s)', (api) => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  async function subscription(ref: string, start: string, p: Payer, interval = '1 month') {
    const app = await w.app(at(start));
    return mandateFor(app, w, p, {
      customerRef: ref,
      intent: 'subscription',
      amount: 2500,
      currency: 'GBP',
      narrative: 'Dunning test',
      interval,
      start: at(start),
    });
  }

  it('a soft decline is retried on schedule, recovers, and billing carries on (v6: on the newest link)', async () => {
    const v = await payer(w, api);
    const m = await subscription('soft-1', '2026-01-05T10:00:00Z', v);
    w.sandbox.script({ match: v.match, outcomes: [{ type: 'refuse', code: '51' }] });
    const app = await w.app(at('2026-01-05T10:00:00Z'));
    const r1 = await runBilling(app, { asOf: at('2026-01-05T11:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r1.counts).toMatchObject({ refused: 1, retryScheduled: 1 });
    expect(r1.refusals).toEqual([expect.objectContaining({ code: '51', decision: 'retry', count: 1 })]);
    const [charge] = (await listCharges(w.t.database, { mandateId: m.id })).items;
    expect(charge?.state).toBe('retry_scheduled');
    const retryAt = new Date(charge!.nextAttemptAt!);
    // first slot of the default schedule: a day after the refusal, plus at most two hours of jitter
    expect(retryAt.getTime() - at('2026-01-05T11:00:00Z').getTime()).toBeGreaterThanOrEqual(DAY);
    expect(retryAt.getTime() - at('2026-01-05T11:00:00Z').getTime()).toBeLessThanOrEqual(DAY + 2 * 3_600_000);
    expect(charge?.lastAttempt?.decisionReason).toMatch(/51/);
    // not before its time
    const early = await runBilling(app, {
      asOf: new Date(retryAt.getTime() - 60_000),
      trigger: 'test',
      mandateId: m.id,
    });
    expect(early.counts.attempted).toBe(0);
    const r2 = await runBilling(app, { asOf: retryAt, trigger: 'test', mandateId: m.id });
    expect(r2.counts.authorized).toBe(1);
    await runBilling(app, { asOf: at('2026-02-05T11:00:00Z'), trigger: 'test', mandateId: m.id });
    const auths = authorizations(w, m.id);
    expect(auths.map((e) => [e.transactionReference, e.outcome])).toEqual([
      [`rb-${m.id}-0-1`, 'refused'],
      [`rb-${m.id}-0-2`, 'authorized'],
      [`rb-${m.id}-1-1`, 'authorized'],
    ]);
    expect(auths.every((e) => !e.stale)).toBe(true);
    // v7: the retry and the next cycle carry the first payment's scheme reference too
    if (api === 'v7') expect(auths.every((e) => e.schemeReference === v.schemeReference)).toBe(true);
  });

  it('an expired card waits for new card details, then resumes on the new credential', async () => {
    const v = await payer(w, api);
    const m = await subscription('exp-1', '2026-03-01T10:00:00Z', v);
    w.sandbox.script({ match: v.match, outcomes: [{ type: 'refuse', code: '33' }] });
    const app = await w.app(at('2026-03-01T10:00:00Z'));
    const r1 = await runBilling(app, { asOf: at('2026-03-01T11:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r1.counts.needsNewCredential).toBe(1);
    let d = await showMandate(w.t.database, m.id);
    expect(d.status).toBe('needs_new_credential');
    expect(d.charges[0]?.state).toBe('needs_new_credential');
    // nothing is sent while it waits, however long
    const idle = await runBilling(app, {
      asOf: at('2026-04-15T00:00:00Z'),
      trigger: 'test',
      mandateId: m.id,
    });
    expect(idle.counts.attempted).toBe(0);
    const fresh = await payer(w, api);
    const app2 = await w.app(at('2026-04-15T00:00:00Z'));
    await attachCredential(app2, m.id, fresh.credential);
    await attach(w, m.id, fresh);
    d = await showMandate(w.t.database, m.id);
    expect(d.status).toBe('active');
    const r2 = await runBilling(app2, { asOf: at('2026-04-15T00:00:01Z'), trigger: 'test', mandateId: m.id });
    expect(r2.counts.authorized).toBeGreaterThanOrEqual(1);
    const viaNew = authorizations(w, m.id).slice(1);
    expect(viaNew[0]?.transactionReference).toBe(`rb-${m.id}-0-2`);
    expect(viaNew[0]?.outcome).toBe('authorized');
    if (api === 'v6') expect(viaNew[0]?.chainId).toBe(fresh.match.chainId);
    else
      expect([viaNew[0]?.lastFour, viaNew[0]?.schemeReference]).toEqual([
        fresh.cardNumber!.slice(-4),
        fresh.schemeReference,
      ]);
  });

  it('MAC 03 stops the mandate and blocks the card: retry-now refuses with the reason', async () => {
    const v = await payer(w, api);
    const m = await subscription('mac03-1', '2026-05-01T10:00:00Z', v);
    w.sandbox.script({
      match: v.match,
      outcomes: [{ type: 'refuse', code: '79', adviceCode: '03' }],
    });
    const app = await w.app(at('2026-05-01T10:00:00Z'));
    const r = await runBilling(app, { asOf: at('2026-05-01T11:00:00Z'), trigger: 'test', mandateId: m.id });
    expect(r.counts.stopped).toBe(1);
    const d = await showMandate(w.t.database, m.id);
    expect(d.status).toBe('stopped');
    expect(d.credential.status).toBe('blocked');
    await expect(retryNow(app, d.charges[0]!.id)).rejects.toThrow(/blocked/);
    for (let day = 1; day <= 40; day += 3) {
      await runBilling(app, {
        asOf: new Date(at('2026-05-01T11:00:00Z').getTime() + day * DAY),
        trigger: 'test',
        mandateId: m.id,
      });
    }
    expect(authorizations(w, m.id)).toHaveLength(1);
  });

  it('over 60 simulated days, any refusal sequence on a shared card stays within the scheme rules', async () => {
    const codes = Object.keys(REFUSAL_CODES);
    const advice = Object.keys(ADVICE_CODES);
    const outcome: fc.Arbitrary<Outcome> = fc.oneof(
      { weight: 2, arbitrary: fc.constant<Outcome>({ type: 'authorize' }) },
      { weight: 5, arbitrary: fc.constantFrom(...codes).map((code): Outcome => ({ type: 'refuse', code })) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom(...codes), fc.constantFrom(...advice))
          .map(([code, adviceCode]): Outcome => ({ type: 'refuse', code, adviceCode })),
      },
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(outcome, { minLength: 10, maxLength: 40 }), async (outcomes) => {
        run++;
        const v = await payer(w, api);
        const start = new Date(Date.UTC(2027, 0, 1) + run * 200 * DAY);
        const ids: number[] = [];
        for (const k of [0, 1]) {
          // one customer, one card, two mandates: they share one credential and its ledger
          const m = await subscription(`prop-${run}`, start.toISOString(), v, k === 0 ? '1 week' : '10 days');
          ids.push(m.id);
        }
        w.sandbox.script({ match: v.match, outcomes });
        const app = await w.app(start);
        for (let day = 0; day <= 60; day++) {
          await runBilling(app, { asOf: new Date(start.getTime() + day * DAY + 3_600_000), trigger: 'test' });
        }
        const rows =
          await w.t.database.rows(sql`select a.attempted_at, a.attempt_no, a.state, a.refusal_code, a.advice_code, a.charge_id
            from attempts a join charges c on c.id = a.charge_id where c.mandate_id in (${ids[0]}, ${ids[1]})
            order by a.attempted_at, a.id`);
        const sent = rows.filter((r) => r.state !== 'error' && r.state !== 'not_found');
        const reattempts = sent
          .filter((r) => num(r.attempt_no) > 1)
          .map((r) => date(r.attempted_at).getTime());
        for (const t of reattempts) {
          expect(reattempts.filter((x) => x <= t && x > t - 30 * DAY).length).toBeLessThanOrEqual(15);
        }
        const blockAt = sent.find(
          (r) =>
            ['03', '21'].includes(String(r.advice_code)) ||
            REFUSAL_CODES[String(r.refusal_code)]?.visaCategory === 1,
        );
        if (blockAt) {
          const t = date(blockAt.attempted_at).getTime();
          expect(sent.filter((r) => date(r.attempted_at).getTime() > t)).toEqual([]);
        }
        for (const r of sent) {
          const wait = ADVICE_CODES[String(r.advice_code)]?.minWaitMs;
          if (!wait) continue;
          const t = date(r.attempted_at).getTime();
          const next = sent.find((x) => x.charge_id === r.charge_id && date(x.attempted_at).getTime() > t);
          if (next) expect(date(next.attempted_at).getTime() - t).toBeGreaterThanOrEqual(wait);
        }
      }),
      { numRuns: 5, seed: 20261121 },
    );
  }, 300_000);
});
