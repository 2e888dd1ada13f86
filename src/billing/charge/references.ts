/**
 * The identity of an authorization attempt at the gateway, derived from (mandate, cycle,
 * attempt) alone so that a crashed worker, a second worker and a reconciliation all name the
 * same request the same way. Short and within Worldpay's allowed characters; the prefix keeps
 * two rebill installations on one merchant account apart.
 */
export function transactionReference(
  prefix: string,
  mandateId: number,
  cycle: number,
  attemptNo: number,
): string {
  return `${prefix}-${mandateId}-${cycle}-${attemptNo}`;
}

/** Reference of a payment action (partials need one; full actions get one for the record). */
export function actionReference(transactionRef: string, kind: string, n: number): string {
  const tag =
    { settle: 'S', partialSettle: 'PS', cancel: 'C', refund: 'R', partialRefund: 'PR', reversal: 'V' }[
      kind
    ] ?? 'A';
  return `${transactionRef}-${tag}${n}`.replace(/[^A-Za-z0-9-]/g, '-');
}
