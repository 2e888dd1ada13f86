import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type App, openApp } from '../../src/app.ts';
import { forecast } from '../../src/billing/mandates/forecast.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { fixedClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config.ts';
import { createDeliverer } from '../../src/events/deliver.ts';
import { createEndpoint } from '../../src/events/endpoints.ts';
import { worldpayGatewayFromConfig } from '../../src/gateways/worldpay/index.ts';
import { silentLogger } from '../../src/logger.ts';
import { measureCeiling } from './ceiling.ts';
import { verifyChains } from './chains.ts';
import { ownDatabase, serverTransactions } from './database.ts';
import { floorOnce } from './floor.ts';
import { commit, type Machine, machine } from './machine.ts';
import { measuredGateway } from './measured-gateway.ts';
import { type PgWrites, pgStats } from './pg-stats.ts';
import { backendCpu, processCpuMs } from './proc-cpu.ts';
import { seedDueMandates } from './seed.ts';

export interface BenchParams {
  mandates: number;
  latencyMs: number;
  concurrency: number;
  maxInFlight: number;
  chains: number;
  batchSize: number;
  ceilingSeconds: number;
  /** false: the outbox trigger is disabled for the run, to measure what the events cost. */
  outbox?: boolean;
  /** After the run, deliver every event to a loopback receiver and time it. */
  deliver?: boolean;
  /** After the run, forecast the month after it over every mandate and time it. */
  forecast?: boolean;
  /** false: skip the floor loop (bench/lib/floor.ts) before and after the run. */
  floor?: boolean;
  /** PGlite only: its files in the process's memory instead of a temporary directory. */
  pgliteMemory?: boolean;
}

export interface BenchResult extends BenchParams {
  database: 'postgres' | 'pglite';
  charges: number;
  runSeconds: number;
  /** Seconds from the first authorization sent to the last settle answered. */
  sendSeconds: number;
  chargesPerSecond: number;
  gatewayRequestsPerSecond: number;
  ceilingRequestsPerSecond: number;
  ceilingBefore: number;
  ceilingAfter: number;
  /** chargesPerSecond / ceilingRequestsPerSecond: ideal 0.5 (a charge is two requests). */
  ceilingRatio: number;
  /** The minimal correct loop (bench/lib/floor.ts) on the same server and sandbox, before and after rebill; null on PGlite. */
  floorChargesPerSecond: number | null;
  floorBefore: number | null;
  floorAfter: number | null;
  /** chargesPerSecond / floorChargesPerSecond: the headline figure (1 would be the floor itself). */
  floorRatio: number | null;
  /** The floor's WAL bytes per charge (mean of its runs; the whole server's, as walBytesPerCharge). */
  floorWalBytesPerCharge: number | null;
  statementsPerCharge: number;
  /** PostgreSQL: transactions the server counted per charge; null on PGlite. */
  transactionsPerCharge: number | null;
  /**
   * Round trips to the database per charge, counted on the sockets (src/db/client.ts,
   * countingSocket): flights, not statements; on PGlite, statements.
   */
  roundTripsPerCharge: number;
  /** CPU of rebill's process (this one) per charge, in ms. */
  cpuMsPerCharge: number;
  /** CPU of the run's PostgreSQL backends per charge (from /proc); null on PGlite or another host. */
  postgresCpuMsPerCharge: number | null;
  /** cpuMsPerCharge + postgresCpuMsPerCharge: what a charge costs rebill and its database. */
  totalCpuMsPerCharge: number | null;
  /**
   * PostgreSQL only: what the run made the server write per charge: WAL bytes, index entries,
   * row versions (inserted, updated, HOT), table by table, and with pg_stat_statements loaded,
   * the statements (bench/lib/pg-stats.ts); null on PGlite.
   */
  pgWrites: PgWrites | null;
  walBytesPerCharge: number | null;
  indexTuplesPerCharge: number | null;
  /** postgresCpuMsPerCharge / totalCpuMsPerCharge. */
  postgresCpuShare: number | null;
  /** CPU of the sandbox process per charge (the peer; not part of the total). */
  sandboxCpuMsPerCharge: number | null;
  /** Seconds from the run's start to its first authorization (reconcile, materialise, ANALYZE, claim). */
  beforeFirstSendSeconds: number;
  /** CPU the bare undici client spent per request in the ceiling: a charge's floor is twice this. */
  ceilingCpuMsPerRequest: number;
  /** C x sendSeconds / charges minus the mean window: a slot's time per charge outside its two requests. */
  gapSecondsPerCharge: number | null;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  /** The two requests alone (p50); p50Ms minus both is rebill's own time between them. */
  authorizeP50Ms: number;
  settleP50Ms: number;
  peakRssBytes: number;
  /** Share of the run the bench process's event loop was busy (perf_hooks ELU): near 1 means rebill's own JS is the limit. */
  eventLoopUtilization: number;
  /** p99 of the event loop's delay during the run (monitorEventLoopDelay, 10 ms resolution). */
  eventLoopDelayP99Ms: number;
  seedSeconds: number;
  /** Events the outbox holds per charge after the run (0 with the outbox off). */
  eventsPerCharge: number;
  /** With `deliver`: events delivered per second to a loopback receiver, signed, one replica. */
  deliveriesPerSecond: number | null;
  /** With `forecast`: seconds to forecast the next month over every mandate, and what it found. */
  forecastSeconds: number | null;
  forecastCharges: number | null;
  counts: Record<string, number>;
  machine: Machine;
  commit: string;
  at: string;
}

