import type { Command } from 'commander';
import { getRun, listRuns } from '../billing/reporting/runs.ts';
import type { CliDeps } from './deps.ts';
import { ID, idArg, intOption, PAGE_SIZE, printJson, table } from './output.ts';

export function registerRunsCommands(program: Command, deps: CliDeps): void {
  const runs = program.command('runs').description('Billing runs, whoever started them (CLI, API, cron)');
  runs
    .command('list')
    .description('Runs, newest first')
    .option('--limit <n>', 'page size', intOption('--limit', PAGE_SIZE), 20)
    .option('--before <id>', 'next page: runs before this id', intOption('--before', ID))
    .option('--json', 'JSON output')
    .action(async (o) => {
      await deps.withApp(async (app) => {
        const page = await listRuns(app, { limit: o.limit, before: o.before });
        if (o.json) return printJson(page);
        process.stdout.write(
          table(
            [
              'run',
              'trigger',
              'as of',
              'status',
              'due',
              'authorized',
              'refused',
              'unknown',
              'started',
              'finished',
            ],
            page.items.map((r) => [
              r.id,
              `${r.trigger}${r.dryRun ? ' (dry)' : ''}`,
              r.asOf,
              r.status,
              r.counts.due,
              r.counts.authorized,
              r.counts.refused,
              r.counts.unknown,
              r.startedAt,
              r.finishedAt,
            ]),
          ),
        );
        if (page.next !== null) process.stdout.write(`more: --before ${page.next}\n`);
      });
    });
  runs
    .command('show <id>')
    .description('One run: status, progress counts, timestamps')
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const r = await getRun(app, idArg('id', id));
        if (o.json) return printJson(r);
        process.stdout.write(
          table(
            ['field', 'value'],
            [
              ['run', r.id],
              ['trigger', r.trigger],
              ['as of', r.asOf],
              ['status', r.status],
              ['started', r.startedAt],
              ['finished', r.finishedAt],
              ['error', r.error],
              ...Object.entries(r.counts).map(([k, v]): [string, number] => [k, v]),
            ],
          ),
        );
      });
    });
}
