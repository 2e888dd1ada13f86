import type { CardStore } from './cards.js';
import type { ChainStore } from './chains.js';
import type { Ledger } from './ledger.js';
import type { PaymentStore } from './payments.js';
import type { ScriptBook } from './scripts.js';

/** The sandbox's whole memory, as the operations (authorize, manage, events) reach it. */
export interface SandboxStores {
  now: () => number;
  chains: ChainStore;
  payments: PaymentStore;
  scripts: ScriptBook;
  ledger: Ledger;
  /** Window after authorization in which a reversal cancels instead of refunding (Worldpay: 15 min). */
  reversalCancelWindowMs: number;
  /** Cards made known by Card Payments v7 first payments. */
  cards: CardStore;
  /**
   * Account Updater as the merchant is set up for it: `request` answers with an updated
   * instrument only when the request asked (`requestAccountUpdater: true`), `managed` always.
   */
  accountUpdater: { mode: AccountUpdaterMode };
}

export type AccountUpdaterMode = 'request' | 'managed';