export class BenchCheckError extends Error {
  override name = 'BenchCheckError';
}

/** The environment of one measured rebill: in this process (benchOnce) or as `rebill run` children (replicas). */
export const benchEnv = (
  sandboxUrl: string,
  p: Pick<BenchParams, 'concurrency' | 'maxInFlight' | 'batchSize' | 'latencyMs'>,
  dbUrl: string | undefined,
): Record<string, string> => ({
  WORLDPAY_URL: sandboxUrl,
  WORLDPAY_USERNAME: 'sandbox',
  WORLDPAY_PASSWORD: 'sandbox',
  REBILL_LOG_LEVEL: 'silent',
  REBILL_EVENT_LAG_MINUTES: '0',
  // Simulated time: runs are asked for days and months ahead of the wall clock.
  REBILL_ALLOW_FUTURE_RUNS: '1',
  REBILL_CONCURRENCY: String(p.concurrency),
  WORLDPAY_MAX_IN_FLIGHT: String(p.maxInFlight),
  REBILL_BATCH_SIZE: String(p.batchSize),
  // each run has a database of its own, so mandate ids restart at 1; references must not repeat
  // at the shared sandbox (a repeat is a duplicateTransactionReference), so each run has a prefix
  REBILL_REFERENCE_PREFIX:
    `b${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 12),
  WORLDPAY_TIMEOUT_MS: String(Math.max(10_000, p.latencyMs * 20)),
  REBILL_WEBHOOK_ALLOW_INSECURE: '1',
  ...(dbUrl ? { DATABASE_URL: dbUrl } : {}),
});

/**
 * One measured billing run: the ceiling first (the peer alone), then N due mandates seeded in
 * a database of its own and billed by one `runBilling` in this process.
 */
export async function benchOnce(
  sandboxUrl: string,
  p: BenchParams,
  opts: { serverUrl: string | undefined; log: (line: string) => void; sandboxPid?: number | undefined },
): Promise<BenchResult> {
  // The ceiling is measured before and after the run and averaged, so a change in the load
  // of a shared machine during the run shows as a gap between the two instead of skewing one.
  const ceilingOnce = async () => {
    const c = await measureCeiling(sandboxUrl, { concurrency: p.concurrency, seconds: p.ceilingSeconds });
    opts.log(`ceiling: ${Math.round(c.requestsPerSecond)} requests/s over ${p.ceilingSeconds}s`);
    return c;
  };
  const before = await ceilingOnce();
  const ceilingBefore = before.requestsPerSecond;
  const floorWal: number[] = [];
  const floorOnceHere = async () => {
    if (!opts.serverUrl || p.floor === false) return null;
    const f = await floorOnce(sandboxUrl, p, { serverUrl: opts.serverUrl, log: opts.log });
    floorWal.push(f.walBytesPerCharge);
    return f.chargesPerSecond;
  };
  const floorBefore = await floorOnceHere();
  const seedStart = performance.now();
  const own = await ownDatabase('rebill_bench', opts.serverUrl, {
    maxConnections: Math.max(4, Math.min(20, p.concurrency + 2)),
    pgliteMemory: p.pgliteMemory === true,
  });
  try {
    const chains = await verifyChains(sandboxUrl, p.chains, { concurrency: 32 });
    const asOf = new Date('2026-03-01T00:00:00Z');
    await seedDueMandates(own.database, { mandates: p.mandates, chains, dueAt: asOf });
    const seedSeconds = (performance.now() - seedStart) / 1000;
    opts.log(`seeded ${p.mandates} mandates over ${p.chains} chains in ${seedSeconds.toFixed(1)}s`);
    const config = loadConfig(benchEnv(sandboxUrl, p, own.url));
    const { gateway, timings } = measuredGateway(worldpayGatewayFromConfig(config.worldpay));
    const app = await openApp(config, {
      database: own.database,
      clock: fixedClock(asOf),
      logger: silentLogger,
      gateways: { worldpay: gateway },
    });
    let stats: ReturnType<typeof pgStats> | null = null;
    try {
      if (p.outbox === false)
        await own.database.rows('alter table audit_log disable trigger audit_log_events');
      stats = own.url ? pgStats(own.url) : null;
      const writes0 = stats ? await stats.start() : null;
      const tx0 = opts.serverUrl ? await serverTransactions(opts.serverUrl, own.name) : 0;
      const statements0 = own.database.statements();
      const flights0 = own.database.flights();
      const backends = opts.serverUrl ? backendCpu(own.database, own.name) : null;
      const pg0 = backends ? await backends.snapshot() : null;
      const sandbox0 = opts.sandboxPid ? processCpuMs(opts.sandboxPid) : null;
      const cpu0 = process.cpuUsage();
      const elu0 = performance.eventLoopUtilization();
      const delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      const t0 = performance.now();
      let lastLog = t0;
      const report = await runBilling(app, {
        asOf,
        trigger: 'bench',
        onProgress: (c) => {
          if (performance.now() - lastLog > 5000) {
            lastLog = performance.now();
            opts.log(`  ${c.authorized} authorized, ${c.settleRequested} settle sent`);
          }
        },
      });
      const runSeconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const flights = own.database.flights() - flights0;
      const sandboxMs =
        sandbox0 !== null && opts.sandboxPid ? (processCpuMs(opts.sandboxPid) ?? sandbox0) - sandbox0 : null;
      const pg = backends && pg0 ? await backends.spentSince(pg0) : null;
      delay.disable();
      const elu = performance.eventLoopUtilization(elu0);
      const statements = own.database.statements() - statements0;
      const tx = opts.serverUrl ? (await serverTransactions(opts.serverUrl, own.name)) - tx0 : null;
      const c = report.counts;
      const pgWrites = stats && writes0 ? await stats.since(writes0, c.authorized) : null;
      if (c.authorized !== p.mandates || c.settleRequested !== p.mandates) {
        throw new BenchCheckError(
          `expected ${p.mandates} authorized and settled, got ${c.authorized} and ${c.settleRequested}: ${JSON.stringify(c)}`,
        );
      }
      // every settle's acceptance is committed (batched), not only sent
      const settled = await own.database.rows<{ settling: number; accepted: number }>(
        `select (select count(*) from charges where state = 'settling')::int as settling,
                (select count(*) from payment_actions where kind = 'settle' and state = 'accepted')::int as accepted`,
      );
      if (Number(settled[0]?.settling) !== p.mandates || Number(settled[0]?.accepted) !== p.mandates)
        throw new BenchCheckError(
          `expected ${p.mandates} charges settling with accepted settles, got ${JSON.stringify(settled[0])}`,
        );
      const events = await own.database.rows<{ n: number }>('select count(*)::int as n from events');
      const eventsPerCharge = Number(events[0]?.n ?? 0) / c.authorized;
      const deliveriesPerSecond = p.deliver ? await timeDelivery(app, opts.log) : null;
      let forecastSeconds: number | null = null;
      let forecastCharges: number | null = null;
      if (p.forecast) {
        const f0 = performance.now();
        // the month after the run: every mandate's next cycle, due exactly a month on
        const f = await forecast(app, {
          from: new Date(asOf.getTime() + 1),
          to: new Date(asOf.getTime() + 32 * 86_400_000),
          by: 'month',
        });
        forecastSeconds = (performance.now() - f0) / 1000;
        forecastCharges = f.totals.reduce((n, t) => n + t.charges, 0);
        opts.log(`forecast of the next month: ${forecastCharges} charges in ${forecastSeconds.toFixed(1)}s`);
        if (forecastCharges !== p.mandates)
          throw new BenchCheckError(
            `forecast found ${forecastCharges} charges for ${p.mandates} monthly mandates`,
          );
      }
      const after = await ceilingOnce();
      const floorAfter = await floorOnceHere();
      const floorChargesPerSecond =
        floorBefore !== null && floorAfter !== null ? (floorBefore + floorAfter) / 2 : null;
      const ceilingAfter = after.requestsPerSecond;
      const ceilingRequestsPerSecond = (ceilingBefore + ceilingAfter) / 2;
      const charges = c.authorized;
      const sendSeconds = ((timings.last ?? 0) - (timings.first ?? 0)) / 1000;
      const chargesPerSecond = charges / runSeconds;
      return {
        ...p,
        database: own.database.kind,
        charges,
        runSeconds,
        sendSeconds,
        chargesPerSecond,
        gatewayRequestsPerSecond: timings.requests / runSeconds,
        ceilingRequestsPerSecond,
        ceilingBefore,
        ceilingAfter,
        ceilingRatio: chargesPerSecond / ceilingRequestsPerSecond,
        floorChargesPerSecond,
        floorBefore,
        floorAfter,
        floorRatio: floorChargesPerSecond === null ? null : chargesPerSecond / floorChargesPerSecond,
        floorWalBytesPerCharge:
          floorWal.length === 0 ? null : floorWal.reduce((a, b) => a + b, 0) / floorWal.length,
        statementsPerCharge: statements / charges,
        transactionsPerCharge: tx === null ? null : tx / charges,
        roundTripsPerCharge: flights / charges,
        cpuMsPerCharge: (cpu.user + cpu.system) / 1000 / charges,
        postgresCpuMsPerCharge: pg === null ? null : pg.ms / charges,
        totalCpuMsPerCharge: pg === null ? null : ((cpu.user + cpu.system) / 1000 + pg.ms) / charges,
        postgresCpuShare: pg === null ? null : pg.ms / ((cpu.user + cpu.system) / 1000 + pg.ms),
        pgWrites,
        walBytesPerCharge: pgWrites?.walBytesPerCharge ?? null,
        indexTuplesPerCharge: pgWrites?.indexTuplesPerCharge ?? null,
        sandboxCpuMsPerCharge: sandboxMs === null ? null : sandboxMs / charges,
        beforeFirstSendSeconds: ((timings.first ?? t0) - t0) / 1000,
        ceilingCpuMsPerRequest: (before.cpuMsPerRequest + after.cpuMsPerRequest) / 2,
        // Little's law per sender: each of the C slots holds a charge for C x sendSeconds / charges
        // on average; what is not the timed window (authorization sent to settle answered) is the
        // gap: the outcome commit's wait, the claim, the loop's own delay.
        gapSecondsPerCharge:
          charges === 0 ? null : (p.concurrency * sendSeconds) / charges - timings.perCharge.mean() / 1000,
        meanMs: timings.perCharge.mean(),
        p50Ms: timings.perCharge.quantile(0.5),
        p99Ms: timings.perCharge.quantile(0.99),
        authorizeP50Ms: timings.authorize.quantile(0.5),
        settleP50Ms: timings.settle.quantile(0.5),
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
        eventLoopUtilization: elu.utilization,
        eventLoopDelayP99Ms: delay.percentile(99) / 1e6,
        seedSeconds,
        eventsPerCharge,
        deliveriesPerSecond,
        forecastSeconds,
        forecastCharges,
        counts: { ...c },
        machine: machine(),
        commit: commit(),
        at: new Date().toISOString(),
      };
    } finally {
      await stats?.close();
      await app.close();
      await gateway.close();
    }
  } finally {
    await own.drop();
  }
}

/** Deliver everything the run wrote to a loopback receiver that answers 200 at once. */
async function timeDelivery(app: App, log: (line: string) => void): Promise<number> {
  let received = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    await createEndpoint(app, { url, events: ['*'] });
    const deliverer = createDeliverer(app);
    const t0 = performance.now();
    const s = await deliverer.drain();
    const seconds = (performance.now() - t0) / 1000;
    await deliverer.close();
    if (s.delivered !== received || s.retried + s.failed > 0)
      throw new BenchCheckError(`delivery: ${JSON.stringify(s)}, receiver got ${received}`);
    log(`delivered ${s.delivered} events in ${seconds.toFixed(1)}s`);
    return s.delivered / seconds;
  } finally {
    server.close();
  }
}

/**
 * The forecast alone over N seeded monthly mandates (`npm run bench -- --forecast-only`): the
 * next month's charges, read a page of mandates at a time. Reports the time and the peak RSS,
 * which must not grow with N.
 */
export async function forecastOnce(
  sandboxUrl: string,
  p: BenchParams,
  opts: { serverUrl: string | undefined; log: (line: string) => void },
): Promise<{
  mandates: number;
  database: string;
  forecastSeconds: number;
  charges: number;
  peakRssBytes: number;
  machine: Machine;
  commit: string;
  at: string;
}> {
  const own = await ownDatabase('rebill_bench', opts.serverUrl, { maxConnections: 4 });
  try {
    const chains = await verifyChains(sandboxUrl, Math.min(p.chains, 1000), { concurrency: 32 });
    const asOf = new Date('2026-03-01T00:00:00Z');
    await seedDueMandates(own.database, { mandates: p.mandates, chains, dueAt: asOf });
    opts.log(`seeded ${p.mandates} mandates`);
    const config = loadConfig(benchEnv(sandboxUrl, p, own.url));
    const app = await openApp(config, {
      database: own.database,
      clock: fixedClock(asOf),
      logger: silentLogger,
    });
    try {
      const t0 = performance.now();
      const f = await forecast(app, {
        from: asOf,
        to: new Date(asOf.getTime() + 31 * 86_400_000),
        by: 'day',
      });
      const forecastSeconds = (performance.now() - t0) / 1000;
      const charges = f.totals.reduce((n, t) => n + t.charges, 0);
      if (charges !== p.mandates)
        throw new BenchCheckError(`forecast found ${charges} charges for ${p.mandates} mandates`);
      return {
        mandates: p.mandates,
        database: own.database.kind,
        forecastSeconds,
        charges,
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
        machine: machine(),
        commit: commit(),
        at: new Date().toISOString(),
      };
    } finally {
      await app.close();
    }
  } finally {
    await own.drop();
  }
}
