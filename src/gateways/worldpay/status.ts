import type { PaymentStatus } from '../types.ts';

/**
 * Worldpay's `lastEvent` (query) and webhook `eventDetails.type` values, normalised. Spelling
 * varies by API version and document (`Sent for Settlement`, `sentForSettlement`, the misspelt
 * `Send for Cancellation`), so the key ignores case, spaces, dashes and underscores.
 *
 * Every type of the Events API (worldpay-events-openapi.yaml's webhooks) has its entry, so that
 * none falls to `other` by accident: `other` is kept for types Worldpay adds later, which the
 * receiver stores and logs instead of applying.
 */
const statuses: Record<string, PaymentStatus> = {
  authorized: 'authorized',
  authorised: 'authorized',
  refused: 'refused',
  sentforsettlement: 'sentForSettlement',
  sendforsettlement: 'sentForSettlement',
  // The settlement was passed on to the scheme: what sentForSettlement says, one step later.
  settlementinstructed: 'sentForSettlement',
  settled: 'settled',
  settlementfailed: 'settlementFailed',
  // The scheme turned the settlement down: it failed, as settlementFailed says.
  settlementrejected: 'settlementFailed',
  // PayPal's capture is its settlement.
  capturefailed: 'settlementFailed',
  sentforcancellation: 'sentForCancellation',
  sendforcancellation: 'sentForCancellation',
  cancelled: 'cancelled',
  canceled: 'cancelled',
  // An alternative payment the customer walked away from: cancelled, whoever asked.
  cancelledbycustomer: 'cancelled',
  sentforrefund: 'sentForRefund',
  sendforrefund: 'sentForRefund',
  refunded: 'refunded',
  refundfailed: 'refundFailed',
  error: 'error',
  expired: 'expired',
  // An alternative payment's request the customer never completed: it expired.
  requestexpired: 'expired',
  sentforauthorization: 'inProgress',
  inprogress: 'inProgress',
  pending: 'inProgress',
  failed: 'failed',
  tokencreated: 'tokenCreated',
  chargedback: 'chargedBack',
  informationrequested: 'informationRequested',
};

/**
 * The event types the Events API documents (its `webhooks` keys for payments and chargebacks),
 * as Worldpay spells them in a webhook's `eventDetails.type`.
 */
export const WORLDPAY_EVENT_TYPES = [
  'sentForAuthorization',
  'authorized',
  'sentForSettlement',
  'settled',
  'settlementFailed',
  'cancelled',
  'error',
  'expired',
  'refused',
  'sentForRefund',
  'refunded',
  'refundFailed',
  'tokenCreated',
  'settlementInstructed',
  'settlementRejected',
  'chargedBack',
  'cancelledByCustomer',
  'requestExpired',
  'informationRequested',
] as const;

export function normalisePaymentStatus(raw: string | undefined | null): PaymentStatus {
  if (typeof raw !== 'string') return 'other';
  const key = raw.toLowerCase().replace(/[\s_-]+/g, '');
  return Object.hasOwn(statuses, key) ? statuses[key]! : 'other';
}
