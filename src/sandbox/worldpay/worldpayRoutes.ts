import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createWorldpayGate, type WorldpayGate } from './gate.js';
import type { ManageOp } from './paymentMachine.js';
import { notFound, type SandboxReply } from './replies.js';
import { publicBase, routeShell } from './routeShell.js';
import type { WorldpayState } from './worldpayState.js';

// The Worldpay-facing routes. Thin: check auth, media type and throttling, cut the link data
// out of the raw URL, and write out what the state answers.

export interface WorldpayRouteOptions {
  state: WorldpayState;
  username: string;
  password: string;
  latencyMs: number;
  requestsPerSecond?: number;
  /** Base of the hrefs in responses; default: http:// + the request's Host header. */
  publicUrl?: string | (() => string | undefined);
  /** Auth and throttling shared with the v7 routes; default: this plugin's own. */
  gate?: WorldpayGate;
}

const RESPONSE_TYPE = 'application/vnd.worldpay.payments-v6.hal+json';
const REQUEST_TYPE = /^application\/vnd\.worldpay\.payments-v[67]\+json\s*(;.*)?$/i;

const MANAGE_ROUTES: Array<[string, ManageOp]> = [
  ['/payments/authorizations/cancellations/', 'cancel'],
  ['/payments/settlements/full/', 'settle'],
  ['/payments/settlements/partials/', 'partialSettle'],
  ['/payments/settlements/refunds/full/', 'refund'],
  ['/payments/settlements/refunds/partials/', 'partialRefund'],
  ['/payments/sales/reversals/', 'reversal'],
  // v7's settle link (the other paths are the same in both versions).
  ['/payments/settlements/', 'settle'],
];

/** The plugin is registered under the `/payments` prefix; routes are written as full paths. */
export const WORLDPAY_PREFIX = '/payments';
function at(fullPath: string): string {
  const rest = fullPath.slice(WORLDPAY_PREFIX.length);
  return rest === '' ? '/' : rest;
}

/** Link data exactly as the client sent it: a client that re-encodes `+` or `/` must miss. */
function rawTail(request: FastifyRequest, prefix: string): string {
  const url = request.raw.url ?? '';
  const query = url.indexOf('?');
  return url.slice(prefix.length, query < 0 ? undefined : query);
}

/** Writes out a state's answer: after its delay, in its media type, or not at all when `lost`. */
export async function writeAnswer(
  request: FastifyRequest,
  reply: FastifyReply,
  answer: SandboxReply,
  defaultType: string,
): Promise<void> {
  if (answer.delayMs) await sleep(answer.delayMs);
  if (answer.lost) {
    // "Committed but the response is lost": the payment exists, the client sees a reset.
    reply.hijack();
    request.raw.socket.destroy();
    return;
  }
  if (answer.headers) reply.headers(answer.headers);
  reply.code(answer.status).type(answer.contentType ?? defaultType);
  return reply.send(answer.body ?? {});
}

export async function worldpayRoutes(app: FastifyInstance, options: WorldpayRouteOptions): Promise<void> {
  const { state } = options;
  const gate = options.gate ?? createWorldpayGate(options);

  const base = publicBase(options.publicUrl);

  const send = (request: FastifyRequest, reply: FastifyReply, answer: SandboxReply) =>
    writeAnswer(request, reply, answer, RESPONSE_TYPE);

  routeShell(app, {
    gate,
    responseType: RESPONSE_TYPE,
    postsOnly: true,
    checkHeaders: (request, reply, raw) => {
      const contentType = request.headers['content-type'];
      if (
        (contentType !== undefined || (raw !== undefined && raw.length > 0)) &&
        !REQUEST_TYPE.test(contentType ?? '')
      ) {
        return reply.code(415).type(RESPONSE_TYPE).send({
          errorName: 'headerHasInvalidValue',
          message: 'Content-Type must be application/vnd.worldpay.payments-v6+json',
        });
      }
      return undefined;
    },
  });

  app.get(at('/payments'), async (request, reply) => {
    const b = base(request);
    return send(request, reply, {
      status: 200,
      body: {
        _links: {
          'payments:migrateRecurringAuthorize': { href: b + '/payments/authorizations/migrateRecurring' },
          'payments:events': { href: b + '/payments/events' },
          curies: [{ name: 'payments', href: b + '/rels/payments/{rel}', templated: true }],
        },
      },
    });
  });

  app.post(at('/payments/authorizations/migrateRecurring'), async (request, reply) =>
    send(request, reply, state.authorize(base(request), 'migrate', request.body, undefined)),
  );

  const RECURRING = '/payments/authorizations/recurring/';
  app.post(at(RECURRING + '*'), async (request, reply) =>
    send(
      request,
      reply,
      state.authorize(base(request), 'authorize', request.body, rawTail(request, RECURRING)),
    ),
  );

  for (const [prefix, op] of MANAGE_ROUTES) {
    app.post(at(prefix + '*'), async (request, reply) =>
      send(request, reply, state.manage(base(request), op, rawTail(request, prefix), request.body)),
    );
  }

  const EVENTS = '/payments/events/';
  app.get(at(EVENTS + '*'), async (request, reply) =>
    send(request, reply, state.events(base(request), rawTail(request, EVENTS))),
  );
  app.get(at('/payments/events'), async (request, reply) => {
    const query = request.query as { transactionRef?: string; entity?: string };
    return send(request, reply, state.recover(base(request), query.transactionRef, query.entity));
  });

  const PAYPAL = '/payments/alternative/action/paypal/';
  app.get(at(PAYPAL + 'events/*'), async (request, reply) =>
    send(request, reply, state.paypalEvents(base(request), rawTail(request, PAYPAL + 'events/'))),
  );
  app.post(at(PAYPAL + 'refunds/full/*'), async (request, reply) =>
    send(
      request,
      reply,
      state.paypalRefund(base(request), 'refund', rawTail(request, PAYPAL + 'refunds/full/'), request.body),
    ),
  );
  app.post(at(PAYPAL + 'refunds/partials/*'), async (request, reply) =>
    send(
      request,
      reply,
      state.paypalRefund(
        base(request),
        'partialRefund',
        rawTail(request, PAYPAL + 'refunds/partials/'),
        request.body,
      ),
    ),
  );

  app.setNotFoundHandler(async (request, reply) => send(request, reply, notFound()));
}
