import { randomUUID } from 'node:crypto';
import type { SandboxReply } from './replies.js';
import type { SandboxStores } from './stores.js';
import type { WebhookSender } from './webhookSender.js';

// A customer's dispute, which on Worldpay comes from the card issuer and not from any request
// the merchant makes: `POST /_sandbox/disputes` stands in for it and sends the event through
// the webhook sender, signed and redelivered like every other event.

export const DISPUTE_TYPES = ['chargedBack', 'informationRequested'] as const;
export type DisputeType = (typeof DISPUTE_TYPES)[number];

export interface DisputeInput {
  transactionReference: string;
  type: DisputeType;
  /** Minor units; default what was settled and not refunded. */
  amount?: number;
  entity?: string;
  reasonCode?: string;
  reason?: string;
}

const problem = (status: number, errorName: string, message: string): SandboxReply => ({
  status,
  body: { errorName, message },
});

/** The input's problem, naming the field, or the input. */
export function parseDisputeInput(raw: unknown): DisputeInput | SandboxReply {
  const bad = (message: string) => problem(400, 'bodyDoesNotMatchSchema', message);
  if (typeof raw !== 'object' || raw === null) return bad('body must be an object');
  const o = raw as Record<string, unknown>;
  if (typeof o.transactionReference !== 'string' || o.transactionReference === '')
    return bad('transactionReference is required');
  if (typeof o.type !== 'string' || !(DISPUTE_TYPES as readonly string[]).includes(o.type))
    return bad(`type must be one of ${DISPUTE_TYPES.join(', ')}`);
  if (
    o.amount !== undefined &&
    (typeof o.amount !== 'number' || !Number.isInteger(o.amount) || o.amount <= 0)
  )
    return bad('amount must be a positive integer of minor units');
  for (const k of ['entity', 'reasonCode', 'reason'] as const)
    if (o[k] !== undefined && typeof o[k] !== 'string') return bad(`${k} must be a string`);
  return {
    transactionReference: o.transactionReference,
    type: o.type as DisputeType,
    amount: o.amount as number | undefined,
    entity: o.entity as string | undefined,
    reasonCode: o.reasonCode as string | undefined,
    reason: o.reason as string | undefined,
  };
}

/**
 * Send a dispute event about a settled payment: `chargedBack` (classification `payment`) or
 * `informationRequested` (classification `chargeback`), shaped as the Events API file's
 * `chargedBack` and `informationRequested` schemas. 202 with the event sent; 404 for an unknown
 * payment, 409 for one with nothing settled or without a webhook URL to send to.
 */
export function sendDispute(
  stores: SandboxStores,
  webhook: WebhookSender | undefined,
  raw: unknown,
): SandboxReply {
  const input = parseDisputeInput(raw);
  if ('status' in input) return input;
  if (!webhook)
    return problem(409, 'webhookNotConfigured', 'the sandbox has no webhook URL to send events to');
  const p = stores.payments.byReference(input.entity ?? 'default', input.transactionReference);
  if (!p || p.paypal)
    return problem(
      404,
      'paymentNotFound',
      `no card payment with transactionReference ${input.transactionReference}`,
    );
  const disputable = p.settledAmount - p.refundedAmount;
  if (disputable <= 0)
    return problem(409, 'paymentNotSettled', 'only a settled payment, not refunded in full, can be disputed');
  const amount = input.amount ?? disputable;
  if (amount > disputable)
    return problem(
      400,
      'bodyDoesNotMatchSchema',
      `amount must be at most ${disputable}, what is settled and not refunded`,
    );
  const details: Record<string, unknown> = {
    classification: input.type === 'informationRequested' ? 'chargeback' : 'payment',
    transactionReference: p.transactionReference,
    type: input.type,
    date: new Date(p.createdAt).toISOString().slice(0, 10),
    amount: { value: amount, currencyCode: p.currency },
  };
  if (input.reasonCode !== undefined) details.reasonCode = input.reasonCode;
  if (input.reason !== undefined) details.reason = input.reason;
  const event = {
    eventId: randomUUID(),
    eventTimestamp: new Date(stores.now()).toISOString(),
    eventDetails: details,
  };
  webhook.send(event);
  return { status: 202, body: event };
}
