import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Answer, createLiquidoState, type LiquidoState } from './state.ts';
import type { LiquidoOp, LiquidoOutcome, LiquidoScriptRule } from './types.ts';

export interface LiquidoSandboxOptions {
  clientId?: string;
  clientSecret?: string;
  apiKey?: string;
  tokenTtlSeconds?: number;
  /** Added to every API answer (not to control routes). */
  latencyMs?: number;
  /** Clock for token expiry and payment times; default Date.now. */
  now?: () => number;
}

export type LiquidoSandboxPlugin = ((app: FastifyInstance) => Promise<void>) & {
  /** The sandbox's memory, for in-process control (the same as the /_sandbox/liquido routes). */
  readonly state: LiquidoState;
};

export const LIQUIDO_SANDBOX_DEFAULTS = {
  clientId: 'sandbox-client',
  clientSecret: 'sandbox-secret',
  apiKey: 'sandbox-api-key',
  tokenTtlSeconds: 3600,
} as const;

/**
 * Liquido's card pre-authorization API (seed 004) as fastify routes, for `rebill sandbox`
 * (mounted through its `plugins`) and for tests (startLiquidoSandbox). The payment endpoint
 * `GET /v1/payments/{idempotencyKey}` is not in the seed: the sandbox models Liquido's
 * payment-status lookup there, answering the same payment body as the other calls.
 *
 * Control routes under /_sandbox/liquido: script (outcomes), cards (vault), ledger,
 * expire-tokens, reset.
 */
