import type { Command } from 'commander';
import { type ChargeDetail, getCharge } from '../billing/operator/charges.ts';
import {
  type PaymentOp,
  paymentAction,
  paymentEvents,
  recordedPaymentEvents,
} from '../billing/operator/payments.ts';
import { cycleLabel } from '../domain/labels.ts';
import { formatMoney } from '../domain/money.ts';
import type { CliDeps } from './deps.ts';
import { idArg, intOption, printJson, table } from './output.ts';
import { deprecationNotice } from './vocabulary.ts';

const actions: { name: string; old?: string; kind: PaymentOp; amount: boolean; what: string }[] = [
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
    name: 'reversal',
    old: 'reverse',
    kind: 'reversal',
    amount: false,
    what: 'Reverse the payment (the gateway cancels or refunds)',
  },
];

function printCharge(c: ChargeDetail): void {
  process.stdout.write(
    `charge ${c.id} (mandate ${c.mandateId}, cycle ${cycleLabel(c)}): ${c.state}, ${formatMoney(c.amount, c.currency)}, ` +
      `settled ${formatMoney(c.settledAmount, c.currency)}, refunded ${formatMoney(c.refundedAmount, c.currency)}\n`,
  );
  printActions(c);
}

/** A charge's payment actions, as a table (nothing when it has none). */
export function printActions(c: ChargeDetail): void {
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

/**
 * A charge's payment actions under `rebill charges`, each named as its API path
 * (`charges reversal` is `POST /v1/charges/{id}/reversal`), and `payments`, their spelling before
 * one vocabulary, kept hidden for one release: each of its commands prints the notice and runs
 * the `charges` one.
 */
export function registerPaymentCommands(program: Command, deps: CliDeps): void {
  const charges = program.commands.find((c) => c.name() === 'charges');
  if (!charges) throw new Error('register the charges commands first');
  registerActions(charges, deps, (a) => a.name);
  const payments = program
    .command('payments', { hidden: true })
    .description('Deprecated: the charges commands (rebill charges settle|...|reversal|query|show)');
  registerActions(payments, deps, (a) => a.old ?? a.name);
  for (const cmd of payments.commands) {
    const now = OLD_NAMES[cmd.name()] ?? cmd.name();
    cmd.hook('preAction', () => deprecationNotice(`rebill payments ${cmd.name()}`, `rebill charges ${now}`));
  }
}

/** `payments X` → `charges Y` where the word changed. */
const OLD_NAMES: Record<string, string> = { reverse: 'reversal', events: 'query' };

function registerActions(
  group: Command,
  deps: CliDeps,
  nameOf: (a: { name: string; old?: string }) => string,
): void {
  for (const a of actions) {
    const cmd = group
      .command(`${nameOf(a)} <chargeId>`)
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
              `${out.outcome === 'unknown' ? ' (run `rebill charges query` to resolve it before trying again)' : ''}\n`,
          );
          printCharge(out.charge);
        });
      });
  }
  group
    .command(`${nameOf({ name: 'query', old: 'events' })} <chargeId>`)
    .description(
      "Ask the gateway for the payment's latest status and record it (POST /v1/charges/{id}/query)",
    )
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
  if (group.name() === 'charges')
    group
      .command('events <chargeId>')
      .description("The payment's events as recorded (webhooks and queries); asks nothing")
      .option('--json', 'print JSON')
      .action(async (id: string, opts: { json?: boolean }) => {
        const chargeId = idArg('chargeId', id);
        await deps.withApp(async (app) => {
          const out = await recordedPaymentEvents(app, chargeId);
          if (opts.json) return printJson(out);
          process.stdout.write(
            table(
              ['event', 'source', 'event id', 'received'],
              out.items.map((e) => [e.lastEvent, e.source, e.eventId, e.receivedAt]),
            ),
          );
        });
      });
  if (group.name() === 'payments')
    group
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
