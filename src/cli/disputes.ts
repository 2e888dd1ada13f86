import { type Command, Option } from 'commander';
import { listDisputes } from '../billing/disputes/views.ts';
import { disputeMachine } from '../domain/lifecycle.ts';
import { formatMoney } from '../domain/money.ts';
import type { CliDeps } from './deps.ts';
import { ID, intOption, PAGE_SIZE, printJson, table } from './output.ts';

/** `GET /v1/disputes` on the command line: what an operator goes through after a chargeback. */
export function registerDisputeCommands(program: Command, deps: CliDeps): void {
  const disputes = program
    .command('disputes')
    .description("Charges' disputes (Worldpay informationRequested and chargedBack)");
  disputes
    .command('list')
    .description('Disputes of charges, oldest first; each charge shows its own in `charges show`')
    .addOption(
      new Option('--status <s>', 'a dispute status (information_requested: open, the funds held)').choices(
        Object.keys(disputeMachine.transitions),
      ),
    )
    .option('--mandate-id <id>', "only the disputes of this mandate's charges", intOption('--mandate-id', ID))
    .option('--limit <n>', 'page size (max 1000)', intOption('--limit', PAGE_SIZE), 50)
    .option('--after <id>', 'next page: disputes after this id', intOption('--after', ID))
    .option('--json', 'JSON output')
    .action(async (o) => {
      await deps.withApp(async (app) => {
        const page = await listDisputes(app.database, {
          status: o.status,
          mandateId: o.mandateId,
          limit: o.limit,
          after: o.after,
        });
        if (o.json) return printJson(page);
        process.stdout.write(
          table(
            [
              'dispute',
              'charge',
              'status',
              'amount',
              'reason code',
              'reason',
              'disputed',
              'charged back',
              'policy',
            ],
            page.items.map((d) => [
              d.id,
              d.chargeId,
              d.status,
              formatMoney(d.amount, d.currency),
              d.reasonCode,
              d.reason,
              d.disputedAt,
              d.chargedBackAt,
              d.policy,
            ]),
          ),
        );
        if (page.next !== null) process.stdout.write(`more: --after ${page.next}\n`);
      });
    });
}
