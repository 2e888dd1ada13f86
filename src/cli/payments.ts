import type { Command } from 'commander';
import { type ChargeDetail, getCharge } from '../billing/operator/charges.ts';
import { type PaymentOp, paymentAction, paymentEvents } from '../billing/operator/payments.ts';
import { formatMoney } from '../domain/money.ts';
import type { CliDeps } from './deps.ts';
import { idArg, intOption, printJson, table } from './output.ts';

const actions: { name: string; kind: PaymentOp; amount: boolean; what: string }[] = [
  { name: 'settle', kind: 'settle', amount: false, what: 'Settle the full authorized amount' },
  {
    name: 'partial-settle',
    kind: 'partialSettle',
    amount: true,
    what: 'Settle part of the authorized amount',
  },
  { name: 'cancel', kind: 'cancel', amount: false, what: 'Cancel an authorization with nothing settled' },
  { name: 'refund', kind: 'refund', amount: false, what: 'Refund what is settled and not yet refunded' },
  { name: 'partial-refund', kind: 'partialRefund', amount: true, what: 'Refund part of the settled amount' },
  {
    name: 'reverse',
    kind: 'reversal',
    amount: false,
    what: 'Reverse the payment (the gateway cancels or refunds)',
  },
];

function printCharge(c: ChargeDetail): void {
  process.stdout.write(
    `charge ${c.id} (mandate ${c.mandateId}, cycle ${c.cycle}): ${c.state}, ${formatMoney(c.amount, c.currency)}, ` +
      `settled ${formatMoney(c.settledAmount, c.currency)}, refunded ${formatMoney(c.refundedAmount, c.currency)}\n`,
  );
  if (c.actions.length > 0)
    process.stdout.write(
      table(
        ['action', 'kind', 'reference', 'amount', 'state', 'last event', 'error'],
        c.actions.map((a) => [
          a.id,
          a.kind,
          a.reference,
          a.amount === null ? null : formatMoney(a.amount, a.currency ?? c.currency),
          a.state,
          a.lastEvent,
          a.error,
        ]),
      ),
    );
}

export function registerPaymentCommands(program: Command, deps: CliDeps): void {
  const payments = program
    .command('payments')
    .description('Settle, cancel, refund or reverse the payment of a charge; query its events');
  for (const a of actions) {
    const cmd = payments
      .command(`${a.name} <chargeId>`)
      .description(`${a.what} (amounts checked before Worldpay is called)`);
    if (a.amount) cmd.requiredOption('--amount <minor>', 'amount in minor units', intOption('--amount'));
    cmd
      .option('--currency <code>', 'refuse unless the charge is in this currency')
      .option('--json', 'print JSON')
      .action(async (id: string, opts: { amount?: number; currency?: string; json?: boolean }) => {
        const chargeId = idArg('chargeId', id);
        const body = {
          ...(a.amount ? { amount: opts.amount } : {}),
          ...(opts.currency ? { currency: opts.currency } : {}),
        };
        await deps.withApp(async (app) => {
          const out = await paymentAction(app, chargeId, a.kind, body);
          if (opts.json) return printJson(out);
          process.stdout.write(
            `${a.kind} ${out.reference}${out.amount !== null && out.currency ? ` ${formatMoney(out.amount, out.currency)}` : ''}: ${out.outcome}` +
              `${out.outcome === 'unknown' ? ' (run `rebill payments events` to resolve it before trying again)' : ''}\n`,
          );
          printCharge(out.charge);
        });
      });
  }
  payments
    .command('events <chargeId>')
    .description("Ask the gateway for the payment's latest status and apply it")
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const chargeId = idArg('chargeId', id);
      await deps.withApp(async (app) => {
        const out = await paymentEvents(app, chargeId);
        if (opts.json) return printJson(out);
        process.stdout.write(
          out.found === true
            ? `payment is ${out.rawStatus}${out.applied ? `: charge moved to ${out.applied}` : ''}\n`
            : out.found === false
              ? 'no events yet (Worldpay events can lag up to 15 minutes)\n'
              : 'the gateway could not be asked (try again)\n',
        );
        printCharge(out.charge);
      });
    });
  payments
    .command('show <chargeId>')
    .description('A charge with its payment actions and events')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const chargeId = idArg('chargeId', id);
      await deps.withApp(async (app) => {
        const c = await getCharge(app.database, chargeId);
        if (opts.json) printJson(c);
        else printCharge(c);
      });
    });
}
