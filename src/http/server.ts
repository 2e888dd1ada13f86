import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { BillingContext } from '../billing/context.ts';
import type { Runner } from '../billing/run/runner.ts';
import { errorMessage, ForbiddenError } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import { createAuthLockout, createTokenCheck } from './auth.ts';
import { checkSession, consoleRoutes, createSessionStore, findConsoleAssets } from './console.ts';
import { errorResponse, TooManyFailedAuthenticationsError } from './errors.ts';
import { guardInput } from './input.ts';
import { type ExtraRoute, openApiDocument } from './openapi.ts';
import { type Auth, declaredRoute, mountRoute, type RouteDef } from './route.ts';
import { adminRoutes, opsRoutes } from './routes/index.ts';
import { WEBHOOK_PATH, webhookRoutes } from './webhook.ts';

export interface AdminServer {
  app: FastifyInstance;
  /**
   * Every route registered (method, url), HEAD excluded: what the OpenAPI test compares; with
   * the definition it was registered from, if it was declared through defineRoute.
   */
  registered(): { method: string; url: string; route: RouteDef | undefined }[];
  /** The routes declared through defineRoute, as registered and documented. */
  routes: RouteDef[];
  openapi: Record<string, unknown>;
  /** Listen on host:port (port 0 picks one); resolves to the base URL. */
  listen(addr: string): Promise<string>;
  close(): Promise<void>;
}

/** The Worldpay webhook: registered by its own plugin, which keeps the raw body it verifies. */
const webhookRoute: ExtraRoute = {
  method: 'POST',
  url: WEBHOOK_PATH,
  summary: 'Worldpay payment events (authenticated by Event-Signature)',
  tag: 'webhooks',
  auth: 'signature',
  status: 200,
  errors: {
    '503':
      'No webhook secret is configured (WORLDPAY_WEBHOOK_SECRETS), or the database cannot be reached (`database_unavailable`, Retry-After)',
  },
};

/**
 * The admin HTTP API, /healthz, /metrics, /openapi.json and the Worldpay webhook on one
 * fastify instance. Bearer auth runs first on every route whose config does not opt out.
 */
export async function createAdminServer(opts: {
  ctx: BillingContext;
  runner: Runner;
  metrics?: Metrics | undefined;
  /** Fastify request logging: off by default (our own log lines carry the ids that matter). */
  logRequests?: boolean;
  /** Where the console's built assets are (default: dist/ui above this module). */
  consoleAssets?: string | undefined;
}): Promise<AdminServer> {
  const { ctx, runner, metrics } = opts;
  const checkToken = createTokenCheck(ctx.config.admin.tokens);
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, exposeHeadRoutes: false });
  const registered: { method: string; url: string; route: RouteDef | undefined }[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of Array.isArray(r.method) ? r.method : [r.method])
      registered.push({ method: m, url: r.url, route: declaredRoute(r.config) });
  });
  guardInput(app);
  const lockout = createAuthLockout(ctx.config.admin.authFailuresPerMinute);
  const sessions = createSessionStore();
  /** The admin token (as an Authorization header value) or a 429/401/403, counting failures. */
  const authenticate = (
    req: FastifyRequest,
    reply: FastifyReply,
    header: string | undefined,
    viaSession = false,
  ) => {
    const refuse = (wait: number, who: string): never => {
      const seconds = Math.ceil(wait / 1000);
      void reply.header('retry-after', String(seconds));
      throw new TooManyFailedAuthenticationsError(
        `too many failed authentications ${who}: retry in ${seconds} s`,
      );
    };
    const wait = lockout.blockedFor(req.ip);
    if (wait > 0) refuse(wait, 'from this client');
    // A console request carries its session cookie instead of a token (and, to change
    // anything, the session's CSRF token). An expired or unknown session is a 401 but not a
    // guess: only a wrong token counts.
    if (viaSession && checkSession(req, sessions)) return;
    const allWait = lockout.allBlockedFor();
    if (allWait > 0) refuse(allWait, 'from all clients');
    try {
      checkToken(header);
    } catch (err) {
      if (err instanceof ForbiddenError) lockout.failed(req.ip);
      throw err;
    }
  };
  app.addHook('onRequest', async (req, reply) => {
    const auth = (req.routeOptions.config as { auth?: Auth } | undefined)?.auth ?? 'bearer';
    if (auth !== 'bearer') return;
    authenticate(req, reply, req.headers.authorization, true);
  });
  app.setErrorHandler((err, req, reply) => {
    const { status, body, headers } = errorResponse(err);
    if (status >= 500) ctx.logger.error({ err: errorMessage(err), url: req.url }, 'admin API error');
    void reply
      .code(status)
      .headers(headers ?? {})
      .send(body);
  });
  app.setNotFoundHandler((_req, reply) => {
    void reply.code(404).send({ error: { code: 'not_found', message: 'no such route' } });
  });

  const routes = [...adminRoutes(ctx, runner), ...opsRoutes(ctx, metrics, () => openapi)];
  const openapi = openApiDocument(routes, [webhookRoute]);
  for (const r of routes) mountRoute(app, r, ctx);
  await app.register(webhookRoutes(ctx, metrics));
  await app.register(
    consoleRoutes({
      sessions,
      assetsDir: opts.consoleAssets ?? findConsoleAssets(),
      authenticate: (req, reply, header) => authenticate(req, reply, header),
      now: () => ctx.clock.now(),
    }),
  );
  await app.ready();

  return {
    app,
    openapi,
    routes,
    // The console's pages and session routes belong to the browser app, not the API document.
    registered: () => registered.filter((r) => r.method !== 'HEAD' && !r.url.startsWith('/ui')),
    async listen(addr) {
      const i = addr.lastIndexOf(':');
      const host = addr.slice(0, i);
      const port = Number(addr.slice(i + 1));
      await app.listen({ host, port });
      const a = app.server.address();
      const bound = typeof a === 'object' && a ? a.port : port;
      return `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
    },
    close: () => app.close(),
  };
}