export function liquidoSandbox(opts: LiquidoSandboxOptions = {}): LiquidoSandboxPlugin {
  const apiKey = opts.apiKey ?? LIQUIDO_SANDBOX_DEFAULTS.apiKey;
  const latencyMs = opts.latencyMs ?? 0;
  const state = createLiquidoState({
    clientId: opts.clientId ?? LIQUIDO_SANDBOX_DEFAULTS.clientId,
    clientSecret: opts.clientSecret ?? LIQUIDO_SANDBOX_DEFAULTS.clientSecret,
    tokenTtlSeconds: opts.tokenTtlSeconds ?? LIQUIDO_SANDBOX_DEFAULTS.tokenTtlSeconds,
    now: opts.now ?? Date.now,
  });

  async function plugin(app: FastifyInstance): Promise<void> {
    // Pending delays end early when the server closes, so close() never waits on a script.
    const pending = new Set<() => void>();
    const delay = (ms: number) =>
      ms <= 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              pending.delete(done);
              resolve();
            };
            const timer = setTimeout(done, ms);
            pending.add(done);
          });
    app.addHook('onClose', async () => {
      for (const done of [...pending]) done();
    });

    if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) {
      app.addContentTypeParser(
        'application/x-www-form-urlencoded',
        { parseAs: 'string' },
        (_req, body, done) => {
          done(null, Object.fromEntries(new URLSearchParams(body as string)));
        },
      );
    }

    app.post('/oauth2/token', async (request, reply) => {
      const form = (request.body ?? {}) as Record<string, string | undefined>;
      const answer = state.issueToken(form.client_id ?? '', form.client_secret ?? '', form.grant_type);
      return reply.code(answer.status).header('x-request-id', request.id).send(answer.body);
    });

    /** Bearer and x-api-key checks; answers and returns false when the call may not proceed. */
    function admitted(request: FastifyRequest, reply: FastifyReply, op: LiquidoOp, key?: string): boolean {
      const m = /^bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
      const check = state.checkToken(m?.[1]);
      if (check !== 'ok') {
        state.record({ op, idempotencyKey: key, outcome: 'unauthorized', httpStatus: 401 });
        void reply
          .code(401)
          .send({ transferStatusCode: 401, error: 'invalid_token', message: `access token ${check}` });
        return false;
      }
      if (request.headers['x-api-key'] !== apiKey) {
        state.record({ op, idempotencyKey: key, outcome: 'forbidden', httpStatus: 403 });
        void reply
          .code(403)
          .send({ transferStatusCode: 403, error: 'forbidden', message: 'invalid x-api-key' });
        return false;
      }
      return true;
    }

    /** Sends an answer as the scripted outcome says: normally, late, or not at all. */
    async function deliver(
      request: FastifyRequest,
      reply: FastifyReply,
      answer: Answer,
      outcome: LiquidoOutcome | undefined,
    ): Promise<FastifyReply | undefined> {
      if (outcome?.type === 'lost') {
        reply.hijack();
        request.raw.socket.destroy();
        return undefined;
      }
      await delay(latencyMs + (outcome?.type === 'slow' ? outcome.ms : 0));
      return reply.code(answer.status).header('x-request-id', request.id).send(answer.body);
    }

    function scriptedError(op: LiquidoOp, key: string | undefined, outcome: LiquidoOutcome | undefined) {
      if (outcome?.type !== 'error') return undefined;
      state.record({ op, idempotencyKey: key, outcome: 'error', httpStatus: outcome.status });
      return {
        status: outcome.status,
        body: { transferStatusCode: outcome.status, error: 'sandbox_error', message: 'scripted error' },
      };
    }

    app.post('/v1/payments/charges/card', async (request, reply) => {
      const body = (request.body ?? {}) as { idempotencyKey?: unknown; cardId?: unknown };
      const key = typeof body.idempotencyKey === 'string' ? body.idempotencyKey : undefined;
      if (!admitted(request, reply, 'authorize', key)) return reply;
      const outcome = state.takeOutcome(
        'authorize',
        key,
        typeof body.cardId === 'string' ? body.cardId : undefined,
      );
      const answer = scriptedError('authorize', key, outcome) ?? state.charge(request.body, outcome);
      return deliver(request, reply, answer, outcome);
    });

    for (const [op, path] of [
      ['capture', '/v1/payments/charges/card/capture/:idempotencyKey'],
      ['cancel', '/v1/payments/charges/cancel/:idempotencyKey'],
    ] as const) {
      app.post(path, async (request, reply) => {
        const key = (request.params as { idempotencyKey: string }).idempotencyKey;
        if (!admitted(request, reply, op, key)) return reply;
        const outcome = state.takeOutcome(op, key, undefined);
        const answer = scriptedError(op, key, outcome) ?? state.act(op, key, request.body, outcome);
        return deliver(request, reply, answer, outcome);
      });
    }

    app.get('/v1/payments/:idempotencyKey', async (request, reply) => {
      const key = (request.params as { idempotencyKey: string }).idempotencyKey;
      if (!admitted(request, reply, 'status', key)) return reply;
      const outcome = state.takeOutcome('status', key, undefined);
      const answer = scriptedError('status', key, outcome) ?? state.status(key);
      return deliver(request, reply, answer, outcome);
    });

    app.post('/_sandbox/liquido/script', async (request, reply) => {
      const rule = request.body as Partial<LiquidoScriptRule> | undefined;
      if (rule?.match === undefined || !Array.isArray(rule.outcomes) || rule.outcomes.length === 0) {
        return reply.code(400).send({ error: 'bad_request', message: 'expected {match, outcomes: [...]}' });
      }
      state.script(rule as LiquidoScriptRule);
      return reply.code(204).send();
    });

    app.post('/_sandbox/liquido/cards', async (request, reply) => {
      const b = (request.body ?? {}) as { cardHolderName?: unknown; last4?: unknown };
      const card = state.addCard({
        ...(typeof b.cardHolderName === 'string' ? { cardHolderName: b.cardHolderName } : {}),
        ...(typeof b.last4 === 'string' && /^\d{4}$/.test(b.last4) ? { last4: b.last4 } : {}),
      });
      return reply.code(201).send(card);
    });

    app.get('/_sandbox/liquido/ledger', async () => state.ledger());

    app.post('/_sandbox/liquido/expire-tokens', async (_request, reply) => {
      state.expireTokens();
      return reply.code(204).send();
    });

    app.post('/_sandbox/liquido/reset', async (_request, reply) => {
      state.reset();
      return reply.code(204).send();
    });
  }

  return Object.assign(plugin, { state });
}
