import { Readable } from 'node:stream';
import { sql } from 'drizzle-orm';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { BillingContext } from '../billing/context.ts';
import { parseInput } from '../billing/mandates/schemas.ts';
import { EXPORT_KINDS, exportLines } from '../billing/reporting/exports.ts';
import type { Runner } from '../billing/run/runner.ts';
import { parseInstant } from '../domain/instant.ts';
import { errorMessage, InvalidRequestError } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import { createAuthLockout, createTokenCheck } from './auth.ts';
import { checkSession, consoleRoutes, createSessionStore, findConsoleAssets } from './console.ts';
import { errorResponse, TooManyFailedAuthenticationsError } from './errors.ts';
import { withIdempotency } from './idempotency.ts';
import { guardInput } from './input.ts';
import { type ExtraRoute, openApiDocument } from './openapi.ts';
import { adminRoutes, type RouteRequest } from './routes.ts';
import { WEBHOOK_PATH, webhookRoutes } from './webhook.ts';

export interface AdminServer {
  app: FastifyInstance;
  /** Every route registered (method, url), HEAD excluded: what the OpenAPI test compares. */
  registered(): { method: string; url: string }[];
  openapi: Record<string, unknown>;
  /** Listen on host:port (port 0 picks one); resolves to the base URL. */
  listen(addr: string): Promise<string>;
  close(): Promise<void>;
}

type Auth = 'bearer' | 'none' | 'signature';

const exportQuery = z
  .object({ from: z.string().max(64), to: z.string().max(64), format: z.enum(['csv', 'ndjson']).optional() })
  .strict();

const extraRoutes: ExtraRoute[] = [
  {
    method: 'GET',
    url: '/healthz',
    summary: 'Process up and database reachable',
    tag: 'ops',
    auth: 'none',
    status: 200,
    errors: { '503': 'Database unreachable' },
  },
  {
    method: 'GET',
    url: '/metrics',
    summary: 'Prometheus metrics (bearer token like every admin route)',
    tag: 'ops',
    auth: 'bearer',
    status: 200,
  },
  { method: 'GET', url: '/openapi.json', summary: 'This document', tag: 'ops', auth: 'bearer', status: 200 },
  {
    method: 'GET',
    url: '/v1/exports/:kind',
    summary:
      'charges | mandates | attempts | events in ?from&to (required) as ?format=csv (default) or ndjson, streamed; the column sets are in the README',
    tag: 'reports',
    auth: 'bearer',
    status: 200,
    pathParams: { kind: { type: 'string', enum: [...EXPORT_KINDS] } },
    query: exportQuery,
  },
  {
    method: 'POST',
    url: WEBHOOK_PATH,
    summary: 'Worldpay payment events (authenticated by Event-Signature)',
    tag: 'webhooks',
    auth: 'signature',
    status: 200,
    errors: { '503': 'No webhook secret is configured (WORLDPAY_WEBHOOK_SECRETS)' },
  },
];

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
  const registered: { method: string; url: string }[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of Array.isArray(r.method) ? r.method : [r.method])
      registered.push({ method: m, url: r.url });
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
    const wait = lockout.blockedFor(req.ip);
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      void reply.header('retry-after', String(seconds));
      throw new TooManyFailedAuthenticationsError(
        `too many failed authentications from this client: retry in ${seconds} s`,
      );
    }
    try {
      // A console request carries its session cookie instead of a token (and, to change
      // anything, the session's CSRF token).
      if (viaSession && checkSession(req, sessions)) return;
      checkToken(header);
    } catch (err) {
      lockout.failed(req.ip);
      throw err;
    }
  };
  app.addHook('onRequest', async (req, reply) => {
    const auth = (req.routeOptions.config as { auth?: Auth } | undefined)?.auth ?? 'bearer';
    if (auth !== 'bearer') return;
    authenticate(req, reply, req.headers.authorization, true);
  });
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = errorResponse(err);
    if (status >= 500) ctx.logger.error({ err: errorMessage(err), url: req.url }, 'admin API error');
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((_req, reply) => {
    void reply.code(404).send({ error: { code: 'not_found', message: 'no such route' } });
  });

  const routes = adminRoutes(ctx, runner);
  const openapi = openApiDocument(routes, extraRoutes);
  for (const r of routes) {
    app.route({
      method: r.method,
      url: r.url,
      config: { auth: 'bearer' },
      handler: async (req, reply) => {
        const request: RouteRequest = {
          params: req.params as Record<string, string>,
          query: req.query as Record<string, unknown>,
          body: req.body,
        };
        const run = async () => {
          try {
            return { status: r.status, body: await r.handler(request) };
          } catch (err) {
            const e = errorResponse(err);
            if (e.status >= 500)
              ctx.logger.error({ err: errorMessage(err), url: req.url }, 'admin API error');
            return e;
          }
        };
        const key = req.headers['idempotency-key'];
        if (Array.isArray(key)) throw new InvalidRequestError('Idempotency-Key: give one');
        const out =
          r.method === 'POST'
            ? await withIdempotency(
                ctx.database,
                key,
                { method: r.method, path: req.url, body: req.body ?? null },
                run,
              )
            : { ...(await run()), replayed: false };
        if (out.replayed) void reply.header('idempotent-replayed', 'true');
        return reply.code(out.status).send(out.body);
      },
    });
  }
  app.get('/healthz', { config: { auth: 'none' } }, async (_req, reply) => {
    try {
      await ctx.database.rows(sql`select 1`);
      return reply.send({ ok: true });
    } catch (err) {
      ctx.logger.warn({ err: errorMessage(err) }, 'health check: database unreachable');
      return reply
        .code(503)
        .send({ ok: false, error: { code: 'database', message: 'database unreachable' } });
    }
  });
  app.get('/metrics', { config: { auth: 'bearer' } }, async (_req, reply) => {
    if (!metrics) return reply.code(404).send({ error: { code: 'not_found', message: 'metrics are off' } });
    const text = await metrics.render();
    return reply.header('content-type', metrics.contentType).send(text);
  });
  app.get('/openapi.json', { config: { auth: 'bearer' } }, async () => openapi);
  app.get('/v1/exports/:kind', { config: { auth: 'bearer' } }, async (req, reply) => {
    const q = parseInput(exportQuery, req.query);
    const from = parseInstant('from', q.from);
    const to = parseInstant('to', q.to);
    const kind = (req.params as { kind: string }).kind;
    const lines = exportLines(ctx.database, kind, { from, to, format: q.format });
    // The first chunk is read before the status goes out, so a bad kind or window is still a 400.
    const first = await lines.next();
    const format = q.format ?? 'csv';
    void reply
      .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
      .header('content-disposition', `attachment; filename="${kind}.${format}"`);
    return reply.send(
      Readable.from(
        (async function* () {
          if (!first.done) yield first.value;
          yield* lines;
        })(),
      ),
    );
  });
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
