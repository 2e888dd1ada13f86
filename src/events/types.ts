/**
 * Every event type rebill writes, with the sentence the README, the OpenAPI document and
 * `rebill webhooks add --help` use. An endpoint subscribes to some of these, or to `*`.
 */
export const EVENT_TYPES = {
  'mandate.created': 'a mandate was created (API, CLI or legacy import); data: the mandate',
  'mandate.updated':
    'a mandate changed without changing status (cancel at period end requested, a new credential)',
  'mandate.paused':
    'an operator paused the mandate, or a chargeback on its card did (REBILL_CHARGEBACK_POLICY=pause; data.reason is chargeback)',
  'mandate.resumed': 'the mandate is active again (resumed, or a new credential cleared a stop)',
  'mandate.cancelled': 'the mandate was cancelled (by an operator, at period end, or by dunning)',
  'mandate.completed': 'the mandate charged its last cycle or instalment',
  'mandate.stopped':
    'dunning stopped the mandate (a refusal that no retry can fix, or the gateway turned its request away)',
  'mandate.needs_new_credential': 'the card cannot be charged again until new card details are attached',
  'charge.authorized': 'the charge was authorized (data.lastAttempt is the attempt)',
  'charge.refused':
    'the issuer refused the charge: data.lastAttempt has refusalCode, adviceCode, decision and decisionReason; data.nextAttemptAt the retry',
  'charge.retry_scheduled': 'the charge will be attempted again at data.nextAttemptAt',
  'charge.outcome_unknown': 'no answer from the gateway: rebill will ask it, and never charge twice',
  'charge.stopped':
    'the charge will not be sent again: a refusal no retry can fix, or the gateway turned the request itself away (data.stateReason says which)',
  'charge.failed': 'the charge failed for good',
  'charge.settled': 'the charge settled',
  'charge.settlement_failed': 'the settlement failed',
  'charge.refunded': 'the charge was refunded in full',
  'charge.partially_refunded': 'part of the charge was refunded (data.refundedAmount)',
  'charge.cancelled':
    'the charge will not be attempted (its mandate was cancelled) or its authorization was cancelled',
  'charge.disputed':
    'the customer disputed the charge with their card issuer, who asks for information and holds the funds (Worldpay informationRequested); data.dispute',
  'charge.charged_back':
    'the issuer took the charge back (Worldpay chargedBack); data.dispute has the amount and dates, data.pausedMandateIds the card’s mandates paused',
  'credential.updated': 'a mandate moved to new card details, or its card was blocked by a refusal',
  'credential.expiring':
    'the card expires before the mandate’s next charge (sent REBILL_EXPIRY_NOTICE_DAYS ahead, once per card and expiry)',
  'legacy.migrated':
    'a legacy card-on-file mandate made its first migrateRecurring charge; its card number was erased',
  'paypal_payment.tracked':
    'a PayPal payment was handed to rebill by its events link; data.paypalPayment: the payment with its last event',
  'paypal_payment.refund_requested':
    'a PayPal refund was written ahead and is being sent; data.refund: its kind, reference and amount',
  'paypal_payment.refunded':
    'Worldpay accepted a PayPal refund (its 202, or a later sentForRefund for one whose answer was lost); data.refund',
  'paypal_payment.refund_failed':
    'Worldpay turned a PayPal refund down or reported refundFailed; data.refund.error says why',
  'run.completed':
    'a billing run that did something finished (dry runs and empty daemon ticks emit nothing); data: the run with its counts',
  'webhook_endpoint.disabled':
    'an endpoint failed every delivery for REBILL_WEBHOOK_GIVE_UP_AFTER and was disabled',
  ping: 'a test event, sent by POST /v1/webhook-endpoints/{id}/test to that endpoint only',
} as const;

export type EventType = keyof typeof EVENT_TYPES;

export const eventTypes = Object.keys(EVENT_TYPES) as EventType[];

export function isEventType(v: string): v is EventType {
  return Object.hasOwn(EVENT_TYPES, v);
}
