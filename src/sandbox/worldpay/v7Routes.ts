import type { FastifyInstance } from 'fastify';
import type { WorldpayGate } from './gate.js';
import { notFound } from './replies.js';
import { publicBase, routeShell } from './routeShell.js';
import { V7_TYPE } from './v7.js';
import { writeAnswer } from './worldpayRoutes.js';
import type { WorldpayState } from './worldpayState.js';

// The Card Payments v7 endpoints under /cardPayments. Their payments are managed through the
// links they answer with, which the v6 plugin under /payments serves (v7 media types accepted).

export interface V7RouteOptions {
  state: WorldpayState;
  gate: WorldpayGate;
  publicUrl?: string | (() => string | undefined);
}

/** The plugin is registered under this prefix. */
export const V7_PREFIX = '/cardPayments';

/** Whether a header names v7's media type (parameters such as `; charset=utf-8` allowed). */
function isV7(header: string | undefined): boolean {
  if (header === undefined) return false;
  return header.split(',').some((part) => part.split(';')[0]!.trim().toLowerCase() === V7_TYPE);
}

export async function v7Routes(app: FastifyInstance, options: V7RouteOptions): Promise<void> {
  const { state, gate } = options;
  const base = publicBase(options.publicUrl);

  routeShell(app, {
    gate,
    responseType: V7_TYPE,
    postsOnly: false,
    checkHeaders: (request, reply) => {
      if (!isV7(request.headers['content-type'])) {
        return reply
          .code(415)
          .type(V7_TYPE)
          .send({
            errorName: 'headerHasInvalidValue',
            message: `Content-Type must be ${V7_TYPE}`,
          });
      }
      if (!isV7(request.headers.accept)) {
        return reply
          .code(406)
          .type(V7_TYPE)
          .send({
            errorName: 'headerHasInvalidValue',
            message: `Accept must be ${V7_TYPE}`,
          });
      }
      return undefined;
    },
  });

  app.post('/merchantInitiatedTransactions', async (request, reply) =>
    writeAnswer(request, reply, state.merchantInitiated(base(request), request.body), V7_TYPE),
  );
  app.post('/customerInitiatedTransactions', async (request, reply) =>
    writeAnswer(request, reply, state.customerInitiated(base(request), request.body), V7_TYPE),
  );

  app.setNotFoundHandler(async (request, reply) => writeAnswer(request, reply, notFound(), V7_TYPE));
}
