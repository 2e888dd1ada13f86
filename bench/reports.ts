/**
 * Reports and exports at scale: `npm run bench:reports -- [--charges 1000000]`.
 *
 * Seeds a database of its own (on DATABASE_URL's server) with N charges in bulk SQL: a
 * quarter as many mandates, charges spread over 90 days, and their attempts: 70 % authorized
 * first time, 10 % recovered on attempt 2 after a 51, 10 % failed after two 05s, 10 % waiting
 * for a new card after a 54. Then it times the three reports over the whole window, and runs
 * `rebill export charges` over the whole window as a child process (the CLI bundle), reading
 * its peak RSS with /usr/bin/time. Results go to bench/results/.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { openApp } from '../src/app.ts';
import { forecast } from '../src/billing/mandates/forecast.ts';
import { dailyReport, recoveryReport, summaryReport } from '../src/billing/reporting/reports.ts';
import { fixedClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { silentLogger } from '../src/logger.ts';
import { parseArgs } from './lib/args.ts';
import { ownDatabase } from './lib/database.ts';
import { machine } from './lib/machine.ts';
import { rebillCommand } from './lib/worker-cli.ts';

const args = parseArgs(process.argv.slice(2), { numbers: ['charges'], flags: ['keep'] });
const N = args.num('charges', 1_000_000);
const serverUrl = process.env.DATABASE_URL;
if (!serverUrl) throw new Error('DATABASE_URL: the reports bench needs a PostgreSQL server');
const M = Math.ceil(N / 4);
const t0 = new Date('2027-01-01T00:00:00Z');
const DAYS = 90;

const own = await ownDatabase('rebill_reports', serverUrl);
const db = own.database;
const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const s = performance.now();
  const v = await f();
  return [v, Math.round(performance.now() - s)];
};
try {
  const [, seedMs] = await timed(async () => {
    await db.rows(sql`insert into customers (ref) select 'r-' || g from generate_series(0, ${M - 1}::int) g`);
    await db.rows(sql`insert into credentials (customer_id, instrument_type, fingerprint)
      select id, 'link', ref from customers`);
    await db.rows(sql`insert into mandates (customer_id, credential_id, intent, amount, currency, entity,
        narrative, interval_unit, interval_count, timezone, anchor_at, start_at, next_due_at)
      select cr.customer_id, cr.id, 'subscription', 500 + cr.id % 1000, case when cr.id % 5 = 0 then 'EUR' else 'GBP' end,
             'default', 'Reports', 'month', 1, 'UTC', ${t0.toISOString()}::timestamptz, ${t0.toISOString()}::timestamptz,
             ${t0.toISOString()}::timestamptz
        from credentials cr`);
    // charge g: mandate g % M + 1, cycle g / M, due on one of 90 days; its fate by g % 10
    await db.rows(sql`insert into charges (mandate_id, cycle, amount, currency, due_at, next_attempt_at, state,
        attempt_count, settled_amount)
      select m.id, g / ${M}::int, m.amount, m.currency,
             ${t0.toISOString()}::timestamptz + make_interval(days => g % ${DAYS}::int, secs => g % 3600),
             null,
             case when g % 10 < 8 then 'settled' when g % 10 = 8 then 'failed' else 'needs_new_credential' end,
             case when g % 10 < 7 then 1 else 2 end,
             case when g % 10 < 8 then m.amount else 0 end
        from generate_series(0, ${N - 1}::int) g join mandates m on m.id = g % ${M}::int + 1`);
    const attempts = (no: number, state: string, code: string | null, dayOffset: number, filter: string) =>
      db.rows(sql`insert into attempts (charge_id, credential_id, attempt_no, transaction_reference, kind, state,
          refusal_code, fence, attempted_at)
        select c.id, m.credential_id, ${no}::int, 'rb-' || c.id || '-' || ${no}::int, 'recurring', ${state},
               ${code}, 1, c.due_at + make_interval(days => ${dayOffset}::int, hours => 1)
          from charges c join mandates m on m.id = c.mandate_id where ${sql.raw(filter)}`);
    const fate = '((c.id - 1) % 10)';
    await attempts(1, 'authorized', null, 0, `${fate} < 7`);
    await attempts(1, 'refused', '51', 0, `${fate} = 7`);
    await attempts(2, 'authorized', null, 2, `${fate} = 7`);
    await attempts(1, 'refused', '05', 0, `${fate} = 8`);
    await attempts(2, 'refused', '05', 3, `${fate} = 8`);
    await attempts(1, 'refused', '54', 0, `${fate} = 9`);
    await db.rows(sql`analyze`);
  });
  const counted = await db.rows(
    sql`select (select count(*) from charges)::int as charges, (select count(*) from attempts)::int as attempts`,
  );
  process.stdout.write(`seeded ${JSON.stringify(counted[0])} in ${seedMs} ms\n`);

  const config = loadConfig({ ...process.env, DATABASE_URL: own.url!, REBILL_LOG_LEVEL: 'silent' });
  const app = await openApp(config, { database: db, logger: silentLogger, clock: fixedClock(t0) });
  const from = t0;
  const to = new Date(t0.getTime() + (DAYS + 10) * 86_400_000);
  const reports: Record<string, number> = {};
  const runs: [string, () => Promise<unknown>][] = [
    ['summary', () => summaryReport(app, from, to)],
    ['recovery', () => recoveryReport(app, from, to)],
    ['daily', () => dailyReport(app, from, to)],
    ['summaryGBP', () => summaryReport(app, from, to, 'GBP')],
    // the summary's "next 30 days": the forecast over every mandate
    [
      'forecast30Days',
      () =>
        forecast(app, { from: t0, to: new Date(t0.getTime() + 30 * 86_400_000), by: 'month', itemLimit: 0 }),
    ],
  ];
  for (const [name, run] of runs) {
    await run(); // warm
    const [, ms] = await timed(run);
    reports[`${name}Ms`] = ms;
    process.stdout.write(`${name}: ${ms} ms\n`);
  }
  const recovery = await recoveryReport(app, from, to);
  process.stdout.write(
    `${JSON.stringify(recovery.byCode.map((c) => [c.refusalCode, c.refused, c.recovered]))}\n`,
  );

  // the export as a user runs it: the CLI, its peak RSS measured by the kernel
  const cmd = await rebillCommand('bundle');
  const out = join(tmpdir(), `rebill-export-${process.pid}.csv`);
  const [timeOutput, exportMs] = await timed(
    () =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(
          '/usr/bin/time',
          [
            '-f',
            'maxrss_kb=%M',
            process.execPath,
            ...cmd.argv,
            'export',
            'charges',
            '--from',
            from.toISOString(),
            '--to',
            to.toISOString(),
            '--out',
            out,
          ],
          { env: { ...process.env, DATABASE_URL: own.url!, REBILL_LOG_LEVEL: 'warn' } },
        );
        let err = '';
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
        });
        child.on('error', reject);
        child.on('close', (code) =>
          code === 0 ? resolve(err) : reject(new Error(`export exited ${code}: ${err}`)),
        );
      }),
  );
  const peakKb = Number(/maxrss_kb=(\d+)/.exec(timeOutput)?.[1]);
  const bytes = statSync(out).size;
  rmSync(out, { force: true });
  cmd.dispose();
  process.stdout.write(
    `export: ${N} charges, ${(bytes / 1048576).toFixed(1)} MiB CSV in ${exportMs} ms, peak RSS ${(peakKb / 1024).toFixed(1)} MiB\n`,
  );
  await app.close();

  const result = {
    kind: 'reports',
    at: new Date().toISOString(),
    machine: machine(),
    charges: N,
    mandates: M,
    attempts: counted[0]?.attempts,
    seedMs,
    ...reports,
    export: { rows: N, bytes, ms: exportMs, peakRssBytes: peakKb * 1024 },
  };
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}${new Date().toISOString().replace(/[:.]/g, '-')}-reports.json`;
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`result: ${file}\n`);
} finally {
  if (!args.flag('keep')) await own.drop();
}
