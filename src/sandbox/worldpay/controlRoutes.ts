import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ACCOUNT_UPDATER_MESSAGES, type Outcome, type SandboxStats, type ScriptRule } from './types.js';
import type { WorldpayState } from './worldpayState.js';

// The sandbox's own control API under /_sandbox (no auth: it stands in for things a test or
// operator does outside Worldpay, like a customer verifying a card).

export interface ControlRouteOptions {
  state: WorldpayState;
  stats: () => SandboxStats;
  publicUrl?: string | (() => string | undefined);
}

const SCRIPT_OPS = new Set([
  'authorize',
  'settle',
  'partialSettle',
  'cancel',
  'refund',
  'partialRefund',
  'reversal',
]);

const DIGITS = /^[0-9]{12,19}$/;
const isInt = (value: unknown, min: number, max: number) =>
  typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;

/** Why a v7 outcome's `accountUpdater` is unusable, or undefined when it is fine (or absent). */
function accountUpdaterProblem(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) return 'accountUpdater must be an object';
  const au = value as Record<string, unknown>;
  if (!(ACCOUNT_UPDATER_MESSAGES as readonly unknown[]).includes(au.message)) {
    return `accountUpdater.message must be one of Worldpay's: ${ACCOUNT_UPDATER_MESSAGES.join(' | ')}`;
  }
  if ((au.expiryMonth === undefined) !== (au.expiryYear === undefined)) {
    return 'accountUpdater.expiryMonth and accountUpdater.expiryYear go together';
  }
  if (au.expiryMonth !== undefined && !isInt(au.expiryMonth, 1, 12))
    return 'accountUpdater.expiryMonth must be 1-12';
  if (au.expiryYear !== undefined && !isInt(au.expiryYear, 1000, 9999)) {
    return 'accountUpdater.expiryYear must be a four-digit year';
  }
  if (au.cardNumber !== undefined && !(typeof au.cardNumber === 'string' && DIGITS.test(au.cardNumber))) {
    return 'accountUpdater.cardNumber must be 12-19 digits';
  }
  if (au.networkToken !== undefined) {
    const nt = au.networkToken as Record<string, unknown> | null;
    if (
      typeof nt !== 'object' ||
      nt === null ||
      !(typeof nt.number === 'string' && DIGITS.test(nt.number)) ||
      !isInt(nt.expiryMonth, 1, 12) ||
      !isInt(nt.expiryYear, 1000, 9999)
    ) {
      return 'accountUpdater.networkToken needs number (12-19 digits), expiryMonth and expiryYear';
    }
  }
  for (const key of ['lastFour', 'cardBin'] as const) {
    if (au[key] !== undefined && !(typeof au[key] === 'string' && /^[0-9*]+$/.test(au[key]))) {
      return `accountUpdater.${key} must be digits`;
    }
  }
  if (au.cardBrand !== undefined && typeof au.cardBrand !== 'string')
    return 'accountUpdater.cardBrand must be a string';
  return undefined;
}

function isOutcome(value: unknown): value is Outcome {
  if (typeof value !== 'object' || value === null) return false;
  const o = value as Record<string, unknown>;
  switch (o.type) {
    case 'authorize':
      return accountUpdaterProblem(o.accountUpdater) === undefined;
    case 'lost':
      return true;
    case 'refuse':
      return (
        typeof o.code === 'string' &&
        (o.spelling === undefined || o.spelling === 'v6' || o.spelling === 'v7') &&
        accountUpdaterProblem(o.accountUpdater) === undefined
      );
    case 'error':
      return typeof o.status === 'number' && o.status >= 400 && o.status <= 599;
    case 'slow':
      return typeof o.ms === 'number' && o.ms >= 0 && (o.next === undefined || isOutcome(o.next));
    default:
      return false;
  }
}

/** Renames the `then` of a `slow` outcome sent over HTTP to `next`, recursively. */
function renameThen(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const { then: wrapped, ...rest } = value as Record<string, unknown>;
  if (rest.type !== 'slow') return value;
  const inner = rest.next ?? wrapped;
  return inner === undefined ? rest : { ...rest, next: renameThen(inner) };
}

/** Checks a script rule from outside; returns the reason it is unusable, or undefined. */
export function scriptRuleProblem(rule: unknown): string | undefined {
  if (typeof rule !== 'object' || rule === null) return 'body must be an object';
  const { match, outcomes } = rule as Partial<ScriptRule>;
  if (typeof match !== 'object' || match === null) return 'match is required';
  if (
    match.chainId === undefined &&
    match.transactionReference === undefined &&
    match.cardNumber === undefined &&
    match.tokenHref === undefined &&
    match.networkToken === undefined &&
    match.any !== true
  ) {
    return 'match needs chainId, transactionReference, cardNumber, tokenHref, networkToken or any: true';
  }
  for (const key of ['cardNumber', 'networkToken'] as const) {
    if (match[key] !== undefined && !(typeof match[key] === 'string' && DIGITS.test(match[key]))) {
      return `match.${key} must be 12-19 digits`;
    }
  }
  if (match.tokenHref !== undefined && typeof match.tokenHref !== 'string')
    return 'match.tokenHref must be a string';
  if (match.op !== undefined && !SCRIPT_OPS.has(match.op)) return 'match.op is not a known operation';
  if (!Array.isArray(outcomes) || outcomes.length === 0) return 'outcomes must be a non-empty array';
  for (const outcome of outcomes) {
    const problem =
      typeof outcome === 'object' && outcome !== null
        ? accountUpdaterProblem((outcome as { accountUpdater?: unknown }).accountUpdater)
        : undefined;
    if (problem) return problem;
  }
  if (!outcomes.every(isOutcome)) return 'an outcome is malformed';
  return undefined;
}

