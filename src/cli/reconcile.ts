import type { Command } from 'commander';
import { type ReconciliationReport, reconcileWithGateway } from '../billing/run/reconcile.ts';
import type { CliDeps } from './deps.ts';
import { exitCodes, parseInstant, printJson, table } from './output.ts';

export function registerReconcileCommand(program: Command, deps: CliDeps): void {
  program
    .command('reconcile')
    .description(
      'After a restore or a lossy failover, before anything new is sent: ask the gateway about every reference rebill could have used since --since and adopt what it has',
    )
    .requiredOption(
      '--since <iso>',
      'the instant from which the database may have lost writes: the restore point, or when the standby stopped replicating (ISO-8601; without an offset, UTC)',
    )
    .option('--json', 'print a machine-readable report')
    .action(async (opts) => {
      const since = parseInstant('--since', opts.since);
      await deps.withApp(async (app) => {
        const report = await reconcileWithGateway(app, { since, asOf: app.clock.now() });
        if (opts.json) printJson(report);
        else process.stdout.write(formatReconciliation(report));
        if (report.errors > 0) {
          if (!opts.json)
            process.stderr.write(
              `rebill: ${report.errors} reference(s) could not be asked about; run rebill reconcile again before billing\n`,
            );
          process.exitCode = exitCodes.completedWithErrors;
        }
      });
    });
}

export function formatReconciliation(r: ReconciliationReport): string {
  let out = `reconciled with the gateway since ${r.since} (now ${r.asOf}) in ${r.durationMs} ms\n`;
  out += `asked ${r.checked} reference(s); adopted ${r.adopted.length}; open attempts resolved ${r.openResolved}; settles resumed ${r.settlesResumed}; settled ${r.settled}; errors ${r.errors}\n`;
  if (r.adopted.length > 0)
    out += table(
      ['charge', 'mandate', 'cycle', 'reference', 'gateway says', 'adopted as'],
      r.adopted.map((a) => [a.chargeId, a.mandateId, a.cycle, a.reference, a.gatewayStatus, a.outcome]),
    );
  return out;
}
