import type { Command, CommandOptions } from 'commander';
import { dailyReport, recoveryReport, summaryReport } from '../billing/reporting/reports.ts';
import { formatMoney } from '../domain/money.ts';
import type { CliDeps } from './deps.ts';
import { parseInstant, printJson, table } from './output.ts';
import { renamedCommand } from './vocabulary.ts';

/** A report's window (`--from`, `--to`), its currency filter where it has one, and `--json`. */
function windowOptions(cmd: Command, opts: { currency: boolean }): Command {
  cmd
    .requiredOption('--from <iso>', 'window start (inclusive)')
    .requiredOption('--to <iso>', 'window end (exclusive)');
  if (opts.currency) cmd.option('--currency <code>', 'only this currency');
  return cmd.option('--json', 'JSON output');
}

const windowOf = (o: { from: string; to: string }) => ({
  from: parseInstant('--from', o.from),
  to: parseInstant('--to', o.to),
});

export function registerReportCommands(program: Command, deps: CliDeps): void {
  // `reports` as the API's /v1/reports; `report` was its spelling before one vocabulary.
  renamedCommand('report', 'reports', (name, options) => reportCommands(program, name, options, deps));
}

function reportCommands(program: Command, name: string, options: CommandOptions, deps: CliDeps): Command {
  const report = program
    .command(name, options)
    .description('What billing and dunning did in a window: charged, settled, refunded, net, recovered');
  const summary = report
    .command('summary')
    .description(
      'Charged, settled, first-attempt rate, refusals, recovered by retry, failed for good, per currency',
    );
  windowOptions(summary, { currency: true })
    .option('--no-forecast', "leave out the next 30 days' forecast, which walks every mandate's calendar")
    .action(async (o) => {
      const { from, to } = windowOf(o);
      await deps.withApp(async (app) => {
        const r = await summaryReport(app, from, to, o.currency, { forecast: o.forecast !== false });
        if (o.json) return printJson(r);
        process.stdout.write(
          table(
            [
              'currency',
              'charged',
              'settled',
              'refunded',
              'net',
              '1st attempt',
              'refusals',
              'recovered',
              'failed for good',
            ],
            r.currencies.map((c) => [
              c.currency,
              `${c.charged.charges} / ${formatMoney(c.charged.amount, c.currency)}`,
              formatMoney(c.settledAmount, c.currency),
              formatMoney(c.refundedAmount, c.currency),
              formatMoney(c.netAmount, c.currency),
              c.firstAttemptRate === null ? null : `${(c.firstAttemptRate * 100).toFixed(1)} %`,
              c.refusals,
              `${c.recoveredByRetry.charges} / ${formatMoney(c.recoveredByRetry.amount, c.currency)}`,
              `${c.failedForGood.charges} / ${formatMoney(c.failedForGood.amount, c.currency)}`,
            ]),
          ),
        );
        process.stdout.write(
          `unknown outcomes open: ${r.unknownOpen}; mandates: ${Object.entries(r.mandatesByStatus)
            .map(([k, v]) => `${v} ${k}`)
            .join(', ')}\n`,
        );
      });
    });
  const recovery = report
    .command('recovery')
    .description(
      'Per first refusal code: refused, recovered, rate, amount, median days and attempts; the retry funnel',
    );
  windowOptions(recovery, { currency: false }).action(async (o) => {
    const { from, to } = windowOf(o);
    await deps.withApp(async (app) => {
      const r = await recoveryReport(app, from, to);
      if (o.json) return printJson(r);
      process.stdout.write(
        table(
          [
            'code',
            'advice',
            'refused',
            'recovered',
            'rate',
            'median days',
            'median attempt',
            'amount recovered',
            'failed',
            'stopped',
            'new card',
          ],
          r.byCode.map((c) => [
            c.refusalCode,
            c.adviceCode,
            c.refused,
            c.recovered,
            `${(c.recoveryRate * 100).toFixed(1)} %`,
            c.medianDaysToRecover,
            c.medianAttemptsToRecover,
            Object.entries(c.recoveredAmount)
              .map(([cur, a]) => formatMoney(a, cur))
              .join(', '),
            c.failed,
            c.stopped,
            c.needsNewCredential,
          ]),
        ),
      );
      process.stdout.write(
        `\nretry funnel:\n${table(
          ['attempt', 'made', 'authorized', 'rate'],
          r.funnel.map((f) => [f.attempt, f.attempts, f.authorized, `${(f.rate * 100).toFixed(1)} %`]),
        )}`,
      );
      if (r.paypal.length > 0)
        process.stdout.write(
          `\nPayPal (apart from card charges):\n${table(
            ['currency', 'tracked', 'amount', 'refunds', 'refunded', 'failed', 'in doubt'],
            r.paypal.map((p) => [
              p.currency,
              p.tracked,
              formatMoney(p.trackedAmount, p.currency),
              p.refunds,
              formatMoney(p.refundedAmount, p.currency),
              p.refundsFailed,
              p.refundsInDoubt,
            ]),
          )}`,
        );
    });
  });
  const daily = report
    .command('daily')
    .description('Per UTC day and currency: authorized first time, refused, recovered by a retry');
  windowOptions(daily, { currency: true }).action(async (o) => {
    const { from, to } = windowOf(o);
    await deps.withApp(async (app) => {
      const r = await dailyReport(app, from, to, o.currency);
      if (o.json) return printJson(r);
      process.stdout.write(
        r.days.length === 0
          ? 'no attempts in this window\n'
          : table(
              ['day', 'currency', 'authorized', 'refused', 'recovered'],
              r.days.map((d) => [d.day, d.currency, d.authorized, d.refused, d.recovered]),
            ),
      );
    });
  });
  return report;
}