/** Why a first-payments body is unusable (naming the field, never echoing a number), or undefined. */
export function firstPaymentProblem(input: Record<string, unknown>): string | undefined {
  if (!(typeof input.cardNumber === 'string' && DIGITS.test(input.cardNumber))) {
    return 'cardNumber must be a string of 12-19 digits';
  }
  if (!isInt(input.expiryMonth, 1, 12)) return 'expiryMonth must be an integer 1-12';
  if (!isInt(input.expiryYear, 1000, 9999)) return 'expiryYear must be a four-digit year';
  if (
    input.cardHolderName !== undefined &&
    !(
      typeof input.cardHolderName === 'string' &&
      input.cardHolderName.length >= 1 &&
      input.cardHolderName.length <= 255
    )
  ) {
    return 'cardHolderName must be a string of 1-255 characters';
  }
  if (
    input.entity !== undefined &&
    !(typeof input.entity === 'string' && /^[A-Za-z0-9][A-Za-z0-9 ]{0,31}$/.test(input.entity))
  ) {
    return 'entity must be 1-32 letters, digits or spaces';
  }
  if (input.networkToken !== undefined && typeof input.networkToken !== 'boolean') {
    return 'networkToken must be a boolean';
  }
  return undefined;
}

export async function controlRoutes(app: FastifyInstance, options: ControlRouteOptions): Promise<void> {
  const { state } = options;
  const base = (request: FastifyRequest) =>
    (typeof options.publicUrl === 'function' ? options.publicUrl() : options.publicUrl) ??
    'http://' + request.headers.host;
  const body = (request: FastifyRequest) => (request.body ?? {}) as Record<string, unknown>;
  const optionalString = (value: unknown) => (typeof value === 'string' ? value : undefined);

  app.post('/_sandbox/verifications', async (request) => {
    const input = body(request);
    return state.verify(base(request), {
      cardNumber: optionalString(input.cardNumber),
      cardHolderName: optionalString(input.cardHolderName),
    });
  });

  // Card Payments v7: a customer's first payment (token, network token and scheme reference).
  app.post('/_sandbox/v7/first-payments', async (request, reply) => {
    const input = body(request);
    const problem = firstPaymentProblem(input);
    if (problem) return reply.code(400).send({ errorName: 'invalidFirstPayment', message: problem });
    const made = state.firstPayment(base(request), {
      cardNumber: input.cardNumber as string,
      expiryMonth: input.expiryMonth as number,
      expiryYear: input.expiryYear as number,
      cardHolderName: optionalString(input.cardHolderName),
      entity: optionalString(input.entity),
      networkToken: input.networkToken === true,
    });
    return reply.code(made.status).send(made.body);
  });

  app.post('/_sandbox/v7/account-updater', async (request, reply) => {
    const { mode } = body(request);
    if (mode !== 'request' && mode !== 'managed') {
      return reply
        .code(400)
        .send({ errorName: 'invalidAccountUpdater', message: "mode must be 'request' or 'managed'" });
    }
    state.setAccountUpdaterMode(mode);
    return { mode };
  });

  app.post('/_sandbox/script', async (request, reply) => {
    const input = request.body as { match?: unknown; outcomes?: unknown } | undefined;
    const rule = Array.isArray(input?.outcomes)
      ? { ...input, outcomes: input.outcomes.map(renameThen) }
      : input;
    const problem = scriptRuleProblem(rule);
    if (problem) return reply.code(400).send({ errorName: 'invalidScript', message: problem });
    state.script(rule as ScriptRule);
    return { ok: true };
  });

  app.get('/_sandbox/ledger', async (request) => {
    const since = Number((request.query as { since?: string }).since ?? 0);
    return { entries: state.ledger(Number.isFinite(since) ? since : 0), stats: options.stats() };
  });
  app.get('/_sandbox/stats', async () => options.stats());

  app.post('/_sandbox/reset', async () => {
    state.reset();
    return { ok: true };
  });

  app.post('/_sandbox/paypal', async (request) => {
    const input = body(request);
    return state.createPaypal(base(request), {
      transactionReference: optionalString(input.transactionReference),
      entity: optionalString(input.entity),
      amount: typeof input.amount === 'number' ? input.amount : undefined,
      currency: optionalString(input.currency),
      lastEvent: optionalString(input.lastEvent),
    });
  });

  app.post('/_sandbox/paypal/events', async (request, reply) => {
    const input = body(request);
    const answer = state.movePaypal(
      base(request),
      optionalString(input.href),
      optionalString(input.lastEvent),
    );
    return reply.code(answer.status).send(answer.body);
  });
}
