import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Outcome, SandboxStats, ScriptRule } from './types.js';
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

function isOutcome(value: unknown): value is Outcome {
  if (typeof value !== 'object' || value === null) return false;
  const o = value as Record<string, unknown>;
  switch (o.type) {
    case 'authorize':
    case 'lost':
      return true;
    case 'refuse':
      return (
        typeof o.code === 'string' && (o.spelling === undefined || o.spelling === 'v6' || o.spelling === 'v7')
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
  if (match.chainId === undefined && match.transactionReference === undefined && match.any !== true) {
    return 'match needs chainId, transactionReference or any: true';
  }
  if (match.op !== undefined && !SCRIPT_OPS.has(match.op)) return 'match.op is not a known operation';
  if (!Array.isArray(outcomes) || outcomes.length === 0) return 'outcomes must be a non-empty array';
  if (!outcomes.every(isOutcome)) return 'an outcome is malformed';
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

  app.post('/_sandbox/disputes', async (request, reply) => {
    const answer = state.dispute(request.body);
    return reply.code(answer.status).send(answer.body);
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
