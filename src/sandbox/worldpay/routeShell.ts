import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WorldpayGate } from './gate.js';

// The shell both Worldpay-facing plugins (v6 under /payments, v7 under /cardPayments) put around
// their routes: raw bodies, the gate, the plugin's own media-type checks, JSON bodies, and errors
// answered in Worldpay's shape. Everything it answers itself carries the plugin's media type.

export interface RouteShellOptions {
  gate: WorldpayGate;
  /** The media type of the shell's answers (the gate's 401 and 429, 400, errors). */
  responseType: string;
  /** Whether only POSTs have their headers checked and bodies read (v6); otherwise every request. */
  postsOnly: boolean;
  /** The plugin's header checks, before the body is read: a reply it sent refuses the request. */
  checkHeaders: (
    request: FastifyRequest,
    reply: FastifyReply,
    raw: string | undefined,
  ) => FastifyReply | undefined;
}

/** Base of the hrefs in responses: the configured public URL, or http:// + the request's Host. */
export function publicBase(
  publicUrl: string | (() => string | undefined) | undefined,
): (request: FastifyRequest) => string {
  return (request) =>
    (typeof publicUrl === 'function' ? publicUrl() : publicUrl) ?? 'http://' + request.headers.host;
}

export function routeShell(app: FastifyInstance, options: RouteShellOptions): void {
  const { gate, responseType } = options;

  // Only the Worldpay paths take raw bodies: other plugins on the same server keep fastify's parsers.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));

  app.addHook('onRequest', async (request, reply) => gate(request, reply, responseType));

  app.addHook('preHandler', async (request, reply) => {
    if (options.postsOnly && request.method !== 'POST') return;
    const raw = request.body as string | undefined;
    const refused = options.checkHeaders(request, reply, raw);
    if (refused) return refused;
    if (raw === undefined || raw.length === 0) {
      request.body = undefined;
      return;
    }
    try {
      request.body = JSON.parse(raw);
    } catch {
      return reply
        .code(400)
        .type(responseType)
        .send({ errorName: 'bodyIsNotJson', message: 'The body within the request is not valid json' });
    }
  });

  app.setErrorHandler(async (error, _request, reply) => {
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    reply.code(status >= 400 && status < 500 ? status : 500).type(responseType);
    return reply.send(
      status === 413
        ? { errorName: 'bodyIsTooLarge', message: 'The body is too large' }
        : status < 500 && status >= 400
          ? { errorName: 'bodyDoesNotMatchSchema', message: 'The request could not be read' }
          : { errorName: 'internalErrorOccurred', message: 'An internal error occurred' },
    );
  });
}
