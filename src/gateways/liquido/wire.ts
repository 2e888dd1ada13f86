import type { Links, PaymentStatus } from '../types.ts';

/**
 * Liquido's wire shapes (seed 004) and the one place its statuses are mapped to rebill's.
 */

export interface LiquidoCardInfo {
  cardHolderName?: string;
  expirationMonth?: number;
  expirationYear?: number;
  brand?: string;
  bin?: string;
  last4?: string;
}

/** A payment as Liquido returns it from charge, capture, cancel and status calls. */
export interface LiquidoPayment {
  transferStatusCode: number;
  idempotencyKey: string;
  referenceId: string;
  paymentMethod: string;
  amount: number;
  currency: string;
  finalAmount: number;
  finalCurrency: string;
  country: string;
  createTime: string;
  scheduledTime: string;
  transferDetails: { card: { cardInfo: LiquidoCardInfo; cardId: string } };
  transferStatus: string;
  transferErrorMsg?: string;
  description: string;
  subMerchantId?: string;
}

/** The pre-authorization request body (card by vaulted cardId only: rebill never holds PANs here). */
export interface LiquidoChargeRequest {
  idempotencyKey: string;
  amount: number;
  currency: string;
  country: string;
  paymentMethod: 'CREDIT_CARD';
  paymentFlow: 'DIRECT';
  capture: false;
  payer?: { id: string } | undefined;
  cardId: string;
  description: string;
  callbackUrl?: string | undefined;
  subMerchantId?: string | undefined;
}

/** Just enough checking to trust the fields the client reads. */
export function readPayment(json: unknown): LiquidoPayment | undefined {
  if (json === null || typeof json !== 'object') return undefined;
  const p = json as Partial<LiquidoPayment>;
  if (typeof p.idempotencyKey !== 'string' || typeof p.transferStatus !== 'string') return undefined;
  if (typeof p.amount !== 'number' || typeof p.currency !== 'string') return undefined;
  return p as LiquidoPayment;
}

/** The one mapping of Liquido's transferStatus onto the normalised status. */
export function normaliseStatus(transferStatus: string): PaymentStatus {
  switch (transferStatus) {
    case 'AUTHORIZED':
      return 'authorized';
    case 'SETTLED':
      return 'settled';
    case 'CANCELLED':
      return 'cancelled';
    case 'IN_PROGRESS':
      return 'inProgress';
    case 'FAILED':
      return 'failed';
    default:
      return 'other';
  }
}

/**
 * Synthetic link relations. Liquido returns no links: its calls are addressed by the
 * idempotencyKey. These name what can be done next (like Worldpay's `payments:settle`) so
 * billing can show and check them; the client itself always builds paths from paymentId.
 */
export const LIQUIDO_RELS = {
  capture: 'liquido:capture',
  cancel: 'liquido:cancel',
  status: 'liquido:status',
} as const;

export function linksFor(baseUrl: string, idempotencyKey: string, status: PaymentStatus): Links {
  const base = baseUrl.replace(/\/+$/, '');
  const key = encodeURIComponent(idempotencyKey);
  const links: Links = { [LIQUIDO_RELS.status]: `${base}/v1/payments/${key}` };
  if (status === 'authorized') {
    links[LIQUIDO_RELS.capture] = `${base}/v1/payments/charges/card/capture/${key}`;
    links[LIQUIDO_RELS.cancel] = `${base}/v1/payments/charges/cancel/${key}`;
  }
  return links;
}

/** A stable refusal code from Liquido's free-text transferErrorMsg ("Insufficient funds" -> INSUFFICIENT_FUNDS). */
export function refusalCode(transferErrorMsg: string | undefined): string {
  const code = (transferErrorMsg ?? '')
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase()
    .slice(0, 64);
  return code === '' ? 'FAILED' : code;
}
