import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApp } from '../../src/app.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { getCharge } from '../../src/billing/operator/charges.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import type { Clock } from '../../src/clock.ts';
import { createDaemon } from '../../src/daemon/daemon.ts';
import { silentLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { runCli } from '../support/cli.ts';
import { at } from '../support/time.ts';
import { startWorld, type World } from '../support/world.ts';

const MIN = 60_000;

/**
 * Signals an operator can act on: the run history and the event log hold what happened, not
 * the daemon's empty minutes or a dry run's look ahead; and a charge that will not be sent again
 * says so, with its event, and without a next attempt.
 */
describe('signals that mean something', () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => {
    await w?.close();
  });

  const runs = async () =>
    (await w.t.database.rows<{ id: number; trigger: string; dry_run: boolean }>(
      sql`select id, trigger, dry_run from billing_runs order by id`,
    )) ?? [];
  const eventTypes = async (where = sql`true`) =>
    (await w.t.database.rows<{ type: string }>(sql`select type from events where ${where} order by seq`)).map(
      (e) => e.type,
    );

  async function subscription(at0: Date, start: Date, link?: string) {
    const app = await w.app(at0);
    return createMandate(app, {
      customerRef: `signals-${Math.random().toString(36).slice(2, 8)}`,
      intent: 'subscription',
      amount: 2999,
      currency: 'GBP',
      narrative: 'Signals test',
      interval: '1 month',
      start,
      credential: { link: link ?? (await w.verify()).href },
    });
  }

  it('a daemon ticking empty for ten minutes records no run and emits no event; its ticks are counted', async () => {
    const t0 = at('2026-03-02T09:00:30Z');
    // a mandate that falls due at 09:30: the database is not empty, only nothing is due yet
    const m = await subscription(t0, at('2026-03-02T09:30:00Z'));
    let now = t0.getTime();
    const clock: Clock = { now: () => new Date(now) };
    const app = await openApp(w.config, { database: w.t.database, clock, logger: silentLogger });
    const metrics = createMetrics(app.database);
    const daemon = createDaemon({
      ctx: app,
      runner: createRunner(app, metrics),
      schedule: '* * * * *',
      shutdownTimeoutMs: 5000,
      name: 'signals-empty',
      cron: false,
      metrics,
    });
    const runsBefore = await runs();
    const eventsBefore = await eventTypes();
    for (let i = 1; i <= 10; i++) {
      now = t0.getTime() + i * MIN;
      const tick = await daemon.tick();
      expect(tick.outcome).toBe('fired');
      expect(tick.report?.recorded).toBe(false);
    }
    expect(await runs()).toEqual(runsBefore);
    expect(await eventTypes()).toEqual(eventsBefore);
    const text = await metrics.render();
    expect(text).toContain('rebill_daemon_ticks_total{outcome="empty"} 10');
    expect(text).not.toContain('rebill_daemon_ticks_total{outcome="ran"}');

    // the tick at which the mandate falls due does something: that one is a run with its event
    now = at('2026-03-02T09:30:10Z').getTime();
    const due = await daemon.tick();
    expect(due.report?.recorded).toBe(true);
    expect(due.report?.counts.authorized).toBe(1);
    const after = await runs();
    expect(after.slice(runsBefore.length)).toEqual([
      { id: due.report?.runId, trigger: 'cron', dry_run: false },
    ]);
    expect(await eventTypes(sql`type = 'run.completed'`)).toHaveLength(
      eventsBefore.filter((t) => t === 'run.completed').length + 1,
    );
    expect(await eventTypes(sql`mandate_id = ${m.id}`)).toContain('charge.authorized');
    expect(await metrics.render()).toContain('rebill_daemon_ticks_total{outcome="ran"} 1');
    await daemon.stop();
    await app.close();
  });

  it('a dry run keeps its forecast in its run and emits no event', async () => {
    const t0 = at('2026-04-01T08:00:00Z');
    await subscription(t0, at('2026-04-01T07:00:00Z'));
    const app = await w.app(t0);
    const before = await eventTypes();
    const report = await runBilling(app, { asOf: t0, dryRun: true, trigger: 'test' });
    expect(report.forecast?.length).toBeGreaterThan(0);
    expect((await runs()).at(-1)).toEqual({ id: report.runId, trigger: 'test', dry_run: true });
    expect(await eventTypes()).toEqual(before);
  });

  it('a link the gateway refuses (404) stops the charge and its mandate, with their events, and no next attempt', async () => {
    const t0 = at('2026-05-04T10:00:00Z');
    const gone = `${w.sandbox.url}/payments/authorizations/recurring/no-such-link`;
    const m = await subscription(t0, at('2026-05-04T09:00:00Z'), gone);
    const run = await runCli(['run', '--as-of', t0.toISOString(), '--mandate-id', String(m.id)], w.env);
    // stopped is what happened, as a refusal no retry can fix: not a deferral (exit 5)
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/: completed in /);
    const app = await w.app(t0);
    const charges = await app.database.rows<{ id: number }>(
      sql`select id from charges where mandate_id = ${m.id}`,
    );
    expect(charges).toHaveLength(1);
    const c = await getCharge(app.database, charges[0]!.id);
    expect(c.state).toBe('stopped');
    expect(c.stateReason).toMatch(/gateway rejected the request \(404\)/);
    expect(c.nextAttemptAt).toBeNull();
    const mandate = await app.database.rows<{ status: string }>(
      sql`select status from mandates where id = ${m.id}`,
    );
    expect(mandate[0]?.status).toBe('stopped');
    expect(await eventTypes(sql`mandate_id = ${m.id}`)).toEqual([
      'mandate.created',
      'charge.stopped',
      'mandate.stopped',
    ]);
    const stopped = await app.database.rows<{ data: { nextAttemptAt: string | null } }>(
      sql`select data from events where mandate_id = ${m.id} and type = 'charge.stopped'`,
    );
    expect(stopped[0]?.data.nextAttemptAt).toBeNull();
    const show = await runCli(['charges', 'show', String(c.id)], w.env);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/next attempt\s+-\n/);
  });
});
