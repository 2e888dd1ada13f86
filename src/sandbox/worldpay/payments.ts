import { randomUUID } from 'node:crypto';
import type { Chain } from './chains.js';
import { paymentLinkData } from './linkData.js';
import {
  type PaymentAmounts,
  type PaymentState,
  settlementCompletes,
  WEBHOOK_TYPE,
} from './paymentMachine.js';
import type { WebhookSender } from './webhookSender.js';

// The payments store: every payment by its action links' link data and by (entity, transaction
// reference), the events each went through, and settlement that completes on its own after a
// while (sending the webhooks as it goes).

export interface PaymentEvent {
  state: PaymentState;
  at: number;
}

export interface Payment extends PaymentAmounts {
  id: string;
  linkData: string;
  transactionReference: string;
  entity: string;
  currency: string;
  chainId?: string;
  createdAt: number;
  events: PaymentEvent[];
  references: Set<string>;
  settleDueAt?: number;
  paypal?: boolean;
  /** A Card Payments v7 payment: its answers carry `cardPayments:*` links and v7 media types. */
  api?: 'v7';
  /** Worldpay's payment id in v7 answers. */
  paymentId?: string;
}

/** What opening a card payment needs of its request (v6 authorization or v7 transaction). */
export interface PaymentOpening {
  transactionReference: string;
  entity: string;
  amount: number;
  currency: string;
}

export interface PaymentClock {
  now: () => number;
  eventLagMs: number;
  settleAfterMs: number;
  webhook?: WebhookSender;
}

export function createPaymentStore(options: PaymentClock, nextId: () => string) {
  const { now } = options;
  let paymentsByLink = new Map<string, Payment>();
  let paymentsByReference = new Map<string, Payment>();
  const settleTimers = new Set<NodeJS.Timeout>();

  const referenceKey = (entity: string, transactionReference: string) =>
    `${entity}\u0000${transactionReference}`;

  function emit(p: Payment, state: PaymentState, at: number, reference?: string, amount?: number): void {
    p.events.push({ state, at });
    if (!options.webhook) return;
    const details: Record<string, unknown> = {
      classification: 'payment',
      transactionReference: p.transactionReference,
      type: WEBHOOK_TYPE[state],
      date: new Date(p.createdAt).toISOString().slice(0, 10),
      merchant: { entity: p.entity },
      amount: { value: amount ?? p.authorizedAmount, currencyCode: p.currency },
    };
    if (reference !== undefined) details.reference = reference;
    options.webhook.send({
      eventId: randomUUID(),
      eventTimestamp: new Date(at).toISOString(),
      eventDetails: details,
    });
  }

  /** Lazily completes settlement once settleAfterMs has passed (timers only drive webhooks). */
  function advance(p: Payment): void {
    if (p.state === 'sentForSettlement' && p.settleDueAt !== undefined && p.settleDueAt <= now()) {
      if (settlementCompletes(p)) emit(p, 'settled', p.settleDueAt);
    }
  }

  function clearTimers(): void {
    for (const timer of settleTimers) clearTimeout(timer);
    settleTimers.clear();
  }

  return {
    emit,
    advance,

    scheduleSettlement(p: Payment): void {
      if (p.settleDueAt === undefined) p.settleDueAt = now() + options.settleAfterMs;
      if (options.settleAfterMs === 0) {
        advance(p);
        return;
      }
      if (!options.webhook) return;
      const timer = setTimeout(() => {
        settleTimers.delete(timer);
        advance(p);
      }, options.settleAfterMs);
      settleTimers.add(timer);
    },

    /** The latest event older than the event lag: what the events query shows. */
    visibleEvent(p: Payment): PaymentEvent | undefined {
      const cutoff = now() - options.eventLagMs;
      for (let i = p.events.length - 1; i >= 0; i--) {
        const event = p.events[i]!;
        if (event.at <= cutoff) return event;
      }
      return undefined;
    },

    byLink(linkData: string): Payment | undefined {
      return paymentsByLink.get(linkData);
    },

    byReference(entity: string, transactionReference: string): Payment | undefined {
      return paymentsByReference.get(referenceKey(entity, transactionReference));
    },

    /** A card payment, authorized or refused: on a chain (v6), or a v7 payment with its payment id. */
    open(
      req: PaymentOpening,
      chain: Pick<Chain, 'id'> | undefined,
      state: PaymentState,
      v7?: { paymentId: string },
    ): Payment {
      const id = `pay-${nextId()}`;
      const p: Payment = {
        id,
        linkData: paymentLinkData(id),
        transactionReference: req.transactionReference,
        entity: req.entity,
        currency: req.currency,
        chainId: chain?.id,
        createdAt: now(),
        events: [],
        references: new Set(),
        state,
        authorizedAmount: state === 'authorized' ? req.amount : 0,
        settledAmount: 0,
        releasedAmount: 0,
        refundedAmount: 0,
      };
      if (v7) {
        p.api = 'v7';
        p.paymentId = v7.paymentId;
      }
      paymentsByLink.set(p.linkData, p);
      paymentsByReference.set(referenceKey(req.entity, req.transactionReference), p);
      emit(p, state, p.createdAt);
      return p;
    },

    /** A PayPal payment already sent for settlement (found by its links only). */
    openPaypal(input: {
      transactionReference?: string;
      entity?: string;
      amount?: number;
      currency?: string;
    }): Payment {
      const id = `paypal-${nextId()}`;
      const amount = input.amount ?? 1000;
      const p: Payment = {
        id,
        linkData: paymentLinkData(id),
        transactionReference: input.transactionReference ?? id,
        entity: input.entity ?? 'default',
        currency: input.currency ?? 'GBP',
        createdAt: now(),
        events: [{ state: 'sentForSettlement', at: now() }],
        references: new Set(),
        state: 'sentForSettlement',
        authorizedAmount: amount,
        settledAmount: amount,
        releasedAmount: 0,
        refundedAmount: 0,
        paypal: true,
      };
      paymentsByLink.set(p.linkData, p);
      return p;
    },

    reset(): void {
      clearTimers();
      paymentsByLink = new Map();
      paymentsByReference = new Map();
    },

    close: clearTimers,
  };
}

export type PaymentStore = ReturnType<typeof createPaymentStore>;
