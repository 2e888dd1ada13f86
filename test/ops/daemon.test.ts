import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, openApp } from '../../src/app.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { createRunner } from '../../src/billing/run/runner.ts';
import type { Clock } from '../../src/clock.ts';
import { ConfigError } from '../../src/config.ts';
import { createDaemon, type Daemon } from '../../src/daemon/daemon.ts';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { date, num } from '../../src/db/values.ts';
import { silentLogger } from '../../src/logger.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

const MIN = 60_000;
/** Several connections at once: PostgreSQL only (the reason shows in the test name when skipped). */
const onServer = (name: string) => (hasServer ? name : `${name} [skipped: ${serverSkipReason}]`);

/** A clock the test moves by hand; every app of a test shares it. */
function movableClock(start: Date): Clock & { set(d: Date): void } {
  let t = start.getTime();
  return { now: () => new Date(t), set: (d) => (t = d.getTime()) };
}

async function cronRuns(database: Database): Promise<number> {
  const rows = await database.rows(sql`select count(*) as n from billing_runs where trigger = 'cron'`);
  return num(rows[0]?.n);
}

/** Authorizations the sandbox received, by transaction reference. */
function authorizationsByReference(w: World): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of w.sandbox.ledger())
    if (e.op === 'authorize' && e.transactionReference)
      out.set(e.transactionReference, (out.get(e.transactionReference) ?? 0) + 1);
  return out;
}

