/**
 * rebill's throughput next to what the hardware and the peer allow.
 *   npm run bench -- [--mandates N] [--latency-ms L] [--concurrency C] [--json]
 *   npm run bench -- --sweep --latency-ms 200      (throughput against concurrency, Little's law)
 *   npm run bench -- --no-outbox                   (the event outbox's trigger off: what events cost)
 *   npm run bench -- --deliver                     (then deliver every event to a loopback receiver)
 *   npm run bench -- --forecast                    (then forecast the next month over every mandate)
 *   npm run bench -- --forecast-only --mandates N  (seed N mandates and time the forecast alone)
 *   npm run bench -- --no-floor                    (skip the minimal correct loop run before and after)
 *   npm run bench -- --replicas K --latency-ms 200 (K `rebill run` processes on one PostgreSQL, against 1)
 * PostgreSQL when DATABASE_URL is set (a database of its own, dropped afterwards), else PGlite
 * in a temporary directory, as rebill runs embedded (`--pglite-memory`: its files in memory).
 * The sandbox runs in a child process. Results go to bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ArgsError, parseArgs } from './lib/args.ts';
import { type BenchParams, type BenchResult, benchOnce, forecastOnce } from './lib/bench-run.ts';
import { machine } from './lib/machine.ts';
import { replicasBench } from './lib/replicas.ts';
import { startSandboxChild } from './lib/sandbox-process.ts';

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));

function save(kind: string, body: unknown): string {
  mkdirSync(resultsDir, { recursive: true });
  const file = `${resultsDir}${new Date().toISOString().replace(/[:.]/g, '-')}-${kind}.json`;
  writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`);
  return file;
}

const fmt = (n: number, digits = 1) => n.toLocaleString('en-GB', { maximumFractionDigits: digits });

function summary(r: BenchResult): string {
  return [
    `rebill bench: ${r.charges} charges on ${r.database}, latency ${r.latencyMs} ms, concurrency ${r.concurrency} (in-flight limit ${r.maxInFlight})`,
    `  charges/s            ${fmt(r.chargesPerSecond)}   (send phase only: ${fmt(r.charges / r.sendSeconds)})`,
    `  gateway requests/s   ${fmt(r.gatewayRequestsPerSecond)}`,
    `  ceiling requests/s   ${fmt(r.ceilingRequestsPerSecond)}   (undici Pool, no database, no logic)`,
    `  ceilingRatio         ${fmt(r.ceilingRatio, 3)}   (ideal 0.5)`,
    ...(r.floorRatio === null
      ? []
      : [
          `  floor charges/s      ${fmt(r.floorChargesPerSecond ?? 0)}   (minimal correct loop, bench/lib/floor.ts: ${fmt(r.floorBefore ?? 0)} before, ${fmt(r.floorAfter ?? 0)} after)`,
          `  floorRatio           ${fmt(r.floorRatio, 3)}   (rebill / floor; target 0.9)`,
        ]),
    `  statements/charge    ${fmt(r.statementsPerCharge, 2)}   round trips/charge ${fmt(r.roundTripsPerCharge, 2)}   transactions/charge ${r.transactionsPerCharge === null ? 'n/a' : fmt(r.transactionsPerCharge, 2)}`,
    `  CPU ms/charge        rebill ${fmt(r.cpuMsPerCharge, 3)} + PostgreSQL ${r.postgresCpuMsPerCharge === null ? 'n/a' : fmt(r.postgresCpuMsPerCharge, 3)} = ${r.totalCpuMsPerCharge === null ? 'n/a' : fmt(r.totalCpuMsPerCharge, 3)} (target 0.45, PostgreSQL 0.3); sandbox ${r.sandboxCpuMsPerCharge === null ? 'n/a' : fmt(r.sandboxCpuMsPerCharge, 3)}; bare client ${fmt(r.ceilingCpuMsPerRequest, 3)} per request`,
    ...(r.pgWrites === null
      ? []
      : [
          `  PostgreSQL writes    ${fmt(r.pgWrites.walBytesPerCharge, 0)} WAL bytes/charge${r.floorWalBytesPerCharge === null ? '' : ` (floor ${fmt(r.floorWalBytesPerCharge, 0)})`} (${fmt(r.pgWrites.walRecordsPerCharge, 1)} records, ${fmt(r.pgWrites.walFpiPerCharge, 2)} full pages); ${fmt(r.pgWrites.indexTuplesPerCharge, 1)} index entries/charge (at most), indexes +${fmt(r.pgWrites.indexBytesPerCharge, 0)} bytes/charge`,
          `  row versions/charge  ${fmt(r.pgWrites.tupleInsertsPerCharge, 2)} inserted, ${fmt(r.pgWrites.tupleUpdatesPerCharge, 2)} updated (${fmt(r.pgWrites.hotUpdatesPerCharge, 2)} HOT)`,
        ]),
    `  before first send    ${fmt(r.beforeFirstSendSeconds, 2)} s   (reconcile, materialise, ANALYZE, first claim)`,
    `  p50 / p99 ms/charge  ${fmt(r.p50Ms, 2)} / ${fmt(r.p99Ms, 2)}   (p50 authorize ${fmt(r.authorizeP50Ms, 2)}, settle ${fmt(r.settleP50Ms, 2)})`,
    `  gap s/charge         ${r.gapSecondsPerCharge === null ? 'n/a' : fmt(r.gapSecondsPerCharge, 4)}   (a slot's time per charge outside its two requests; mean window ${fmt(r.meanMs, 1)} ms)`,
    `  events/charge        ${fmt(r.eventsPerCharge, 2)}${r.outbox === false ? '   (outbox off: --no-outbox)' : ''}${r.deliveriesPerSecond === null ? '' : `   delivered ${fmt(r.deliveriesPerSecond)} events/s`}`,
    ...(r.forecastSeconds === null
      ? []
      : [
          `  forecast next month  ${fmt(r.forecastCharges ?? 0, 0)} charges in ${fmt(r.forecastSeconds, 2)} s`,
        ]),
    `  peak RSS             ${fmt(r.peakRssBytes / 1048576, 0)} MiB`,
    `  event loop           ${fmt(r.eventLoopUtilization * 100, 0)}% busy, p99 delay ${fmt(r.eventLoopDelayP99Ms, 1)} ms`,
    `  run ${fmt(r.runSeconds)} s, seed ${fmt(r.seedSeconds)} s`,
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    numbers: [
      'mandates',
      'latency-ms',
      'concurrency',
      'max-in-flight',
      'chains',
      'batch-size',
      'ceiling-seconds',
      'per-slot',
      'replicas',
    ],
    flags: [
      'json',
      'sweep',
      'no-outbox',
      'deliver',
      'forecast',
      'forecast-only',
      'no-floor',
      'pglite-memory',
    ],
  });
  const json = args.flag('json');
  const log = (line: string) => {
    if (!json) process.stderr.write(`${line}\n`);
  };
  const latencyMs = args.num('latency-ms', 0);
  const serverUrl = process.env.DATABASE_URL || undefined;
  const sandbox = await startSandboxChild({ latencyMs });
  try {
    if (args.flag('sweep')) {
      const levels = [1, 4, 16, 64, 128, 256];
      // No in-flight cap below twice the largest concurrency unless one is asked for: a slot
      // has its settle in flight while it sends its next authorization.
      const limit = args.num('max-in-flight', 2 * levels[levels.length - 1]!);
      const perSlot = args.num('per-slot', 25);
      const rows: (BenchResult & { idealChargesPerSecond: number; fractionOfCL: number })[] = [];
      for (const concurrency of levels) {
        const mandates = Math.max(25, concurrency * perSlot);
        const p: BenchParams = {
          mandates,
          latencyMs,
          concurrency,
          maxInFlight: limit,
          chains: mandates,
          batchSize: args.num('batch-size', 500),
          ceilingSeconds: args.num('ceiling-seconds', 3),
          floor: false,
        };
        log(`sweep: concurrency ${concurrency}, ${mandates} mandates`);
        const r = await benchOnce(sandbox.url, p, { serverUrl, log, sandboxPid: sandbox.pid });
        // Little's law: in-flight = throughput x time in system. A charge holds its slot for one
        // round trip (the authorization; its settle goes off the slot), so a slot's ideal is C/L.
        const ideal = latencyMs > 0 ? concurrency / (latencyMs / 1000) : Number.NaN;
        rows.push({ ...r, idealChargesPerSecond: ideal, fractionOfCL: r.chargesPerSecond / ideal });
      }
      const out = { kind: 'sweep', latencyMs, maxInFlight: limit, machine: machine(), rows };
      const file = save(`sweep-${rows[0]?.database ?? 'db'}`, out);
      if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
      else {
        process.stdout.write(
          `concurrency sweep at latency ${latencyMs} ms (in-flight limit ${limit}), ${rows[0]?.database}\n`,
        );
        process.stdout.write(
          '  C     charges/s   C/L/s      ÷ C/L   requests/s   p50 ms   ceiling req/s   ratio\n',
        );
        for (const r of rows) {
          process.stdout.write(
            `  ${String(r.concurrency).padEnd(5)} ${fmt(r.chargesPerSecond).padStart(9)}   ${fmt(r.idealChargesPerSecond).padStart(8)}   ${fmt(r.fractionOfCL, 3).padStart(5)}   ${fmt(r.gatewayRequestsPerSecond).padStart(10)}   ${fmt(r.p50Ms, 0).padStart(6)}   ${fmt(r.ceilingRequestsPerSecond).padStart(13)}   ${fmt(r.ceilingRatio, 3)}\n`,
          );
        }
        process.stdout.write(`saved ${file}\n`);
      }
      return 0;
    }
    const mandates = args.num('mandates', 100_000);
    const concurrency = args.num('concurrency', 32);
    const p: BenchParams = {
      mandates,
      latencyMs,
      concurrency,
      // A slot's authorization and, off the slot, the settle before it: up to 2C requests at once.
      maxInFlight: args.num('max-in-flight', 2 * concurrency),
      chains: args.num('chains', Math.min(mandates, 20_000)),
      batchSize: args.num('batch-size', 500),
      ceilingSeconds: args.num('ceiling-seconds', 5),
      outbox: !args.flag('no-outbox'),
      deliver: args.flag('deliver'),
      forecast: args.flag('forecast'),
      floor: !args.flag('no-floor'),
      pgliteMemory: args.flag('pglite-memory'),
    };
    if (args.num('replicas', 0) > 0) {
      const k = args.num('replicas', 2);
      const r = await replicasBench(
        sandbox.url,
        serverUrl,
        {
          mandates: args.num('mandates', 2000),
          replicas: [...new Set([2, k].filter((x) => x <= k))],
          concurrency: args.num('concurrency', 32),
          batchSize: args.num('batch-size', 500),
          latencyMs,
        },
        log,
      );
      const file = save(`replicas-${r.database}`, r);
      if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else {
        process.stdout.write(
          `replicas at latency ${latencyMs} ms, C=${r.concurrency} each, ${fmt(r.mandates, 0)} mandates, ${r.database}\n`,
        );
        for (const pt of r.points)
          process.stdout.write(
            `  K=${pt.replicas}  ${fmt(pt.chargesPerSecond)} charges/s${pt.peakRssBytes === null ? '' : `, peak RSS ${fmt(pt.peakRssBytes / 2 ** 20, 0)} MiB`}${pt.replicas > 1 ? `  (${fmt((r.scaling[String(pt.replicas)] ?? 0) * pt.replicas, 2)}x one replica)` : ''}\n`,
          );
        process.stdout.write(`saved ${file}\n`);
      }
      return 0;
    }
    if (args.flag('forecast-only')) {
      const f = await forecastOnce(sandbox.url, p, { serverUrl, log });
      const file = save(`forecast-${f.database}`, { kind: 'forecast', ...f });
      if (json) process.stdout.write(`${JSON.stringify(f)}\n`);
      else
        process.stdout.write(
          `forecast of the next month over ${fmt(f.mandates, 0)} mandates on ${f.database}: ${fmt(f.charges, 0)} charges in ${fmt(f.forecastSeconds, 2)} s, peak RSS ${fmt(f.peakRssBytes / 1048576, 0)} MiB\nsaved ${file}\n`,
        );
      return 0;
    }
    const r = await benchOnce(sandbox.url, p, { serverUrl, log, sandboxPid: sandbox.pid });
    const file = save(r.database, r);
    if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else process.stdout.write(`${summary(r)}\nsaved ${file}\n`);
    return 0;
  } finally {
    await sandbox.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof ArgsError ? 2 : 1;
  },
);
