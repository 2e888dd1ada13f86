import cron, { type ScheduledTask } from 'node-cron';
import type { BillingContext } from '../billing/context.ts';
import type { RunReport } from '../billing/run/run.ts';
import type { Runner } from '../billing/run/runner.ts';
import { ConfigError } from '../config.ts';
import { errorMessage } from '../errors.ts';
import { pruneIdempotencyKeys } from '../http/idempotency.ts';
import type { Metrics } from '../metrics.ts';
import { claimSlot, floorToSlot, lastSlot, previousSlot } from './slots.ts';

export type DaemonState = 'created' | 'running' | 'stopping' | 'stopped';

export interface TickResult {
  slot: Date;
  /** `fired`: this replica won the slot and ran; otherwise why not. */
  outcome: 'fired' | 'not-elected' | 'busy' | 'stopping';
  report?: RunReport;
}

export interface Daemon {
  readonly state: DaemonState;
  /** Catch up a missed slot once, then (unless `cron: false`) follow the schedule. Idempotent. */
  start(): Promise<void>;
  /** Stop ticking, let the runs in flight finish within the shutdown timeout. Idempotent. */
  stop(): Promise<{ drained: boolean }>;
  /** One tick for `slot` (default: the current slot): claim it in the database, then bill. */
  tick(slot?: Date): Promise<TickResult>;
  /** Resolves when the tick in progress (if any) is over. */
  idle(): Promise<void>;
}

export interface DaemonOptions {
  ctx: BillingContext;
  runner: Runner;
  schedule: string;
  shutdownTimeoutMs: number;
  /** Name of the schedule's row in cron_slots (replicas share it). */
  name?: string;
  /** false: no timer; the caller drives ticks (tests). */
  cron?: boolean;
  /** Counts every tick by outcome (`rebill_daemon_ticks_total`): an empty one leaves no other trace. */
  metrics?: Pick<Metrics, 'tick'> | undefined;
}

export function validateSchedule(schedule: string): void {
  if (!cron.validate(schedule))
    throw new ConfigError('REBILL_CRON', `not a valid cron expression: ${JSON.stringify(schedule)}`);
}

/**
 * The billing daemon: created -> running -> stopping -> stopped. Every tick claims its slot in
 * PostgreSQL first (node-cron's own coordination is per process), then runs one billing run
 * as of now: due charges, retries, reconciliation of unknown attempts, settlement resumption
 * and follow-up. Ticks never overlap in one process: a tick that finds one in progress is
 * skipped, and the next one covers whatever it would have done.
 */
export function createDaemon(opts: DaemonOptions): Daemon {
  validateSchedule(opts.schedule);
  const { ctx, runner } = opts;
  const name = opts.name ?? 'billing';
  const log = ctx.logger.child({ component: 'daemon' });
  let state: DaemonState = 'created';
  let task: ScheduledTask | undefined;
  let current: Promise<TickResult> | undefined;
  let stopping: Promise<{ drained: boolean }> | undefined;
  const matcher = cron.createTask(opts.schedule, () => {}, { timezone: 'Etc/UTC' });

  async function doTick(slot: Date): Promise<TickResult> {
    if (!(await claimSlot(ctx.database, name, slot, ctx.workerId))) {
      log.debug({ slot }, 'slot taken by another replica');
      return { slot, outcome: 'not-elected' };
    }
    const asOf = ctx.clock.now();
    log.debug({ slot, asOf }, 'billing tick started');
    const report = await runner.run({ asOf, trigger: 'cron', followSettlements: true, forgetIfIdle: true });
    await pruneIdempotencyKeys(ctx.database).catch((err) =>
      log.warn({ err: errorMessage(err) }, 'pruning idempotency keys failed'),
    );
    if (report.recorded)
      log.info(
        { slot, runId: report.runId, status: report.status, counts: report.counts },
        'billing tick finished',
      );
    else log.debug({ slot }, 'billing tick found nothing to do');
    return { slot, outcome: 'fired', report };
  }

  const counted = (p: Promise<TickResult>): Promise<TickResult> =>
    p.then(
      (r) => {
        opts.metrics?.tick(r.outcome !== 'fired' ? r.outcome : r.report?.recorded ? 'ran' : 'empty');
        return r;
      },
      (err: unknown) => {
        opts.metrics?.tick('failed');
        throw err;
      },
    );

  function tick(slot?: Date): Promise<TickResult> {
    const s = floorToSlot(opts.schedule, slot ?? ctx.clock.now());
    if (state === 'stopping' || state === 'stopped') return Promise.resolve({ slot: s, outcome: 'stopping' });
    if (current) return counted(Promise.resolve({ slot: s, outcome: 'busy' }));
    const p = counted(doTick(s)).finally(() => {
      current = undefined;
    });
    current = p;
    return p;
  }

  const onCron = (date: Date) =>
    tick(date).catch((err) => log.error({ err: errorMessage(err) }, 'billing tick failed'));

  return {
    get state() {
      return state;
    },
    async start() {
      if (state !== 'created') return;
      state = 'running';
      const now = ctx.clock.now();
      const prev = previousSlot(opts.schedule, (d) => matcher.match(d), now);
      const last = await lastSlot(ctx.database, name);
      if (prev && (last === null || last < prev)) {
        log.info({ missedSince: last, slot: prev }, 'catching up missed ticks with one run');
        void onCron(prev);
      }
      if (opts.cron !== false) {
        task = cron.schedule(opts.schedule, (c) => void onCron(c.date), {
          timezone: 'Etc/UTC',
          name: `rebill-${name}`,
          noOverlap: true,
        });
      }
    },
    stop() {
      if (stopping) return stopping;
      if (state === 'created') {
        state = 'stopped';
        stopping = Promise.resolve({ drained: true });
        return stopping;
      }
      state = 'stopping';
      stopping = (async () => {
        await task?.stop();
        await task?.destroy();
        await matcher.destroy();
        const out = await runner.stop(opts.shutdownTimeoutMs);
        if (!out.drained) log.warn('shutdown timeout: runs still in flight are left to their leases');
        state = 'stopped';
        return out;
      })();
      return stopping;
    },
    idle: async () => {
      await current?.catch(() => {});
    },
    tick,
  };
}
