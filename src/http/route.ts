import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { BillingContext } from '../billing/context.ts';
import { parseInput } from '../billing/mandates/schemas.ts';
import { errorMessage, InvalidRequestError } from '../errors.ts';
import { errorResponse } from './errors.ts';
import { type StoredResponse, withIdempotency } from './idempotency.ts';

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
/** Who may call a route: the admin token (or a console session), anyone, or a signed webhook. */
export type Auth = 'bearer' | 'none' | 'signature';

/** The names of a fastify path's parameters: '/v1/mandates/:id/changes/:changeId' gives 'id' | 'changeId'. */
type ParamNames<U extends string> = U extends `${string}:${infer P}/${infer Rest}`
  ? P | ParamNames<`/${Rest}`>
  : U extends `${string}:${infer P}`
    ? P
    : never;

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined;

/** What a handler is given: the path, the query and the body, each parsed by the route's schema. */
export interface RouteInput<P = unknown, Q = unknown, B = unknown> {
  params: P;
  query: Q;
  body: B;
}

interface RouteFields {
  method: Method;
  /** fastify form: /v1/mandates/:id */
  url: string;
  summary: string;
  tag: string;
  /** Default: bearer. */
  auth?: Auth;
  query?: z.ZodType;
  body?: z.ZodType;
  /**
   * An absent body is parsed as it is (and refused by a schema that wants an object), instead of
   * read as `{}`: for the routes whose body carries what is being created.
   */
  bodyRequired?: boolean;
  /**
   * The body is read before the path: a request wrong in both is answered about its body. The
   * action routes whose body only carries options (pause, cancel, retry-now...) have always
   * answered so, and a client may read the error's field.
   */
  bodyFirst?: boolean;
  /**
   * The body is this part of what the service takes: errors name its fields under it, as the
   * service does (`credential.schemeReference` for the body of POST /v1/mandates/:id/credential).
   */
  bodyAt?: string;
  /** Status of a successful answer. */
  status: number;
  /** The success answer's JSON Schema, where the document gives one. */
  response?: Record<string, unknown>;
  /** Named request-body examples (checked against the body schema by the tests). */
  examples?: Record<string, unknown>;
  /**
   * The handler answers through `reply` itself (a stream, a text body, its own status), as a
   * fastify handler does: no Idempotency-Key, and the document lists its success status without
   * a body, 400, and its own `errors`.
   */
  raw?: boolean;
  /** Path parameters' JSON Schemas in the document, by name (default: a positive integer id). */
  pathParams?: Record<string, Record<string, unknown>>;
  /** Error answers a raw route documents besides 400 (and, for bearer routes, 401 and 403). */
  errors?: Record<string, string>;
  /** false: a raw route that never reads the database (the document lists no 503 for it). */
  database?: boolean;
}

/** A route as declared, before defineRoute: the handler's input is typed by its schemas. */
export interface RouteSpec<
  U extends string,
  P extends z.ZodType | undefined,
  Q extends z.ZodType | undefined,
  B extends z.ZodType | undefined,
> extends RouteFields {
  url: U;
  /** The path parameters' schema; default: each `:name` a positive integer id (a number). */
  params?: P;
  query?: Q;
  body?: B;
  handler(
    input: RouteInput<
      P extends z.ZodType ? z.output<P> : Record<ParamNames<U>, number>,
      Parsed<Q>,
      Parsed<B>
    >,
    req: FastifyRequest,
    reply: FastifyReply,
  ): Promise<unknown>;
}

/**
 * One HTTP route: what the server registers and what the OpenAPI document describes, from the
 * same definition, so the two cannot drift apart.
 */
export interface RouteDef extends RouteFields {
  auth: Auth;
  params: z.ZodType;
  handler(input: RouteInput, req: FastifyRequest, reply: FastifyReply): Promise<unknown>;
}

const ID_MESSAGE = 'must be a positive integer id';
/** A path id: up to 15 digits (a safe integer), at least 1. */
export const idParam = z
  .string()
  .regex(/^\d{1,15}$/, ID_MESSAGE)
  .refine((v) => Number(v) >= 1, ID_MESSAGE)
  .transform(Number);

/** The parameter names of a fastify path, in order. */
export const paramNames = (url: string): string[] => [...url.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]!);

/** Declare a route: its schemas parse the request once, and the handler gets what they give. */
export function defineRoute<
  U extends string,
  P extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
>(spec: RouteSpec<U, P, Q, B>): RouteDef {
  return {
    ...spec,
    auth: spec.auth ?? 'bearer',
    params: spec.params ?? z.object(Object.fromEntries(paramNames(spec.url).map((n) => [n, idParam]))),
    handler: spec.handler as RouteDef['handler'],
  };
}

/**
 * The request read by the route's schemas: the path first (the body first for a `bodyFirst`
 * route), then the query, then the body. A route without a query or body schema ignores that
 * part. A failure is the ValidationError naming the first bad field.
 */
export function parseRoute(r: RouteDef, req: FastifyRequest): RouteInput {
  const readBody = () =>
    r.body ? parseInput(r.body, r.bodyRequired ? req.body : (req.body ?? {}), r.bodyAt) : undefined;
  const early = r.bodyFirst ? readBody() : undefined;
  const params = parseInput(r.params, req.params ?? {});
  const query = r.query ? parseInput(r.query, req.query) : undefined;
  return { params, query, body: r.bodyFirst ? early : readBody() };
}

/**
 * Register a declared route. A JSON route answers its handler's value with its status, or the
 * error's status and body; a POST, PATCH or DELETE runs under its Idempotency-Key (a bad-input
 * answer is stored like any other, so a replay gets it again).
 */
export function mountRoute(
  app: FastifyInstance,
  r: RouteDef,
  ctx: Pick<BillingContext, 'database' | 'logger'>,
): void {
  if (r.raw) {
    app.route({
      method: r.method,
      url: r.url,
      config: { auth: r.auth, route: r },
      handler: async (req, reply) => r.handler(parseRoute(r, req), req, reply),
    });
    return;
  }
  app.route({
    method: r.method,
    url: r.url,
    config: { auth: r.auth, route: r },
    handler: async (req, reply) => {
      const run = async (): Promise<StoredResponse> => {
        try {
          return { status: r.status, body: await r.handler(parseRoute(r, req), req, reply) };
        } catch (err) {
          const e = errorResponse(err);
          if (e.status >= 500) ctx.logger.error({ err: errorMessage(err), url: req.url }, 'admin API error');
          return e;
        }
      };
      const key = req.headers['idempotency-key'];
      if (Array.isArray(key)) throw new InvalidRequestError('Idempotency-Key: give one');
      const out =
        r.method !== 'GET'
          ? await withIdempotency(
              ctx.database,
              key,
              { method: r.method, path: req.url, body: req.body ?? null },
              run,
            )
          : { ...(await run()), replayed: false };
      if (out.replayed) void reply.header('idempotent-replayed', 'true');
      return reply
        .code(out.status)
        .headers(out.headers ?? {})
        .send(out.body);
    },
  });
}

/** The route a fastify route was registered from, if it was declared through defineRoute. */
export function declaredRoute(config: unknown): RouteDef | undefined {
  return (config as { route?: RouteDef } | undefined)?.route;
}
