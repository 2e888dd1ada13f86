import type { Command } from 'commander';
import type { RunReport } from '../billing/run/run.ts';
import { MAX_RUN_LIMIT, runBilling } from '../billing/run/run.ts';
import { cycleLabel, RUN_COUNT_LABELS } from '../domain/labels.ts';
import { formatMoney } from '../domain/money.ts';
import type { CliDeps } from './deps.ts';
import { exitCodes, humanTimes, ID, intOption, parseInstant, printJson, table } from './output.ts';
import { progressBar } from './terminal.ts';
import { renamedOption } from './vocabulary.ts';

export function registerRunCommand(program: Command, deps: CliDeps): void {
  const run = program
    .command('run')
    .description(
      'Bill everything due at or before --as-of (default now): charges, retries, reconciliation, settlement',
    )
    .option('--as-of <iso>', 'treat this instant as now (ISO-8601; without an offset, UTC)')
    .option('--allow-future', 'allow --as-of more than 5 minutes ahead of now (bills customers early)')
    .option('--dry-run', 'list what would be charged and send nothing')
    .option('--mandate-id <id>', 'only this mandate', intOption('--mandate-id', ID))
    .option(
      '--limit <n>',
      'at most this many authorizations',
      intOption('--limit', { min: 1, max: MAX_RUN_LIMIT, what: `an integer from 1 to ${MAX_RUN_LIMIT}` }),
    )
    .option('--follow-settlements', 'also ask the gateway about settlements still pending')
    .option('--json', 'print a machine-readable report');
  renamedOption(run, '--at', '--as-of');
  renamedOption(run, '--mandate', '--mandate-id');
  run.action(async (opts) => {
    const asOf = opts.asOf ? parseInstant('--as-of', opts.asOf) : new Date();
    const mandateId: number | undefined = opts.mandateId;
    await deps.withApp(
      async (app) => {
        const bar = progressBar('charging', !opts.json);
        const report = await runBilling(app, {
          asOf,
          dryRun: Boolean(opts.dryRun),
          mandateId,
          limit: opts.limit,
          trigger: 'cli',
          allowFuture: Boolean(opts.allowFuture),
          asOfField: '--as-of',
          followSettlements: Boolean(opts.followSettlements),
          onTotal: (n) => bar.total(n),
          onProgress: (c) => bar.update(c.attempted + c.skipped),
        }).finally(() => bar.stop());
        if (opts.json) printJson(report);
        else process.stdout.write(formatRunReport(report));
        if (report.status === 'completed_with_errors') {
          if (!opts.json)
            process.stderr.write(
              `rebill: run ${report.runId} finished with ${report.counts.errors} error(s): ${report.errors.join('; ')}\n`,
            );
          process.exitCode = exitCodes.completedWithErrors;
        } else if (report.status === 'interrupted') process.exitCode = exitCodes.failure;
      },
      { asOf },
    );
  });
}

export function formatRunReport(r: RunReport): string {
  let out = `run ${r.runId} at ${humanTimes(r.asOf)}${r.dryRun ? ' (dry run: nothing sent)' : ''}: ${r.status} in ${r.durationMs} ms\n`;
  if (r.forecast) {
    out +=
      r.forecast.length === 0
        ? 'nothing due\n'
        : table(
            ['mandate', 'cycle', 'amount', 'due', 'kind'],
            r.forecast.map((f) => [
              f.mandateId,
              cycleLabel(f),
              formatMoney(f.amount, f.currency),
              f.dueAt,
              f.kind,
            ]),
          );
    return out;
  }
  const c = r.counts;
  const shown = [
    'due',
    'attempted',
    'authorized',
    'refused',
    'unknown',
    'errors',
    'settleRequested',
    'retryScheduled',
    'needsNewCredential',
    'stopped',
    'failed',
  ] as const;
  out += table(
    shown.map((k) => RUN_COUNT_LABELS[k]),
    [shown.map((k) => c[k])],
  );
  if (c.reconciled > 0) out += `reconciled ${c.reconciled} attempt(s) left open by an earlier run\n`;
  if (r.refusals.length > 0) {
    out += '\nrefusals\n';
    out += table(
      ['code', 'advice', 'decision', 'count', 'next attempt'],
      r.refusals.map((x) => [x.code, x.adviceCode, x.decision, x.count, x.nextAttemptAt]),
    );
  }
  return out;
}
