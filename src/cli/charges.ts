import { type Command, Option } from 'commander';
import { dunningReport, getCharge, listCharges, retryNow } from '../billing/operator/charges.ts';
import { cycleLabel } from '../domain/labels.ts';
import { chargeMachine } from '../domain/lifecycle.ts';
import { formatMoney } from '../domain/money.ts';
import type { CliDeps } from './deps.ts';
import { ID, idArg, intOption, PAGE_SIZE, parseInstant, printJson, table } from './output.ts';
import { printActions } from './payments.ts';
import { formatRunReport } from './run.ts';
import { renamedOption } from './vocabulary.ts';

export function registerChargeCommands(program: Command, deps: CliDeps): void {
  const charges = program
    .command('charges')
    .description(
      'Inspect charges and their dunning state; retry one now; settle, cancel, refund or reverse its payment; ask the gateway about it',
    );

  const list = charges
    .command('list')
    .description('List charges; --state dunning lists every charge in dunning with its refusal and decision')
    .addOption(
      new Option('--state <state>', 'a charge state, or dunning (all four dunning states)').choices([
        ...Object.keys(chargeMachine.transitions),
        'dunning',
      ]),
    )
    .option('--mandate-id <id>', 'only this mandate', intOption('--mandate-id', ID))
    .option('--customer-ref <prefix>', 'only customers whose ref starts with this (ada finds ada-1)')
    .option('--search <text>', 'a charge id or a transaction reference exactly, or a customer ref by prefix')
    .option('--code <code>', 'only charges whose last refusal had this code')
    .option('--due-from <iso>', 'only charges due at or after this instant')
    .option('--due-to <iso>', 'only charges due before this instant')
    .option('--limit <n>', 'page size (max 1000)', intOption('--limit', PAGE_SIZE), 50)
    .option('--after <id>', 'next page: charges after this id', intOption('--after', ID))
    .option('--json', 'JSON output');
  renamedOption(list, '--mandate', '--mandate-id').action(async (o) => {
    await deps.withApp(async (app) => {
      const page = await listCharges(app.database, {
        state: o.state,
        mandateId: o.mandateId,
        customerRef: o.customerRef,
        q: o.search,
        refusalCode: o.code,
        dueFrom: o.dueFrom === undefined ? undefined : parseInstant('--due-from', o.dueFrom),
        dueTo: o.dueTo === undefined ? undefined : parseInstant('--due-to', o.dueTo),
        limit: o.limit,
        after: o.after,
      });
      const summary = o.state === 'dunning' ? await dunningReport(app.database) : undefined;
      if (o.json) return printJson({ ...page, ...(summary ? { summary } : {}) });
      process.stdout.write(
        table(
          [
            'charge',
            'mandate',
            'customer',
            'cycle',
            'amount',
            'state',
            'code',
            'advice',
            'decision',
            'next attempt',
            'reason',
          ],
          page.items.map((c) => [
            c.id,
            c.mandateId,
            c.customerRef,
            cycleLabel(c),
            formatMoney(c.amount, c.currency),
            c.state,
            c.lastAttempt?.refusalCode,
            c.lastAttempt?.adviceCode,
            c.lastAttempt?.decision,
            c.state === 'retry_scheduled' ? c.nextAttemptAt : null,
            c.lastAttempt?.decisionReason ?? c.stateReason,
          ]),
        ),
      );
      if (page.next !== null) process.stdout.write(`more: --after ${page.next}\n`);
      if (summary && summary.length > 0) {
        process.stdout.write('\nrefusals by code\n');
        process.stdout.write(
          table(
            ['code', 'advice', 'decision', 'state', 'charges', 'next attempt'],
            summary.map((s) => [s.code, s.adviceCode, s.decision, s.state, s.charges, s.nextAttemptAt]),
          ),
        );
      }
    });
  });

  charges
    .command('show <id>')
    .description(
      'Show a charge with its last attempt, dunning decision, payment actions and disputes (chargebacks)',
    )
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const c = await getCharge(app.database, idArg('id', id));
        if (o.json) return printJson(c);
        process.stdout.write(
          table(
            ['field', 'value'],
            [
              ['charge', c.id],
              ['mandate', c.mandateId],
              ['cycle', cycleLabel(c)],
              ['amount', formatMoney(c.amount, c.currency)],
              ['state', c.state],
              ['reason', c.stateReason],
              ['attempts', c.attemptCount],
              ['next attempt', c.nextAttemptAt],
              ['last reference', c.lastAttempt?.reference],
              [
                'last refusal',
                c.lastAttempt?.refusalCode
                  ? `${c.lastAttempt.refusalCode} ${c.lastAttempt.refusalDescription ?? ''}`
                  : null,
              ],
              ['advice code', c.lastAttempt?.adviceCode],
              ['decision', c.lastAttempt?.decisionReason],
              ['settled', formatMoney(c.settledAmount, c.currency)],
              ['refunded', formatMoney(c.refundedAmount, c.currency)],
            ],
          ),
        );
        if (c.actions.length > 0) {
          process.stdout.write('\npayment actions\n');
          printActions(c);
        }
        if (c.disputes.length > 0) {
          process.stdout.write('\ndisputes\n');
          process.stdout.write(
            table(
              [
                'dispute',
                'status',
                'amount',
                'reason code',
                'reason',
                'disputed',
                'charged back',
                'received',
                'policy',
              ],
              c.disputes.map((d) => [
                d.id,
                d.status,
                formatMoney(d.amount, d.currency),
                d.reasonCode,
                d.reason,
                d.disputedAt,
                d.chargedBackAt,
                d.receivedAt,
                d.policy,
              ]),
            ),
          );
        }
      });
    });

  charges
    .command('retry-now <id>')
    .description('Retry a charge now (refused when an outcome is unknown or the card ledger forbids it)')
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const report = await retryNow(app, idArg('id', id));
        if (o.json) printJson(report);
        else process.stdout.write(formatRunReport(report));
      });
    });
}
