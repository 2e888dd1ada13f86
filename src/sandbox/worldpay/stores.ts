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
}
