import type { Outcome } from './types.js';
import type { ValidationError } from './validateBody.js';

// What the sandbox answers, before HTTP: a plain reply the routes write out, the error bodies
// Worldpay sends, and the pieces of a HAL body (links, curies, risk factors).

export interface SandboxReply {
  status: number;
  body?: object;
  headers?: Record<string, string>;
  /** Hold the response this long (script `slow`); the payment is already committed. */
  delayMs?: number;
  /** Destroy the socket instead of answering (script `lost`); the payment is already committed. */
  lost?: boolean;
  /** The media type of the answer when not v6's (v7 payments answer in v7's). */
  contentType?: string;
}

/** Worldpay's answer to a reused transaction reference. */
export function duplicateReference(): SandboxReply {
  // Worldpay's published name and message for it (the APM API's OpenAPI document; the card
  // API publishes none of its own).
  return {
    status: 400,
    body: {
      errorName: 'transactionReferenceIsADuplicate',
      message:
        'The transaction reference (while valid as a reference) is a duplicate already used in another transaction.',
    },
  };
}

const CURIES = [{ name: 'payments', href: '/rels/payments/{rel}', templated: true }];

export const RISK_FACTORS = [
  { risk: 'not_matched', type: 'cvc' },
  { risk: 'not_checked', detail: 'postcode', type: 'avs' },
  { risk: 'not_checked', detail: 'address', type: 'avs' },
];

export const REFUSED_RISK_FACTORS = [
  { risk: 'not_supplied', type: 'cvc' },
  { risk: 'not_checked', detail: 'address', type: 'avs' },
  { risk: 'not_checked', detail: 'postcode', type: 'avs' },
  { risk: 'verificationFailed', type: 'riskProfile' },
];

export function notFound(): SandboxReply {
  return {
    status: 404,
    body: { errorName: 'endpointNotFound', message: 'Requested endpoint was not found.' },
  };
}

export function schemaError(errors: ValidationError[]): SandboxReply {
  return {
    status: 400,
    body: {
      errorName: 'bodyDoesNotMatchSchema',
      message: 'The json body provided does not match the expected schema',
      validationErrors: errors,
    },
  };
}

export function errorReply(outcome: Extract<Outcome, { type: 'error' }>): SandboxReply {
  const errorName =
    outcome.errorName ??
    (outcome.status === 503
      ? 'serviceUnavailable'
      : outcome.status === 429
        ? 'tooManyRequests'
        : 'internalErrorOccurred');
  const reply: SandboxReply = {
    status: outcome.status,
    body: { errorName, message: 'The sandbox was scripted to fail this request.' },
  };
  if (outcome.retryAfterSeconds !== undefined)
    reply.headers = { 'retry-after': String(outcome.retryAfterSeconds) };
  return reply;
}

export function href(base: string, path: string): { href: string } {
  return { href: base + path };
}

export function curies(base: string) {
  return [{ ...CURIES[0], href: base + CURIES[0]!.href }];
}

/** Random digits for authorization codes and scheme references (not secrets: Math.random is enough). */
export function digits(n: number): string {
  let out = String(1 + Math.floor(Math.random() * 9));
  for (let i = 1; i < n; i++) out += String(Math.floor(Math.random() * 10));
  return out;
}
