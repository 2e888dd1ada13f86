import { request } from 'undici';
import type { World } from './world.ts';

/**
 * PayPal payments at the sandbox, over its control API: created as a customer's approval at
 * PayPal would leave them, moved to another last event, and the requests the sandbox saw.
 */

/** A PayPal payment of `amount` (sentForSettlement, or still `authorized`): its id and events link. */
export async function paypalAtSandbox(
  w: World,
  body: { amount: number; currency?: string; lastEvent?: 'authorized' },
): Promise<{ paymentId: string; eventsLink: string }> {
  const res = await request(`${w.sandbox.url}/_sandbox/paypal`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const out = (await res.body.json()) as { paymentId: string; _links: Record<string, { href: string }> };
  return { paymentId: out.paymentId, eventsLink: out._links['action:events']!.href };
}

/** The sandbox moves the payment to another last event (as PayPal and Worldpay would in time). */
export async function movePaypalAt(w: World, eventsLink: string, lastEvent: string): Promise<void> {
  const res = await request(`${w.sandbox.url}/_sandbox/paypal/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ href: eventsLink, lastEvent }),
  });
  if (res.statusCode !== 200) throw new Error(`sandbox refused the move: ${await res.body.text()}`);
  await res.body.dump();
}

/** The next answer to a refund of the payment is lost in transit (the sandbox acts, then drops it). */
export async function loseNextAnswer(
  w: World,
  paymentId: string,
  op: 'refund' | 'partialRefund',
): Promise<void> {
  const res = await request(`${w.sandbox.url}/_sandbox/script`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ match: { transactionReference: paymentId, op }, outcomes: [{ type: 'lost' }] }),
  });
  if (res.statusCode !== 200) throw new Error(`sandbox refused the script: ${await res.body.text()}`);
  await res.body.dump();
}

/** The refunds the sandbox received for a payment, in order (whatever it answered). */
export function refundsSent(w: World, paymentId: string) {
  return w.sandbox
    .ledger()
    .filter((e) => e.paymentId === paymentId && (e.op === 'refund' || e.op === 'partialRefund'));
}
