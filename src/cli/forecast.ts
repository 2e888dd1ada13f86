import { type Command, Option } from 'commander';
import { type Bucket, forecast, plannedCharges } from '../billing/mandates/forecast.ts';
import { csvLine } from '../billing/reporting/csv.ts';
import { formatMoney } from '../domain/money.ts';
import type { CliDeps } from './deps.ts';
import { ID, intOption, parseInstant, printJson, table } from './output.ts';
import { renamedOption } from './vocabulary.ts';

export function registerForecastCommand(program: Command, deps: CliDeps): void {
  const cmd = program
    .command('forecast')
    .description(
      'Every charge the calendar will create in [--from, --to): scheduled changes, credits, ends and cancellations applied. Sends and writes nothing',
    )
    .requiredOption('--from <iso>', 'window start (inclusive)')
    .requiredOption('--to <iso>', 'window end (exclusive)')
    .option('--mandate-id <id>', 'only this mandate', intOption('--mandate-id', ID))
    .option('--currency <code>', 'only this currency')
    .addOption(new Option('--by <bucket>', 'totals per').choices(['day', 'week', 'month']).default('month'))
    .option('--csv', 'every charge as CSV on standard output, streamed')
    .option('--json', 'JSON output (totals, retries already scheduled, and the first 1000 charges)');
  renamedOption(cmd, '--mandate', '--mandate-id').action(async (o) => {
    const from = parseInstant('--from', o.from);
    const to = parseInstant('--to', o.to);
    if (o.currency !== undefined && !/^[A-Z]{3}$/.test(o.currency))
      throw new Error('--currency: must be an ISO-4217 code such as GBP');
    await deps.withApp(async (app) => {
      if (o.csv) {
        if (to.getTime() <= from.getTime()) throw new Error('--to: must be after --from');
        process.stdout.write('mandate_id,customer_ref,kind,cycle,due_at,amount,credit_applied,currency\n');
        for await (const c of plannedCharges(app, {
          from,
          to,
          mandateId: o.mandateId,
          currency: o.currency,
        })) {
          const line = csvLine([
            c.mandateId,
            c.customerRef,
            c.kind,
            c.cycle,
            c.dueAt,
            c.amount,
            c.creditApplied,
            c.currency,
          ]);
          if (!process.stdout.write(line)) await new Promise((r) => process.stdout.once('drain', r));
        }
        return;
      }
      const f = await forecast(app, {
        from,
        to,
        mandateId: o.mandateId,
        currency: o.currency,
        by: o.by as Bucket,
      }).catch((err: unknown) => {
        const e = err as { field?: string; message?: string };
        if (e?.field === 'to' && e.message) e.message = e.message.replace(/^to/, '--to');
        throw err;
      });
      if (o.json) return printJson(f);
      process.stdout.write(
        table(
          [o.by, 'currency', 'charges', 'amount'],
          f.totals.map((t) => [t.bucket, t.currency, t.charges, formatMoney(t.amount, t.currency)]),
        ),
      );
      if (f.scheduled.length > 0)
        process.stdout.write(
          `\nalready scheduled (retries, unsent charges):\n${table(
            ['charge', 'mandate', 'state', 'due', 'amount'],
            f.scheduled.map((c) => [
              c.chargeId,
              c.mandateId,
              c.state,
              c.dueAt,
              formatMoney(c.amount, c.currency),
            ]),
          )}`,
        );
    });
  });
}
