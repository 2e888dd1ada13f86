import type { Command } from 'commander';
import {
  type PaypalAsked,
  refundPaypalPayment,
  showPaypalPayment,
  trackPaypalPayment,
} from '../billing/paypal/payments.ts';
import {
  listPaypalPayments,
  type PaypalPaymentDetail,
  type PaypalPaymentView,
} from '../billing/paypal/views.ts';
import { formatMoney } from '../domain/money.ts';
import type { CliDeps } from './deps.ts';
import { ID, idArg, intOption, printJson, table } from './output.ts';
import { renamedOption } from './vocabulary.ts';

const money = (p: PaypalPaymentView, amount: number) => formatMoney(amount, p.currency);

function printPayment(p: PaypalPaymentDetail, asked?: PaypalAsked): void {
  if (asked && !asked.asked) process.stdout.write(`Worldpay was not asked afresh: ${asked.reason}\n`);
  process.stdout.write(
    `PayPal payment ${p.id}${p.customerRef ? ` (customer ${p.customerRef}${p.mandateId ? `, mandate ${p.mandateId}` : ''})` : ''}: ` +
      `last event ${p.lastEvent}, ${money(p, p.amount)}, refunded ${money(p, p.refunded)}` +
      `${p.pending > 0 ? `, in doubt ${money(p, p.pending)}` : ''}, left ${money(p, p.left)}` +
      `${p.refundable ? '' : ' (not refundable now)'}\n`,
  );
  if (p.refunds.length > 0)
    process.stdout.write(
      table(
        ['refund', 'kind', 'reference', 'amount', 'state', 'error'],
        p.refunds.map((r) => [
          r.id,
          r.kind,
          r.reference,
          formatMoney(r.amount, r.currency),
          r.state,
          r.error,
        ]),
      ),
    );
}

/** `rebill paypal ...`: PayPal payments tracked by their Worldpay events link, queried and refunded. */
export function registerPaypalCommands(program: Command, deps: CliDeps): void {
  const paypal = program
    .command('paypal')
    .description(
      'Track PayPal payments taken at checkout by their Worldpay events link; query and refund them',
    );

  const track = paypal
    .command('track')
    .description(
      'Track a PayPal payment by its action:events link (asked at once; the amount is yours to give)',
    )
    .requiredOption(
      '--events-link <href>',
      "the payment's action:events link, on the configured Worldpay origin",
    )
    .requiredOption('--amount <minor>', 'the payment amount in minor units', intOption('--amount'))
    .requiredOption('--currency <code>', 'ISO-4217 currency')
    .option(
      '--transaction-reference <ref>',
      "the checkout's transactionReference (Worldpay's webhooks name the payment by it)",
    )
    .option('--customer-ref <ref>', 'the customer it belongs to')
    .option(
      '--mandate-id <id>',
      'the mandate it belongs to (its customer by default)',
      intOption('--mandate-id', ID),
    )
    .option('--json', 'print JSON');
  renamedOption(track, '--customer', '--customer-ref');
  renamedOption(track, '--mandate', '--mandate-id').action(
    async (o: {
      eventsLink: string;
      amount: number;
      currency: string;
      transactionReference?: string;
      customerRef?: string;
      mandateId?: number;
      json?: boolean;
    }) => {
      await deps.withApp(async (app) => {
        const p = await trackPaypalPayment(app, {
          eventsLink: o.eventsLink,
          amount: o.amount,
          currency: o.currency,
          ...(o.transactionReference !== undefined ? { transactionReference: o.transactionReference } : {}),
          ...(o.customerRef !== undefined ? { customerRef: o.customerRef } : {}),
          ...(o.mandateId !== undefined ? { mandateId: o.mandateId } : {}),
        });
        if (o.json) return printJson(p);
        printPayment(p);
      });
    },
  );

  const list = paypal
    .command('list')
    .description('List tracked PayPal payments, newest first (as stored; `show` asks Worldpay)')
    .option('--customer-ref <ref>', 'only this customer')
    .option('--mandate-id <id>', 'only this mandate', intOption('--mandate-id', ID))
    .option('--json', 'print JSON');
  renamedOption(list, '--customer', '--customer-ref').action(
    async (o: { customerRef?: string; mandateId?: number; json?: boolean }) => {
      await deps.withApp(async (app) => {
        const items = await listPaypalPayments(app.database, {
          customerRef: o.customerRef,
          mandateId: o.mandateId,
        });
        if (o.json) return printJson({ items });
        process.stdout.write(
          table(
            ['paypal', 'customer', 'mandate', 'amount', 'last event', 'refunded', 'left', 'checked'],
            items.map((p) => [
              p.id,
              p.customerRef,
              p.mandateId,
              money(p, p.amount),
              p.lastEvent,
              money(p, p.refunded),
              money(p, p.left),
              p.checkedAt,
            ]),
          ),
        );
      });
    },
  );

  paypal
    .command('show <id>')
    .description('Ask Worldpay, record the answer; show the last event, what was refunded and what is left')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const paymentId = idArg('id', id);
      await deps.withApp(async (app) => {
        const p = await showPaypalPayment(app, paymentId);
        if (o.json) return printJson(p);
        printPayment(p, p.asked);
      });
    });

  const refunds = [
    { name: 'refund', kind: 'refund' as const, what: 'Refund what is left' },
    { name: 'partial-refund', kind: 'partialRefund' as const, what: 'Refund part of what is left' },
  ];
  for (const r of refunds) {
    const cmd = paypal
      .command(`${r.name} <id>`)
      .description(
        `${r.what} (Worldpay's last event asked afresh and the amount checked before anything is sent)`,
      );
    if (r.kind === 'partialRefund')
      cmd
        .requiredOption('--amount <minor>', 'amount in minor units', intOption('--amount'))
        .option('--currency <code>', "refuse unless it is the payment's currency");
    cmd
      .option('--json', 'print JSON')
      .action(async (id: string, o: { amount?: number; currency?: string; json?: boolean }) => {
        const paymentId = idArg('id', id);
        const body =
          r.kind === 'partialRefund'
            ? { amount: o.amount, ...(o.currency !== undefined ? { currency: o.currency } : {}) }
            : {};
        await deps.withApp(async (app) => {
          const out = await refundPaypalPayment(app, paymentId, r.kind, body);
          if (o.json) return printJson(out);
          process.stdout.write(
            `${r.kind} ${out.reference} ${formatMoney(out.amount, out.currency)}: ${out.outcome}` +
              `${out.outcome === 'unknown' ? ` (the answer was lost: \`rebill paypal show ${paymentId}\` asks Worldpay; it is never sent again)` : ''}\n`,
          );
          printPayment(out.payment);
        });
      });
  }
}
