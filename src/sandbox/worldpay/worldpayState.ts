import { authorize } from './authorize.js';
import { createCardStore } from './cards.js';
import { createChainStore } from './chains.js';
import { createLedger } from './ledger.js';
import { eventsReply, manage } from './manage.js';
import type { ManageOp } from './paymentMachine.js';
import { createPaymentStore, type PaymentClock } from './payments.js';
import { movePaypal, openPaypal, paypalEvents, paypalRefund } from './paypal.js';
import { notFound, type SandboxReply } from './replies.js';
import { createScriptBook } from './scripts.js';
import type { AccountUpdaterMode, SandboxStores } from './stores.js';
import type { LedgerEntry, LedgerOutcome, SandboxOp, SandboxStats, ScriptRule } from './types.js';
import { customerInitiated, type FirstPaymentInput, firstPayment, merchantInitiated } from './v7.js';

// The sandbox's whole memory: chains (chains.ts), payments (payments.ts), scripts (scripts.ts),
// ledger (ledger.ts). Everything is a Map keyed by the id or link a request carries, so a
// request costs a few lookups. HTTP lives in the routes; this module answers with a plain
// `SandboxReply` (replies.ts) the routes write out.

export interface WorldpayStateOptions extends PaymentClock {
  /** Window after authorization in which a reversal cancels instead of refunding (Worldpay: 15 min). */
  reversalCancelWindowMs: number;
  /** Oldest ledger entries are dropped beyond this, so a long benchmark does not grow without bound. */
  ledgerLimit: number;
}

export function createWorldpayState(options: WorldpayStateOptions) {
  const { now } = options;
  // One sequence for chain and payment ids, kept across resets.
  let ids = 0;
  const nextId = () => {
    ids += 1;
    return ids.toString(36);
  };
  const stores: SandboxStores = {
    now,
    chains: createChainStore(nextId),
    payments: createPaymentStore(options, nextId),
    scripts: createScriptBook(),
    ledger: createLedger(now, options.ledgerLimit),
    reversalCancelWindowMs: options.reversalCancelWindowMs,
    cards: createCardStore(nextId),
    accountUpdater: { mode: 'request' },
  };
  const { chains, payments, scripts, ledger, cards } = stores;

  return {
    authorize(
      base: string,
      op: 'authorize' | 'migrate',
      body: unknown,
      linkData: string | undefined,
    ): SandboxReply {
      return authorize(stores, base, op, body, linkData);
    },
    /** Card Payments v7 `POST /cardPayments/merchantInitiatedTransactions`. */
    merchantInitiated(base: string, body: unknown): SandboxReply {
      return merchantInitiated(stores, base, body);
    },
    /** Card Payments v7 `POST /cardPayments/customerInitiatedTransactions`. */
    customerInitiated(base: string, body: unknown): SandboxReply {
      return customerInitiated(stores, base, body).reply;
    },
    /** A customer's first payment made from outside (control API): the token, card and scheme reference. */
    firstPayment(base: string, input: FirstPaymentInput) {
      return firstPayment(stores, base, input);
    },
    /** How Account Updater answers: only when asked (`request`, the default) or always (`managed`). */
    setAccountUpdaterMode(mode: AccountUpdaterMode): void {
      stores.accountUpdater.mode = mode;
    },
    manage(base: string, op: ManageOp, linkData: string, body: unknown): SandboxReply {
      return manage(stores, base, op, linkData, body);
    },
    events(base: string, linkData: string): SandboxReply {
      const p = payments.byLink(linkData);
      return eventsReply(stores, base, p?.paypal ? undefined : p);
    },
    recover(
      base: string,
      transactionReference: string | undefined,
      entity: string | undefined,
    ): SandboxReply {
      if (!transactionReference || !entity) return notFound();
      const p = payments.byReference(entity, transactionReference);
      return eventsReply(stores, base, p?.paypal ? undefined : p, true);
    },
    paypalEvents(base: string, linkData: string): SandboxReply {
      return paypalEvents(stores, base, payments.byLink(linkData));
    },
    paypalRefund(
      base: string,
      op: 'refund' | 'partialRefund',
      linkData: string,
      body: unknown,
    ): SandboxReply {
      return paypalRefund(stores, base, op, payments.byLink(linkData), body);
    },
    /** Creates a PayPal payment (sentForSettlement, or `lastEvent: 'authorized'`); returns its action links. */
    createPaypal(base: string, input: Parameters<typeof openPaypal>[2]) {
      return openPaypal(stores, base, input);
    },
    /** Moves a PayPal payment, found by one of its links, to another last event. */
    movePaypal(base: string, link: string | undefined, lastEvent: string | undefined): SandboxReply {
      return movePaypal(stores, base, link, lastEvent);
    },
    /** Starts a chain as a customer-initiated verification would; returns its first link. */
    verify(base: string, input: { cardNumber?: string; cardHolderName?: string }) {
      const cardKey = input.cardNumber ? `card/plain:${input.cardNumber}` : undefined;
      const chain = chains.create(cardKey, input.cardHolderName);
      return { chainId: chain.id, href: base + '/payments/authorizations/recurring/' + chains.rotate(chain) };
    },
    script(rule: ScriptRule): void {
      scripts.add(rule);
    },
    countRequest: ledger.countRequest,
    countThrottled: ledger.countThrottled,
    /** Ledger entries with seq > since (all kept entries by default). */
    ledger(since = 0): LedgerEntry[] {
      return ledger.entries(since);
    },
    stats(webhooks: SandboxStats['webhooks']): SandboxStats {
      return ledger.stats(webhooks);
    },
    reset(): void {
      payments.reset();
      chains.reset();
      cards.reset();
      stores.accountUpdater.mode = 'request';
      scripts.reset();
      ledger.reset();
    },
    close(): void {
      payments.close();
    },
  };
}

export type WorldpayState = ReturnType<typeof createWorldpayState>;
export type { LedgerOutcome, SandboxOp };
