import type { LedgerDraft } from './ledger.js';
import { ACTION_PATH, LAST_EVENT, type ManageOp, nextActions, transition } from './paymentMachine.js';
import type { Payment } from './payments.js';
import { curies, errorReply, href, notFound, type SandboxReply, schemaError } from './replies.js';
import { unwrap } from './scripts.js';
import type { SandboxStores } from './stores.js';
import { V7_TYPE, v7Links } from './v7.js';
import { validatePartial } from './validateBody.js';

// Actions on a payment (settle, cancel, refund, reversal and their partial forms) and the events
// query, for card payments (the PayPal actions family is paypal.ts).

/** An action on a card payment found by its action link. */
export function manage(
  stores: SandboxStores,
  base: string,
  op: ManageOp,
  linkData: string,
  body: unknown,
): SandboxReply {
  const p = stores.payments.byLink(linkData);
  if (!p || p.paypal) return notFound();
  if (p.api === 'v7') {
    return { ...manageResolved(stores, base, op, p, body, (q) => v7Links(base, q)), contentType: V7_TYPE };
  }
  return manageResolved(stores, base, op, p, body);
}

export function manageResolved(
  { now, payments, scripts, ledger, reversalCancelWindowMs }: SandboxStores,
  base: string,
  op: ManageOp,
  p: Payment,
  body: unknown,
  /** The links a 202 carries (a PayPal refund's differ: seed 001). */
  replyLinks: (p: Payment) => Record<string, unknown> = (p) => actionLinks(base, p, true),
): SandboxReply {
  const entry: LedgerDraft = {
    op,
    transactionReference: p.transactionReference,
    paymentId: p.id,
    chainId: p.chainId,
  };
  let amount: number | undefined;
  if (op === 'partialSettle' || op === 'partialRefund') {
    const checked = validatePartial(body);
    if (!checked.ok) {
      ledger.record({ ...entry, outcome: 'rejected', httpStatus: 400 });
      return schemaError(checked.errors);
    }
    const { reference, currency } = checked.request;
    amount = checked.request.amount;
    Object.assign(entry, { reference, amount, currency });
    const referenceKey = `${op}:${reference}`;
    if (p.references.has(referenceKey)) {
      ledger.record({ ...entry, outcome: 'duplicate', httpStatus: 400 });
      return {
        status: 400,
        body: {
          errorName: 'duplicateReference',
          message: `Reference already used for a ${op} of this payment.`,
        },
      };
    }
    // Worldpay itself does not check these; the sandbox does, so a client that gets them
    // wrong fails loudly in tests instead of quietly in production.
    if (currency !== p.currency) {
      ledger.record({ ...entry, outcome: 'rejected', httpStatus: 400 });
      return {
        status: 400,
        body: { errorName: 'currencyMismatch', message: 'Currency differs from the authorized currency.' },
      };
    }
  }
  const scripted = unwrap(scripts.next(op, p.transactionReference, p.chainId));
  if (scripted.outcome?.type === 'error') {
    ledger.record({ ...entry, outcome: 'error', httpStatus: scripted.outcome.status });
    return { ...errorReply(scripted.outcome), delayMs: scripted.delayMs };
  }
  payments.advance(p);
  const reversalIsCancel = op === 'reversal' && now() - p.createdAt < reversalCancelWindowMs;
  const result = transition(p, op, amount, reversalIsCancel);
  if (!result.ok) {
    const status = result.reason === 'amountExceedsRemaining' ? 400 : 409;
    ledger.record({ ...entry, outcome: 'invalidState', httpStatus: status });
    return {
      status,
      body: {
        errorName: result.reason,
        message:
          result.reason === 'amountExceedsRemaining'
            ? 'Amount is more than what is left to settle or refund.'
            : `A ${op} is not allowed while the payment is ${p.state}.`,
      },
    };
  }
  if (entry.reference !== undefined) p.references.add(`${op}:${entry.reference}`);
  p.state = result.next;
  if (result.event) payments.emit(p, result.event, now(), entry.reference, amount);
  if (result.event === 'sentForSettlement') payments.scheduleSettlement(p);
  const lost = scripted.outcome?.type === 'lost';
  ledger.record({ ...entry, outcome: 'accepted', httpStatus: 202, responseLost: lost || undefined });
  return { status: 202, body: { _links: replyLinks(p) }, delayMs: scripted.delayMs, lost };
}

/**
 * The events query's answer: the last event older than the event lag, with the next actions'
 * links. `recovery`: found by transaction reference, whose v7 schema spells a cancellation
 * `Send for Cancellation`.
 */
export function eventsReply(
  { payments }: SandboxStores,
  base: string,
  p: Payment | undefined,
  recovery = false,
): SandboxReply {
  if (!p) return notFound();
  payments.advance(p);
  const event = payments.visibleEvent(p);
  if (!event) return notFound();
  if (p.api === 'v7') {
    const lastEvent =
      recovery && event.state === 'cancelled' ? 'Send for Cancellation' : LAST_EVENT[event.state];
    return { status: 200, body: { lastEvent, _links: v7Links(base, p) }, contentType: V7_TYPE };
  }
  return { status: 200, body: { lastEvent: LAST_EVENT[event.state], _links: actionLinks(base, p, false) } };
}

function actionLinks(base: string, p: Payment, withEvents: boolean): Record<string, unknown> {
  const links: Record<string, unknown> = {};
  for (const rel of nextActions(p)) links[rel] = href(base, ACTION_PATH[rel] + p.linkData);
  if (withEvents) links['payments:events'] = href(base, ACTION_PATH['payments:events'] + p.linkData);
  links.curies = curies(base);
  return links;
}