describe('billing daemon', () => {
  let w: World;
  const extra: { close(): Promise<void> }[] = [];
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => {
    for (const x of extra.reverse()) await x.close();
    await w?.close();
  });

  async function replica(clock: Clock, database?: Database): Promise<{ app: App; daemon: Daemon }> {
    const app = await openApp(w.config, { database: database ?? w.t.database, clock, logger: silentLogger });
    extra.push(app);
    const daemon = createDaemon({
      ctx: app,
      runner: createRunner(app),
      schedule: '* * * * *',
      shutdownTimeoutMs: 5000,
      name: `test-${extra.length}-${Math.random().toString(36).slice(2, 8)}`,
      cron: false,
    });
    return { app, daemon };
  }

  async function mandate(app: App, ref: string, start: Date, interval = '1 day') {
    const v = await w.verify();
    return createMandate(app, {
      customerRef: ref,
      intent: 'subscription',
      amount: 1000,
      currency: 'GBP',
      narrative: 'Daemon test',
      interval,
      start,
      credential: { link: v.href },
    });
  }

  it('rejects a bad schedule naming REBILL_CRON', async () => {
    const app = await w.app(new Date('2026-07-01T00:00:00Z'));
    const err = (() => {
      try {
        createDaemon({ ctx: app, runner: createRunner(app), schedule: '61 * * * *', shutdownTimeoutMs: 1 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('REBILL_CRON');
  });

  it('moves created -> running -> stopping -> stopped; start and stop are idempotent; ticks never overlap', async () => {
    const clock = movableClock(new Date('2026-07-01T08:00:30Z'));
    const a = await replica(clock);
    expect(a.daemon.state).toBe('created');
    await a.daemon.start();
    await a.daemon.start();
    expect(a.daemon.state).toBe('running');
    await a.daemon.idle(); // the start-up catch-up tick
    const [first, second] = await Promise.all([
      a.daemon.tick(new Date('2026-07-01T08:01:00Z')),
      a.daemon.tick(new Date('2026-07-01T08:02:00Z')),
    ]);
    expect([first.outcome, second.outcome]).toEqual(['fired', 'busy']);
    const stopping = a.daemon.stop();
    expect(a.daemon.state).toBe('stopping');
    expect(a.daemon.stop()).toBe(stopping);
    await stopping;
    expect(a.daemon.state).toBe('stopped');
    expect((await a.daemon.tick(new Date('2026-07-01T08:05:00Z'))).outcome).toBe('stopping');
  });

  it('fires a slot once when two replicas tick it, and catches up missed ticks with one run', async () => {
    const now = new Date('2026-07-02T12:00:20Z');
    const clock = movableClock(now);
    // the daemons were down for three hours: the last slot is 09:00, charges fell due since
    const setup = await w.app(now);
    const due: { id: number }[] = [];
    for (const h of [2, 1, 0.5])
      due.push(await mandate(setup, `catchup-${h}`, new Date(now.getTime() - h * 60 * MIN)));
    const before = await cronRuns(w.t.database);
    const a = await replica(clock);
    const b = await replica(clock);
    const shared = `shared-${Math.random().toString(36).slice(2, 8)}`;
    await w.t.database.rows(
      sql`insert into cron_slots (name, last_slot, owner) values (${shared}, '2026-07-02T09:00:00Z', 'old')`,
    );
    const mk = (app: App) =>
      createDaemon({
        ctx: app,
        runner: createRunner(app),
        schedule: '* * * * *',
        shutdownTimeoutMs: 5000,
        name: shared,
        cron: false,
      });
    const da = mk(a.app);
    const db = mk(b.app);
    await da.start();
    await db.start();
    await Promise.all([da.idle(), db.idle()]);
    // one catch-up run for 180 missed slots, by one replica
    expect((await cronRuns(w.t.database)) - before).toBe(1);
    const slot = await w.t.database.rows(sql`select last_slot from cron_slots where name = ${shared}`);
    expect(date(slot[0]?.last_slot).toISOString()).toBe('2026-07-02T12:00:00.000Z');
    const charged = await w.t.database.rows(
      sql`select c.state from charges c where c.mandate_id in (${sql.join(
        due.map((m) => sql`${m.id}`),
        sql`, `,
      )})`,
    );
    // the tick also follows settlements up, so they end settled
    expect(charged.map((r) => r.state).sort()).toEqual(['settled', 'settled', 'settled']);
    // the next slot, ticked by both replicas at once, fires on exactly one of them
    clock.set(new Date('2026-07-02T12:01:05Z'));
    const outs = await Promise.all([da.tick(), db.tick()]);
    expect(outs.map((o) => o.outcome).sort()).toEqual(['fired', 'not-elected']);
    // an old slot (a replica whose timer lagged) does not fire again
    expect((await da.tick(new Date('2026-07-02T12:00:00Z'))).outcome).toBe('not-elected');
    // that tick found nothing left to do: it recorded no run
    expect(outs.find((o) => o.outcome === 'fired')?.report?.recorded).toBe(false);
    expect((await cronRuns(w.t.database)) - before).toBe(1);
    await Promise.all([da.stop(), db.stop(), a.daemon.stop(), b.daemon.stop()]);
  });

  it.skipIf(!hasServer)(
    onServer('two replicas on one PostgreSQL over many ticks charge every due mandate exactly once'),
    async () => {
      const start = new Date('2026-08-01T00:00:00Z');
      const clock = movableClock(start);
      const setup = await w.app(start);
      const mandates: { id: number }[] = [];
      for (let i = 0; i < 30; i++)
        mandates.push(await mandate(setup, `many-${i}`, new Date(start.getTime() + i * 17 * MIN)));
      const dbs: Database[] = [];
      for (let i = 0; i < 2; i++) {
        const d = await createDatabase({ databaseUrl: w.t.url, maxConnections: 6 });
        dbs.push(d);
        extra.push(d);
      }
      const name = `many-${Math.random().toString(36).slice(2, 8)}`;
      const replicas = await Promise.all(
        dbs.map(async (d) => {
          const app = await openApp(w.config, { database: d, clock, logger: silentLogger });
          extra.push(app);
          const runner = createRunner(app);
          return {
            app,
            runner,
            daemon: createDaemon({
              ctx: app,
              runner,
              schedule: '* * * * *',
              shutdownTimeoutMs: 5000,
              name,
              cron: false,
            }),
          };
        }),
      );
      const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
      let fired = 0;
      // 40 ticks, 45 minutes apart: 30 hours, so every mandate comes due once or twice
      let t = start.getTime();
      for (let i = 0; i < 40; i++) {
        t += 45 * MIN;
        clock.set(new Date(t));
        const [x, y, api] = await Promise.all([
          a.daemon.tick(),
          b.daemon.tick(),
          // an operator's API run on one replica overlapping the tick: leases keep it apart
          i % 3 === 0 ? b.runner.run({ asOf: new Date(t), trigger: 'api' }) : Promise.resolve(undefined),
        ]);
        const outcomes = [x.outcome, y.outcome];
        expect(outcomes.filter((o) => o === 'fired')).toHaveLength(1);
        expect(api?.status ?? 'completed').toBe('completed');
        fired++;
      }
      expect(fired).toBe(40);
      const end = t;
      let expected = 0;
      for (let i = 0; i < 30; i++) {
        const s = start.getTime() + i * 17 * MIN;
        expected += Math.floor((end - s) / (24 * 60 * MIN)) + 1;
      }
      const charges = await w.t.database.rows(sql`select c.state, a.transaction_reference
        from charges c join attempts a on a.id = c.authorized_attempt_id
        where c.mandate_id in (${sql.join(
          mandates.map((m) => sql`${m.id}`),
          sql`, `,
        )})`);
      expect(charges).toHaveLength(expected);
      const auths = authorizationsByReference(w);
      for (const c of charges)
        expect([c.transaction_reference, auths.get(String(c.transaction_reference))]).toEqual([
          c.transaction_reference,
          1,
        ]);
      const mine = [...auths.keys()].filter((r) => mandates.some((m) => r.startsWith(`rb-${m.id}-`)));
      expect(mine).toHaveLength(expected);
      for (const r of replicas) await r.daemon.stop();
    },
  );

  it.skipIf(!hasServer)(
    onServer(
      'SIGTERM mid-run: the daemon exits 0 and, after a follow-up run, every charge is authorized exactly once',
    ),
    async () => {
      const w2 = await startWorld({ sandbox: { latencyMs: 150 } });
      let child: ChildProcess | undefined;
      try {
        const now = new Date();
        const setup = await w2.app(now);
        const ids: number[] = [];
        for (let i = 0; i < 40; i++) {
          const v = await w2.verify();
          const m = await createMandate(setup, {
            customerRef: `sig-${i}`,
            intent: 'subscription',
            amount: 500 + i,
            currency: 'GBP',
            narrative: 'Sigterm test',
            interval: '1 month',
            start: new Date(now.getTime() - 60 * MIN),
            credential: { link: v.href },
          });
          ids.push(m.id);
        }
        child = spawn(process.execPath, ['bin/rebill.js', 'daemon'], {
          cwd: process.cwd(),
          env: {
            ...process.env,
            ...w2.env,
            REBILL_ADMIN_TOKENS: 'sig-token',
            REBILL_ADMIN_ADDR: '127.0.0.1:0',
            REBILL_LOG_LEVEL: 'info',
            REBILL_BATCH_SIZE: '4',
            REBILL_CONCURRENCY: '4',
            REBILL_SHUTDOWN_TIMEOUT_MS: '20000',
          },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
        const lines = createInterface({ input: child.stderr! });
        const log: string[] = [];
        await new Promise<void>((resolve, reject) => {
          lines.on('line', (l) => {
            log.push(l);
            // the start-up tick catches up at once: it starts as soon as the API listens
            if (l.includes('admin API listening')) resolve();
          });
          void exited.then(() => reject(new Error(`daemon exited early:\n${log.join('\n')}`)));
        });
        // wait until the run is charging, then stop it in the middle
        while (w2.sandbox.ledger().filter((e) => e.op === 'authorize').length < 4)
          await new Promise((r) => setTimeout(r, 10));
        child.kill('SIGTERM');
        expect(await exited).toBe(0);
        expect(log.some((l) => l.includes('"drained":true'))).toBe(true);
        const runs = await w2.t.database.rows(sql`select status from billing_runs where trigger = 'cron'`);
        expect(runs.map((r) => r.status)).toEqual(['interrupted']);
        const before = w2.sandbox.ledger().filter((e) => e.op === 'authorize').length;
        expect(before).toBeLessThan(40);

        const follow = await w2.app(new Date());
        await runBilling(follow, { asOf: new Date(), trigger: 'test' });
        const auths = authorizationsByReference(w2);
        expect([...auths.values()].every((n) => n === 1)).toBe(true);
        const charges = await w2.t.database.rows(sql`select c.mandate_id, c.state from charges c`);
        expect(charges).toHaveLength(40);
        expect(new Set(charges.map((c) => num(c.mandate_id)))).toEqual(new Set(ids));
        expect(charges.every((c) => c.state === 'settling' || c.state === 'settled')).toBe(true);
        expect(auths.size).toBe(40);
      } finally {
        if (child && child.exitCode === null) child.kill('SIGKILL');
        await w2.close();
      }
    },
  );
});
