import type { PaymentStatus } from '../types.ts';

/**
 * Worldpay's `lastEvent` (query) and webhook `eventDetails.type` values, normalised. Spelling
 * varies by API version and document (`Sent for Settlement`, `sentForSettlement`, the misspelt
 * `Send for Cancellation`), so the key ignores case, spaces, dashes and underscores.
 */
const statuses: Record<string, PaymentStatus> = {
  authorized: 'authorized',
  authorised: 'authorized',
  refused: 'refused',
  sentforsettlement: 'sentForSettlement',
  sendforsettlement: 'sentForSettlement',
  settled: 'settled',
  settlementfailed: 'settlementFailed',
  // PayPal's capture is its settlement.
  capturefailed: 'settlementFailed',
  sentforcancellation: 'sentForCancellation',
  sendforcancellation: 'sentForCancellation',
  cancelled: 'cancelled',
  canceled: 'cancelled',
  sentforrefund: 'sentForRefund',
  sendforrefund: 'sentForRefund',
  refunded: 'refunded',
  refundfailed: 'refundFailed',
  error: 'error',
  expired: 'expired',
  sentforauthorization: 'inProgress',
  inprogress: 'inProgress',
  pending: 'inProgress',
  failed: 'failed',
};

export function normalisePaymentStatus(raw: string | undefined | null): PaymentStatus {
  if (typeof raw !== 'string') return 'other';
  const key = raw.toLowerCase().replace(/[\s_-]+/g, '');
  return Object.hasOwn(statuses, key) ? statuses[key]! : 'other';
}
