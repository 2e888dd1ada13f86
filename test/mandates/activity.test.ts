import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mandateActivity } from '../../src/billing/mandates/activity.ts';
import {
  cancelMandate,
  createMandate,
  pauseMandate,
  queueCharge,
  resumeMandate,
  undoCancelAtPeriodEnd,
} from '../../src/billing/mandates/index.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { listEvents } from '../../src/events/sequence.ts';
import { startWorld, type World } from '../support/world.ts';

const T0 = new Date('2027-03-01T09:00:00Z');

describe("a mandate's activity and the undo of a scheduled cancel", () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => {
    await w?.close();
  });

  const make = async (intent: 'subscription' | 'unscheduled', customerRef: string) => {
    const v = await w.verify();
    return createMandate(await w.app(T0), {
      customerRef,
      intent,
      amount: 1500,
      currency: 'GBP',
      narrative: 'Activity',
      ...(intent === 'subscription' ? { interval: '1 month' } : {}),
      start: T0.toISOString(),
      credential: { link: v.href },
    });
  };

  it("reads the mandate's, its charges' and attempts' moves, newest first, a page at a time", async () => {
    const app = await w.app(T0);
    const m = await make('unscheduled', 'act-1');
    const other = await make('unscheduled', 'act-2');
    const { chargeId } = await queueCharge(app, m.id, { amount: 700 });
    await queueCharge(app, other.id);
    await runBilling(app, { asOf: T0, trigger: 'test' });
    await pauseMandate(app, m.id);
    await resumeMandate(app, m.id);

    const all = await mandateActivity(w.t.database, m.id);
    const moves = all.items.map((a) => `${a.entity}:${a.entityId}:${a.from ?? '-'}>${a.to}`);
    // the audit trail's rows of this mandate alone, newest first: its card, itself, its charge's
    // moves through a run and the settle that run asked for, then a pause and a resume
    const cred = m.credential.id;
    expect(moves).toEqual([
      `mandate:${m.id}:paused>active`,
      `mandate:${m.id}:active>paused`,
      `charge:${chargeId}:authorized>settling`,
      expect.stringMatching(/^payment_action:\d+:requested>accepted$/),
      `charge:${chargeId}:attempting>authorized`,
      `charge:${chargeId}:pending>attempting`,
      `mandate:${m.id}:->active`,
      `credential:${cred}:->active`,
    ]);
    // newest first, and nothing of the other mandate's
    const ids = all.items.map((a) => a.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const theirs = await mandateActivity(w.t.database, other.id);
    expect(theirs.items.filter((t) => ids.includes(t.id))).toEqual([]);
    // pages: two at a time, back to the same list
    const paged: number[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await mandateActivity(w.t.database, m.id, { limit: 2, before });
      paged.push(...page.items.map((a) => a.id));
      if (page.next === null) break;
      before = page.next;
    }
    expect(paged).toEqual(ids);
    await expect(mandateActivity(w.t.database, 999_999)).rejects.toThrow(/mandate 999999/);
  });

  it('undoes a cancel at period end, with its event, and refuses when none is scheduled', async () => {
    const app = await w.app(T0);
    const m = await make('subscription', 'act-3');
    await expect(undoCancelAtPeriodEnd(app, m.id)).rejects.toThrow(`mandate ${m.id} has no cancel scheduled`);
    expect((await cancelMandate(app, m.id, { atPeriodEnd: true })).cancelAtPeriodEnd).toBe(true);
    const kept = await undoCancelAtPeriodEnd(app, m.id);
    expect(kept).toMatchObject({ status: 'active', cancelAtPeriodEnd: false });
    const [last] = (await mandateActivity(w.t.database, m.id)).items;
    expect(last).toMatchObject({
      entity: 'mandate',
      from: 'active',
      to: 'active',
      reason: 'cancel at period end undone',
    });
    const events = (await listEvents(w.t.database, { mandateId: m.id })).items.map((e) => e.type);
    expect(events.filter((t) => t === 'mandate.updated')).toHaveLength(2);
    await cancelMandate(app, m.id);
    await expect(undoCancelAtPeriodEnd(app, m.id)).rejects.toThrow(/is cancelled: too late/);
  });
});
