/**
 * The fault soak: months of business time billed by `rebill run` worker processes while the
 * sandbox injects faults and a supervisor SIGKILLs workers at random moments, then a check
 * that nothing was lost or charged twice.
 *   npm run soak -- [--mandates N] [--kills K] [--fault-rate P] [--months M] [--seed S]
 *                   [--step-hours H] [--concurrency C] [--keep] [--no-save]
 * Needs DATABASE_URL (PostgreSQL: several processes share it); creates and drops a database
 * of its own. Prints one JSON object on stdout; exit 0 only with zero violations.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { addMonths } from 'date-fns';
import { sql } from 'drizzle-orm';
import { openApp } from '../src/app.ts';
import type { FaultPoint } from '../src/billing/context.ts';
import { createMandate, queueCharge } from '../src/billing/mandates/index.ts';
import { loadConfig } from '../src/config.ts';
import { num } from '../src/db/values.ts';
import { silentLogger } from '../src/logger.ts';
import { startSandbox } from '../src/sandbox/server.ts';
import { ArgsError, parseArgs } from './lib/args.ts';
import { ownDatabase } from './lib/database.ts';
import { startFaultProxy } from './lib/fault-proxy.ts';
import { commit, machine } from './lib/machine.ts';
import { pick, rng } from './lib/rng.ts';
import { checkSoak } from './lib/soak-check.ts';
import { createOperator } from './lib/soak-operator.ts';
import { rebillCommand, startWorker, type WorkerResult } from './lib/worker-cli.ts';

const KEY = '0f'.repeat(32);
const LEASE_SECONDS = 5;
const TIMEOUT_MS = 1000;
const POINTS: FaultPoint[] = [
  'after-write-ahead',
  'after-authorize',
  'after-outcome',
  'after-settle-request',
];

export class SoakSetupError extends Error {
  override name = 'SoakSetupError';
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    numbers: [
      'mandates',
      'kills',
      'fault-rate',
      'months',
      'seed',
      'step-hours',
      'concurrency',
      'two-workers',
      'operator-rate',
      'v7-share',
    ],
    flags: ['keep', 'tsx', 'no-save'],
  });
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    process.stderr.write(
      'soak: DATABASE_URL must name a PostgreSQL server: the soak runs several worker processes on one database (PGlite is one process)\n',
    );
    return 2;
  }
  const p = {
    mandates: args.num('mandates', 500),
    kills: args.num('kills', 20),
    faultRate: args.num('fault-rate', 0.1),
    months: args.num('months', 2),
    seed: args.num('seed', 1),
    stepHours: args.num('step-hours', 24),
    concurrency: args.num('concurrency', 8),
    twoWorkers: args.num('two-workers', 0.25),
    /** Chance per step that an operator pauses, resumes or cancels a mandate while workers run. */
    operatorRate: args.num('operator-rate', 0.5),
    /** Share of the cards that are Card Payments v7 credentials (the rest are v6 chains). */
    v7Share: args.num('v7-share', 0),
  };
  if (p.faultRate > 1) throw new ArgsError('--fault-rate: a probability between 0 and 1');
  if (p.v7Share > 1) throw new ArgsError('--v7-share: a share between 0 and 1');
  const random = rng(p.seed);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const started = performance.now();
  const own = await ownDatabase('rebill_soak', serverUrl, { maxConnections: 4 });
  const proxy = await startFaultProxy({
    rate: 0,
    random: rng(p.seed * 7919 + 1),
    clientTimeoutMs: TIMEOUT_MS,
  });
  const sandbox = await startSandbox({ port: 0, publicUrl: proxy.url, ledgerLimit: 100_000_000 });
  proxy.attach(sandbox);
  const cli = await rebillCommand(args.flag('tsx') ? 'tsx' : 'bundle');
  const env: Record<string, string> = {
    DATABASE_URL: own.url!,
    WORLDPAY_URL: proxy.url,
    WORLDPAY_USERNAME: 'sandbox',
    WORLDPAY_PASSWORD: 'sandbox',
    WORLDPAY_TIMEOUT_MS: String(TIMEOUT_MS),
    REBILL_LEASE_SECONDS: String(LEASE_SECONDS),
    REBILL_EVENT_LAG_MINUTES: '0',
    // Simulated time: runs are asked for days and months ahead of the wall clock.
    REBILL_ALLOW_FUTURE_RUNS: '1',
    REBILL_ENCRYPTION_KEY: KEY,
    REBILL_LOG_LEVEL: 'silent',
    REBILL_CONCURRENCY: String(p.concurrency),
    REBILL_BATCH_SIZE: '50',
  };
  const start = new Date('2026-01-01T00:00:00Z');
  const endAt = addMonths(start, p.months);
  let now = start;
  const app = await openApp(loadConfig(env), {
    database: own.database,
    clock: { now: () => now },
    logger: silentLogger,
  });
  const workers = {
    runs: 0,
    kills: 0,
    crashSwitchKills: 0,
    timedKills: 0,
    twoWorkerSteps: 0,
    failures: 0,
    /** Runs that finished with exit 5: some charges deferred (an injected 429 or refused connection). */
    completedWithErrors: 0,
  };
  const operator = createOperator(app, own.database, () => sandbox.ledger(), random);
  const failures: string[] = [];
  let queued = 0;
  try {
    // seed: every intent, some customers with two mandates on one card
    const unscheduled: number[] = [];
    for (let i = 0; i < p.mandates; ) {
      // A v7 card is a first payment at the sandbox; its mandates' credential is made v7 below.
      const v7 = p.v7Share > 0 && random() < p.v7Share ? await v7Card(sandbox.url, i) : undefined;
      const v = v7
        ? undefined
        : ((await (
            await fetch(`${sandbox.url}/_sandbox/verifications`, { method: 'POST', body: '{}' })
          ).json()) as { href: string });
      const onCard = random() < 0.1 ? 2 : 1;
      for (let k = 0; k < onCard && i < p.mandates; k++, i++) {
        const r = random();
        const startAt = new Date(start.getTime() + Math.floor(random() * 28 * 24) * 3_600_000);
        const base = {
          customerRef: `soak-${i - k}`,
          amount: 500 + Math.floor(random() * 4500),
          currency: 'GBP',
          narrative: 'Soak',
          start: startAt,
          credential: v7 ? v7.credential : { link: v!.href },
        };
        let id: number;
        if (r < 0.55)
          id = (await createMandate(app, { ...base, intent: 'subscription', interval: '1 month' })).id;
        else if (r < 0.7)
          id = (await createMandate(app, { ...base, intent: 'subscription', interval: '1 week' })).id;
        else if (r < 0.92)
          id = (
            await createMandate(app, {
              ...base,
              intent: 'instalment',
              interval: '1 month',
              instalments: 2 + Math.floor(random() * 5),
            })
          ).id;
        else {
          id = (await createMandate(app, { ...base, intent: 'unscheduled' })).id;
          unscheduled.push(id);
        }
        if (v7)
          await own.database.rows(sql`update credentials set api = 'v7', scheme_reference = ${v7.schemeReference}
            where id = (select credential_id from mandates where id = ${id})`);
      }
    }
    log(`soak: ${p.mandates} mandates seeded (${unscheduled.length} unscheduled); faults at ${p.faultRate}`);
    proxy.setRate(p.faultRate);

    const steps: Date[] = [];
    for (let t = start.getTime() + p.stepHours * 3_600_000; t < endAt.getTime(); t += p.stepHours * 3_600_000)
      steps.push(new Date(t));
    steps.push(endAt);
    let lastRunMs = 2000;
    const record = (r: WorkerResult, label: string) => {
      workers.runs++;
      if (r.signal === 'SIGKILL') return;
      if (r.code === 5) workers.completedWithErrors++;
      else if (r.code !== 0) {
        workers.failures++;
        if (failures.length < 5) failures.push(`${label}: exit ${r.code}: ${r.stderr.trim().slice(0, 400)}`);
      } else lastRunMs = r.ms;
    };
    const run = async (at: Date, crashAt?: FaultPoint) => {
      const w = startWorker(cli, ['run', '--at', at.toISOString(), '--json'], {
        ...env,
        ...(crashAt ? { REBILL_CRASH_AT: crashAt } : {}),
      });
      const r = await w.done;
      record(r, at.toISOString());
      return r;
    };
    for (const [i, at] of steps.entries()) {
      now = at;
      // unscheduled mandates: now and then the merchant queues a charge
      for (const id of unscheduled) {
        if (random() < 0.05) {
          try {
            await queueCharge(app, id);
            queued++;
          } catch {
            // the mandate was stopped by dunning meanwhile: nothing to queue
          }
        }
      }
      // kills are spread so that K have happened by the end of the last step
      let attempts = 0;
      const maxAttempts = i === steps.length - 1 ? 10 * p.kills : 4;
      while (workers.kills < Math.ceil((p.kills * (i + 1)) / steps.length) && attempts++ < maxAttempts) {
        if (random() < 0.5) {
          const r = await run(at, pick(random, POINTS));
          if (r.signal === 'SIGKILL') {
            workers.kills++;
            workers.crashSwitchKills++;
          }
        } else {
          const w = startWorker(cli, ['run', '--at', at.toISOString(), '--json'], env);
          const timer = setTimeout(() => w.kill(), 150 + random() * lastRunMs);
          const r = await w.done;
          clearTimeout(timer);
          record(r, at.toISOString());
          if (r.signal === 'SIGKILL') {
            workers.kills++;
            workers.timedKills++;
          }
        }
      }
      // The operator acts while this step's run is in flight, at a random moment of it.
      const acting =
        random() < p.operatorRate
          ? sleep(random() * lastRunMs).then(() => operator.act())
          : Promise.resolve();
      if (random() < p.twoWorkers) {
        workers.twoWorkerSteps++;
        await Promise.all([run(at), run(at), acting]);
      } else await Promise.all([run(at), acting]);
      if ((i + 1) % 10 === 0 || i === steps.length - 1)
        log(
          `soak: step ${i + 1}/${steps.length} at ${at.toISOString().slice(0, 10)}, ${workers.kills} kills, ${workers.runs} worker runs`,
        );
    }

    // catch-up with faults off: wait out the leases of killed workers, run until nothing is left
    proxy.setRate(0);
    let catchUps = 0;
    for (; catchUps < 6; catchUps++) {
      await sleep(LEASE_SECONDS * 1000 + 500);
      const r = await run(endAt);
      // A paused mandate's waiting charges are held, not open.
      const open =
        await own.database.rows(sql`select count(*)::int as n from charges c join mandates m on m.id = c.mandate_id
        where c.state in ('attempting', 'unknown', 'authorized')
           or (m.status <> 'paused' and (c.state = 'pending'
               or (c.state = 'retry_scheduled' and c.next_attempt_at <= ${endAt.toISOString()}::timestamptz)))`);
      if (r.code === 0 && num(open[0]?.n) === 0) break;
    }
    const check = await checkSoak(own.database, sandbox.ledger(), {
      endAt,
      slowReferences: proxy.slowReferences,
      prefix: app.config.billing.referencePrefix,
    });
    const held = await operator.finish();
    const violations = { ...check.violations, ...held.violations, workerFailures: workers.failures };
    const total = Object.values(violations).reduce((a, b) => a + b, 0);
    const out = {
      kind: 'soak',
      parameters: p,
      seconds: Math.round((performance.now() - started) / 1000),
      workers: { ...workers, catchUps: catchUps + 1 },
      operator: held.actions,
      queuedCharges: queued,
      injected: proxy.injected,
      counts: check.counts,
      chargeStates: check.chargeStates,
      violations,
      totalViolations: total,
      examples: {
        ...check.examples,
        ...held.examples,
        ...(failures.length > 0 ? { workerFailures: failures } : {}),
      },
      machine: machine(),
      commit: commit(),
      at: new Date().toISOString(),
    };
    if (!args.flag('no-save')) {
      const dir = fileURLToPath(new URL('./results/', import.meta.url));
      mkdirSync(dir, { recursive: true });
      writeFileSync(`${dir}${out.at.replace(/[:.]/g, '-')}-soak.json`, `${JSON.stringify(out, null, 2)}\n`);
    }
    process.stdout.write(`${JSON.stringify(out)}\n`);
    log(
      `soak: ${check.counts.gatewayAuthorizations} authorizations, ${workers.kills} kills, ${workers.runs} worker runs in ${out.seconds}s: ${total === 0 ? 'zero violations' : `${total} VIOLATIONS ${JSON.stringify(violations)}`}`,
    );
    return total === 0 ? 0 : 1;
  } finally {
    await app.close();
    cli.dispose();
    await proxy.close();
    await sandbox.close();
    if (!args.flag('keep')) await own.drop();
    else log(`soak: kept database ${own.url}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = err instanceof ArgsError ? 2 : 1;
  },
);

/** A Luhn-valid card number of its own for each seeded v7 card. */
function cardNumberFor(n: number): string {
  const body = `4${String(n).padStart(14, '0')}`;
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return body + String((10 - (sum % 10)) % 10);
}

/** A v7 card: its first payment at the sandbox, and the card credential a mandate is created with. */
async function v7Card(sandboxUrl: string, n: number) {
  const cardNumber = cardNumberFor(n);
  const res = await fetch(`${sandboxUrl}/_sandbox/v7/first-payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ cardNumber, expiryMonth: 12, expiryYear: 2035 }),
  });
  if (res.status !== 201) throw new SoakSetupError(`first payment: HTTP ${res.status} ${await res.text()}`);
  const first = (await res.json()) as { schemeReference: string };
  return {
    schemeReference: first.schemeReference,
    credential: { cardNumber, expiryMonth: 12, expiryYear: 2035 },
  };
}
